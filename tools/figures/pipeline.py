"""The whole data flow of Pixtral, once in colour and once per lesson with its piece lit."""
from __future__ import annotations

from functools import partial

from ._style import (ADAPTER, DECODER, IMAGE, INK, MUTED, OUTPUT, TOKENS, VISION, arrow, box,
                     canvas, left, right)

# stage: (colour, dark text?, the lessons that build it)
STAGES = {
    "image": (IMAGE, False, {"01"}),
    "patches": (IMAGE, False, {"01"}),
    "encoder": (VISION, False, {"02", "03"}),
    "adapter": (ADAPTER, False, {"05"}),
    "text": (TOKENS, False, {"04"}),
    "sequence": (TOKENS, False, {"04", "05"}),
    "decoder": (DECODER, True, {"06"}),
    "next": (OUTPUT, True, {"07"}),
}
EVERYTHING = {"00", "08", "09"}  # the overview, real weights and training touch every piece


def pipeline(lesson: str | None = None):
    """Image → patches → encoder → adapter → [IMG] slots → decoder → next token."""
    captions = {None: "Pixtral: from pixels and words to the next token",
                "08": "Lesson 08 fills every box with the real weights",
                "09": "Lesson 09 trains every box from scratch"}
    figure, ax = canvas(11.5, 4.0, title=captions.get(lesson, f"Where lesson {lesson} sits"))

    def stage(name, x, y, w, h, text):
        colour, dark, lessons = STAGES[name]
        lit = lesson is None or lesson in EVERYTHING or lesson in lessons
        b = box(ax, x, y, w, h, text, colour=colour if lit else MUTED, dark=dark and lit,
                bold=lit and lesson is not None and lesson not in EVERYTHING)
        ax.text(x + w / 2, y - 0.07, "lesson " + ", ".join(sorted(lessons)), ha="center",
                va="top", fontsize=8, color=INK if lit else "#999999")
        return b

    image = stage("image", 0.2, 2.6, 1.6, 0.9, "image\n512 × 512 pixels")
    patches = stage("patches", 2.35, 2.6, 2.25, 0.9, "32 × 32 = 1024 patches\nof 16 × 16 × 3")
    encoder = stage("encoder", 5.1, 2.6, 2.3, 0.9, "vision encoder\n24 layers, 2-D RoPE")
    adapter = stage("adapter", 7.9, 2.6, 1.9, 0.9, "adapter\nGELU MLP → 5120")
    text = stage("text", 0.2, 0.75, 1.6, 0.9, "prompt text\n→ token ids")
    sequence = stage("sequence", 2.4, 0.75, 3.6, 0.9,
                     "[INST] [IMG]…[IMG_BREAK]…[IMG_END]\nyour question [/INST]")
    decoder = stage("decoder", 6.6, 0.75, 2.0, 0.9, "decoder\n40 layers, GQA")
    nxt = stage("next", 9.2, 0.75, 2.0, 0.9, "logits → the\nnext token")
    arrow(ax, right(image), left(patches))
    arrow(ax, right(patches), left(encoder))
    arrow(ax, right(encoder), left(adapter))
    arrow(ax, right(text), left(sequence))
    # the adapter's output drops into the [IMG] slots of the sequence
    arrow(ax, (9.5, 2.6), (9.5, 2.1), style="-")
    arrow(ax, (9.5, 2.1), (4.2, 2.1), style="-")
    arrow(ax, (4.2, 2.1), (4.2, 1.65))
    ax.text(6.5, 2.13, "one vector per [IMG] slot", fontsize=8, color=INK, ha="center",
            va="bottom")
    arrow(ax, right(sequence), left(decoder))
    arrow(ax, right(decoder), left(nxt))
    # generation: the new token joins the sequence
    arrow(ax, (10.85, 0.75), (10.85, 0.3), style="-", dashed=True)
    arrow(ax, (10.85, 0.3), (5.4, 0.3), style="-", dashed=True)
    arrow(ax, (5.4, 0.3), (5.4, 0.75), dashed=True)
    ax.text(8.1, 0.25, "appended to the sequence, and the decoder runs again (generation)",
            fontsize=8, ha="center", va="top", color=INK)
    return figure


FIGURES = {"pipeline": pipeline}
FIGURES.update({f"pipeline_{n}": partial(pipeline, n)
                for n in ("01", "02", "03", "04", "05", "06", "07", "08", "09")})
