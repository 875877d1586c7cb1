"""Lesson 00's diagrams: the course as a route, and text becoming token ids."""
from __future__ import annotations

from ._style import (ADAPTER, DECODER, IMAGE, INK, MUTED, OUTPUT, TOKENS, VISION, arrow, box,
                     canvas)

LESSONS = [  # number, title, colour of the part it builds
    ("00", "overview", MUTED), ("01", "images →\npatches", IMAGE), ("02", "2-D RoPE", VISION),
    ("03", "vision\nencoder", VISION), ("04", "image tokens,\nchat template", TOKENS),
    ("05", "adapter", ADAPTER), ("06", "decoder", DECODER), ("07", "generation", OUTPUT),
    ("08", "real weights", MUTED), ("09", "train a tiny\nPixtral", MUTED),
]
APPENDICES = ["A  the references", "B  the grader", "C  plotting helpers",
              "D  loading, the engineering"]


def course_map():
    """Ten lessons in a row, the appendices beside them."""
    figure, ax = canvas(12.0, 2.9, title="The course: one piece of Pixtral a lesson")
    for i, (number, title, colour) in enumerate(LESSONS):
        x = 0.15 + i * 1.18
        box(ax, x, 1.35, 1.0, 1.0, f"{number}\n{title}", colour=colour, size=8,
            dark=colour == DECODER)
        if i:
            arrow(ax, (x - 0.18, 1.85), (x, 1.85))
    ax.text(0.15, 0.95, "Appendices, to read when you need them:", fontsize=9, color=INK)
    for i, name in enumerate(APPENDICES):
        box(ax, 0.15 + i * 2.95, 0.2, 2.75, 0.55, name, colour="white", size=9)
    return figure


def token_ids():
    """A sentence cut into Tekken's pieces, each with its id (computed by the real tokenizer)."""
    from minipixtral.reference import mistral_tokenizer  # mistral_common's, from its own file

    tekken = mistral_tokenizer().instruct_tokenizer.tokenizer
    ids = tekken.encode("Pixtral sees images as patches.", bos=False, eos=False)
    pieces = [tekken.id_to_piece(i) for i in ids]
    width = 0.35 + 1.05 * len(ids)
    figure, ax = canvas(width, 2.4, title="Text → pieces → token ids (the real Tekken tokenizer)")
    for i, (piece, token) in enumerate(zip(pieces, ids)):
        x = 0.2 + i * 1.05
        box(ax, x, 1.0, 0.95, 0.5, repr(piece)[1:-1].replace(" ", "␣"), colour=TOKENS, size=9)
        arrow(ax, (x + 0.475, 1.0), (x + 0.475, 0.68))
        ax.text(x + 0.475, 0.45, str(token), ha="center", va="center", fontsize=10, color=INK,
                fontweight="bold")
    return figure


FIGURES = {"00_course_map": course_map, "00_token_ids": token_ids}
