"""Lesson 02's diagrams: a pair turning with the position, 2-D RoPE's split of the head, the two
ways of pairing the channels."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.patches import FancyArrowPatch

from ._style import (ADAPTER, IMAGE, INK, TOKENS, VISION, box, canvas)

ROW, COLUMN = VISION, TOKENS          # the pairs that turn with the row, with the column
PAIRS = [IMAGE, VISION, ADAPTER, TOKENS]


def _frequencies(head_dim: int, theta: float) -> list[float]:
    from minipixtral.rope import rope_frequencies  # the lesson's own formula

    return rope_frequencies(head_dim, theta).tolist()


def rotation():
    """The pair (1, 0) at positions 0 … 7, turned by p · f_j, for pairs 0 and 1 of D = 16."""
    freqs = _frequencies(16, 10_000.0)
    shade = LinearSegmentedColormap.from_list("position", ["#f4a261", INK])
    figure, axes = plt.subplots(1, 2, figsize=(9, 4.4))
    for ax, j in zip(axes, [0, 1]):
        ax.add_patch(plt.Circle((0, 0), 1, fill=False, ls=":", color="grey"))
        for p in range(8):
            phi, colour = p * freqs[j], shade(p / 7)
            ax.annotate("", xy=(math.cos(phi), math.sin(phi)), xytext=(0, 0),
                        arrowprops=dict(arrowstyle="-|>", color=colour, lw=2))
            ax.text(1.15 * math.cos(phi), 1.15 * math.sin(phi), str(p), ha="center",
                    va="center", color=colour, fontsize=10, fontweight="bold")
        ax.set_xlim(-1.35, 1.35)
        ax.set_ylim(-1.35, 1.35)
        ax.set_aspect("equal")
        ax.axis("off")
        turn = 2 * math.pi / freqs[j]
        ax.set_title(f"pair {j}: f_{j} = {freqs[j]:.3f} rad per position\n"
                     f"angle p · f_{j}; a full turn every {turn:.1f} positions",
                     fontsize=10, color=INK)
    figure.suptitle("The pair (1, 0) at positions p = 0 … 7  (D = 16, θ = 10 000)", color=INK)
    figure.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.8, wspace=0.1)
    return figure


def rope_2d():
    """A vision head (D = 64, 32 pairs): the first 16 pairs turn with the row, the last 16 with
    the column, taking the even and the odd frequencies."""
    head_dim, theta = 64, 10_000.0
    f = _frequencies(head_dim, theta)
    n = head_dim // 2
    figure, ax = canvas(12.0, 2.9, title="2-D RoPE: one head of the vision encoder, D = 64 "
                                         "channels = 32 pairs, for the patch at (row r, column c)")
    w, x0, y = 0.34, 0.55, 1.35
    for j in range(n):
        box(ax, x0 + j * w, y, w, 0.5, str(j), colour=ROW if j < n // 2 else COLUMN, size=7)
    half = n // 2 * w
    for start, colour, what, name, first in [(x0, ROW, "row", "r", 0),
                                             (x0 + half, COLUMN, "column", "c", 1)]:
        channels = f"{2 * first * n // 2}–{2 * first * n // 2 + n - 1}"
        pairs = f"{first * n // 2}–{first * n // 2 + n // 2 - 1}"
        ax.text(start + half / 2, y + 0.62, f"pairs {pairs} (channels {channels}): turn with "
                f"the {what} {name}", ha="center", va="bottom", fontsize=10, color=INK)
        ax.text(start + half / 2, y - 0.12,
                f"angles {name}·f_{first}, {name}·f_{first + 2}, …, {name}·f_{first + n - 2}",
                ha="center", va="top", fontsize=10, color=INK)
        ax.text(start + half / 2, y - 0.47,
                f"= {name} × {f[first]:.3g}, {name} × {f[first + 2]:.3g}, …, "
                f"{name} × {f[first + n - 2]:.3g}", ha="center", va="top", fontsize=9, color=INK)
    ax.text(6.0, 0.3, f"f_j = θ^(−2j/D) with θ = 10 000: the row takes the even frequencies, "
            "the column the odd ones, so each axis has fast and slow clocks",
            ha="center", va="center", fontsize=9, color=INK, style="italic")
    return figure


def _pairs(ax, y, partners, title, top):
    ax.text(0.3, top, title, fontsize=10, color=INK, va="bottom")
    for j, (a, b) in enumerate(partners):
        colour = PAIRS[j]
        for channel in (a, b):
            box(ax, 0.6 + 1.1 * channel, y, 0.9, 0.55, f"x{channel}", colour=colour)
        start, end = (1.05 + 1.1 * a, y + 0.58), (1.05 + 1.1 * b, y + 0.58)
        bend = 0.6 if b - a == 1 else 0.14 + 0.07 * j     # arc3 peaks at bend · distance / 2
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="<|-|>", mutation_scale=10,
                                     color=INK, lw=1, connectionstyle=f"arc3,rad=-{bend}"))
        peak = y + 0.58 + bend * (end[0] - start[0]) / 2
        ax.text((start[0] + end[0]) / 2, peak, f"φ{j}", ha="center", va="center", fontsize=9,
                color=INK, bbox=dict(facecolor="white", edgecolor="none", pad=0.5))


def pairing():
    """Which channels of a head (D = 8) turn together: Mistral's neighbours, HF's halves."""
    d = 8
    figure, ax = canvas(9.6, 4.6, title="Which channels of a head (D = 8) turn together, "
                                        "and by which angle")
    _pairs(ax, 2.8, [(2 * j, 2 * j + 1) for j in range(d // 2)],
           "Mistral (interleaved): pair j = channels (2j, 2j + 1)", top=3.9)
    _pairs(ax, 0.2, [(j, j + d // 2) for j in range(d // 2)],
           "Hugging Face (rotate_half): pair j = channels (j, j + D/2)", top=1.95)
    return figure


FIGURES = {"02_rotation": rotation, "02_rope_2d": rope_2d, "02_pairing": pairing}
