"""What every diagram shares: colours, boxes with text that fits, arrows."""
from __future__ import annotations

from functools import cache

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

# One colour per kind of thing, in every figure of the course.
IMAGE = "#f4a261"     # pixels, patches
VISION = "#e9c46a"    # the vision encoder
ADAPTER = "#8ab17d"   # the adapter
TOKENS = "#a8dadc"    # token ids, embeddings, the text side
DECODER = "#457b9d"   # the decoder
OUTPUT = "#e76f51"    # logits, the next token
MUTED = "#e5e5e5"     # what the current lesson is not about
INK = "#1d3557"
FONT = 10


def canvas(width: float, height: float, *, title: str | None = None) -> tuple[plt.Figure, plt.Axes]:
    """A figure of width × height inches whose axes run 0..width, 0..height (1 unit = 1 inch),
    so a box of text of size 10 fits in 0.25 units a line."""
    figure, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=FONT + 2, color=INK)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01,
                           top=1 - 0.4 / height if title else 0.99)  # 0.4 inch for a title
    return figure, ax


def box(ax: plt.Axes, x: float, y: float, w: float, h: float, text: str = "", *,
        colour: str = MUTED, text_colour: str = INK, size: int = FONT, bold: bool = False,
        dark: bool = False) -> tuple[float, float, float, float]:
    """A rounded box with its lower left corner at (x, y) and centred text; returns (x, y, w, h)."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=0.06",
                                facecolor=colour, edgecolor=INK, linewidth=1))
    if text:
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size,
                color="white" if dark else text_colour, fontweight="bold" if bold else "normal")
    return x, y, w, h


def arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float], *,
          colour: str = INK, text: str = "", style: str = "-|>", dashed: bool = False) -> None:
    """An arrow from start to end, with an optional label above its middle."""
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12, color=colour,
                                 linewidth=1.2, linestyle="--" if dashed else "-",
                                 shrinkA=0, shrinkB=0))
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.08, text, ha="center",
                va="bottom", fontsize=FONT - 1, color=colour)


def right(b: tuple[float, float, float, float]) -> tuple[float, float]:
    return b[0] + b[2], b[1] + b[3] / 2


def left(b: tuple[float, float, float, float]) -> tuple[float, float]:
    return b[0], b[1] + b[3] / 2


def top(b: tuple[float, float, float, float]) -> tuple[float, float]:
    return b[0] + b[2] / 2, b[1] + b[3]


def bottom(b: tuple[float, float, float, float]) -> tuple[float, float]:
    return b[0] + b[2] / 2, b[1]


@cache
def tokenizer():
    """The course's Tokenizer on the real Tekken file, loaded once for all the figures."""
    from minipixtral.tokenizer import Tokenizer, shipped_tokenizer_file

    return Tokenizer.from_file(shipped_tokenizer_file())
