"""Lesson 05's diagrams: the adapter, the merge into the [IMG] slots, and the count check."""
from __future__ import annotations

import numpy as np

from ._style import ADAPTER, IMAGE, INK, TOKENS, VISION, arrow, bottom, box, canvas, left, right, top
from ._style import tokenizer as course_tokenizer

VISION_DIM, DIM = 1024, 5120  # Pixtral-12B: the vision encoder's width, the decoder's width


def adapter():
    """One 1024-wide patch vector → Linear → GELU → Linear → a 5120-wide vector in an [IMG] slot."""
    w_in = VISION_DIM * DIM + DIM
    w_out = DIM * DIM + DIM
    figure, ax = canvas(12.0, 4.0, title="The adapter maps each patch vector on its own, "
                        f"{VISION_DIM} → {DIM}, and the merge puts it in an [IMG] slot")
    v = box(ax, 0.2, 2.4, 1.9, 0.9, f"patch vector v\n{VISION_DIM} numbers\n(vision encoder)",
            colour=VISION, size=9)
    lin1 = box(ax, 2.6, 2.4, 2.1, 0.9, f"w_in: Linear\n{VISION_DIM} → {DIM} + bias\n"
               f"{w_in:,} params", colour=ADAPTER, size=9)
    gelu = box(ax, 5.2, 2.4, 1.5, 0.9, "GELU\n(exact, erf)", colour=ADAPTER, size=9)
    lin2 = box(ax, 7.2, 2.4, 2.1, 0.9, f"w_out: Linear\n{DIM} → {DIM} + bias\n"
               f"{w_out:,} params", colour=ADAPTER, size=9)
    z = box(ax, 9.8, 2.4, 2.0, 0.9, f"z: {DIM} numbers\n(the decoder's width)", colour=ADAPTER,
            size=9)
    for a, b in [(v, lin1), (lin1, gelu), (gelu, lin2), (lin2, z)]:
        arrow(ax, right(a), left(b))
    # the token embeddings of a prompt, [IMG] slots among them
    tokens = ["[INST]", "[IMG]", "[IMG]", "[IMG_BREAK]", "[IMG]", "[IMG]", "[IMG_END]", "text…"]
    x = 0.9
    slots = []
    for token in tokens:
        w = 1.3 if token.startswith("[IMG_") else 1.0
        is_img = token == "[IMG]"
        b = box(ax, x, 0.5, w, 0.7, token, colour=ADAPTER if is_img else TOKENS, size=9)
        slots.append(b)
        x += w + 0.12
    ax.text(0.2, 0.2, f"the sequence the decoder reads: one {DIM}-wide vector per token "
            "(token embeddings in blue, adapter outputs in green)", fontsize=9, color=INK)
    arrow(ax, bottom(z), (top(slots[5])[0] + 0.2, top(slots[5])[1]))
    ax.text(bottom(z)[0] + 0.1, 1.75, "the k-th patch\n→ the k-th [IMG]", fontsize=9,
            color=INK, ha="left", va="center")
    return figure


def merge():
    """The merge for lesson 05's two-image prompt, tokenized by the real tokenizer."""
    tokenizer = course_tokenizer()
    images = [np.zeros((32, 48, 3), np.uint8), np.zeros((16, 32, 3), np.uint8)]  # A, B
    ids, pixels = tokenizer.encode_chat("Compare.", images=images)
    marks = tokenizer.image_ids
    names = {marks.img: "[IMG]", marks.img_break: "[IMG_BREAK]", marks.img_end: "[IMG_END]"}
    grids = [(p.shape[1] // 16, p.shape[2] // 16) for p in pixels]
    labels = [f"{'AB'[k]}{n}" for k, (rows, cols) in enumerate(grids) for n in range(rows * cols)]
    slots = [t for t, token in enumerate(ids) if token == marks.img]
    cell = 0.78
    figure, ax = canvas(0.6 + cell * len(ids) + 0.2, 5.6,
                        title="The merge: patch k of all images, in order, goes to the k-th "
                              "[IMG]; [IMG_BREAK] and [IMG_END] keep their embeddings")
    x0 = 0.6
    for t, token in enumerate(ids):  # bottom: the prompt after the merge
        kind = names.get(token)
        label = labels[slots.index(t)] if t in slots else ""
        box(ax, x0 + t * cell, 1.3, cell - 0.08, 0.6, label, size=9, bold=True,
            colour=ADAPTER if t in slots else TOKENS)
        ax.text(x0 + t * cell + 0.35, 1.22, kind or tokenizer.tekken.id_to_piece(token),
                ha="right", va="top", fontsize=8, rotation=40, rotation_mode="anchor", color=INK)
        ax.text(x0 + t * cell + 0.35, 1.96, str(t), ha="center", va="bottom", fontsize=7,
                color="#666666")
    ax.text(0.1, 1.6, "prompt", ha="left", va="center", fontsize=9, rotation=90, color=INK)
    first = slots[0] - 0.5 * (len(labels) - (slots[-1] - slots[0] + 1))
    for n, (label, slot) in enumerate(zip(labels, slots)):  # middle: the adapter's rows
        x = x0 + (first + n) * cell
        box(ax, x, 3.0, cell - 0.08, 0.55, label, colour=ADAPTER, size=9, bold=True)
        arrow(ax, (x + 0.35, 3.0), (x0 + slot * cell + 0.35, 2.15))
    ax.text(x0 + first * cell - 0.15, 3.27, "adapter output rows\n(all images, in order)",
            ha="right", va="center", fontsize=9, color=INK)
    size, x = 0.45, x0 + first * cell
    for k, (rows, cols) in enumerate(grids):  # top: the images as grids of patches
        start = sum(r * c for r, c in grids[:k])
        for n in range(rows * cols):
            r, c = divmod(n, cols)
            box(ax, x + c * (size + 0.05), 3.9 + (rows - 1 - r) * (size + 0.05), size, size,
                labels[start + n], colour=IMAGE, size=8)
        ax.text(x + cols * (size + 0.05) + 0.1, 3.9 + rows * (size + 0.05) / 2,
                f"image {'AB'[k]}: {rows} × {cols} patches,\nread row by row", va="center",
                fontsize=9, color=INK)
        x += cols * (size + 0.05) + 2.7
    return figure


def count_check():
    """The [IMG] count and the patch count come from two pieces of code; the merge compares them."""
    tokenizer = course_tokenizer()
    ids, pixels = tokenizer.encode_chat("Describe.", images=[np.zeros((40, 70, 3), np.uint8)])
    height, width = pixels[0].shape[1:]
    rows, cols = height // 16, width // 16
    n_img = ids.count(tokenizer.image_ids.img)
    figure, ax = canvas(11.5, 3.6, title="Two pieces of code count the same image; the merge "
                        "checks, per image, that they agree")
    image = box(ax, 0.2, 1.3, 1.7, 0.9, "an image\n70 × 40 pixels", colour=IMAGE, size=9)
    resize = box(ax, 2.4, 1.3, 2.3, 0.9, f"resized to multiples\nof 16: {width} × {height}",
                 colour=IMAGE, size=9)
    tok = box(ax, 5.3, 2.3, 3.0, 0.9, f"tokenizer: {rows} rows of {cols} [IMG]\n"
              f"→ {n_img} [IMG] tokens", colour=TOKENS, size=9)
    enc = box(ax, 5.3, 0.3, 3.0, 0.9, f"vision encoder: {rows} × {cols} patches\n"
              f"→ {rows * cols} feature vectors", colour=VISION, size=9)
    check = box(ax, 8.9, 1.2, 2.4, 1.1, f"merge: image 0 has\n{n_img} [IMG] and {rows * cols}"
                " patches?\nequal, or ValueError", colour=ADAPTER, size=9)
    arrow(ax, right(image), left(resize))
    arrow(ax, right(resize), left(tok))
    arrow(ax, right(resize), left(enc))
    arrow(ax, right(tok), left(check))
    arrow(ax, right(enc), left(check))
    return figure


FIGURES = {"05_adapter": adapter, "05_merge": merge, "05_count_check": count_check}
