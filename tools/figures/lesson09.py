"""Lesson 09's diagrams: the training loop, packing with a block-causal mask, the trained rows."""
from __future__ import annotations

import math

from matplotlib.patches import Rectangle

from ._style import (ADAPTER, DECODER, IMAGE, INK, MUTED, OUTPUT, TOKENS, arrow, box, canvas,
                     left, right, tokenizer, top)

EXAMPLES = ["#a8dadc", "#f6bd60", "#cdb4db"]  # one tint per packed example


def training_loop():
    """Data → tokens → packed batch → model → loss on the answers → AdamW, then evaluation."""
    figure, ax = canvas(13.0, 3.9, title="Training a tiny Pixtral: data → tokens → packed batch "
                        "→ loss → update")
    w, h, y1, y0 = 2.1, 0.95, 2.2, 0.35
    data = box(ax, 0.2, y1, w, h, "synthetic pictures\n+ question + answer\n(PIL, on the fly)",
               colour=IMAGE, size=9)
    tokens = box(ax, 2.75, y1, w, h, "chat template\n+ answer + </s>\n(lesson 04)",
                 colour=TOKENS, size=9)
    packed = box(ax, 5.3, y1, w, h, "pack a batch:\nblock-causal mask,\npositions restart",
                 colour=TOKENS, size=9, bold=True)
    model = box(ax, 7.85, y1, w, h, "Pixtral, small widths\n(lessons 01–06)", colour=DECODER,
                dark=True, size=9)
    loss = box(ax, 10.4, y1, w, h, "loss on the\nanswer tokens only", colour=OUTPUT, dark=True,
               size=9, bold=True)
    adam = box(ax, 10.4, y0, w, h, "AdamW step\n(only the used rows\nof the vocab tables)",
               colour=OUTPUT, dark=True, size=9)
    save = box(ax, 5.3, y0, w, h, "save_folder /\nfrom_folder\n(lesson 08)", colour=MUTED,
               size=9)
    evaluate = box(ax, 0.2, y0, w + 0.55, h, "exact match with\ngenerate (lesson 07)\n"
                   "on held-out pictures", colour=MUTED, size=9)
    for a, b in [(data, tokens), (tokens, packed), (packed, model), (model, loss)]:
        arrow(ax, right(a), left(b))
    arrow(ax, (11.45, y1), (11.45, y0 + h))
    arrow(ax, (10.4, y0 + h * 0.75), (8.9, y1), text="")
    ax.text(9.0, 1.6, "next step", fontsize=8, color=INK, ha="right")
    arrow(ax, (10.4, y0 + h * 0.3), (7.4, y0 + h * 0.3))
    ax.text(8.9, y0 + h * 0.3 - 0.1, "after the last step", fontsize=8, color=INK,
            ha="center", va="top")
    arrow(ax, left(save), right(evaluate))
    return figure


def packing(lengths=(4, 3, 5), answer_rows=2):
    """Three examples in one row; the mask lets a token read earlier tokens of its own example."""
    n = sum(lengths)
    cell = 0.3
    figure, ax = canvas(12.0, 5.7, title=f"Packing {len(lengths)} examples into one sequence "
                        f"of N = {n} tokens")
    example = [k for k, length in enumerate(lengths) for _ in range(length)]
    position = [i for length in lengths for i in range(length)]
    starts = [sum(lengths[:k]) for k in range(len(lengths))]
    trained = [i for k, s in enumerate(starts) for i in range(s + lengths[k] - answer_rows,
                                                                s + lengths[k])]
    x0, y_row = 2.3, 4.55
    ax.text(x0 - 0.15, y_row + cell / 2, "example", ha="right", va="center", fontsize=9,
            color=INK)
    ax.text(x0 - 0.15, y_row - cell / 2, "position", ha="right", va="center", fontsize=9,
            color=INK)
    for i in range(n):
        ax.add_patch(Rectangle((x0 + i * cell, y_row), cell, cell, facecolor=EXAMPLES[example[i]],
                               edgecolor=INK, linewidth=0.6))
        ax.text(x0 + (i + 0.5) * cell, y_row + cell / 2, "ABC"[example[i]], ha="center",
                va="center", fontsize=8, color=INK)
        ax.text(x0 + (i + 0.5) * cell, y_row - cell / 2, str(position[i]), ha="center",
                va="center", fontsize=8, color=INK)
    # the mask: query i (row) may read key j (column)
    y_top = 3.85
    for i in range(n):
        for j in range(n):
            allowed = example[i] == example[j] and j <= i
            ax.add_patch(Rectangle((x0 + j * cell, y_top - (i + 1) * cell), cell, cell,
                                   facecolor=EXAMPLES[example[i]] if allowed else "white",
                                   edgecolor="#bbbbbb", linewidth=0.5))
        if i in trained:
            ax.text(x0 + n * cell + 0.1, y_top - (i + 0.5) * cell, "◀ loss", va="center",
                    fontsize=8, color=OUTPUT)
    ax.add_patch(Rectangle((x0, y_top - n * cell), n * cell, n * cell, fill=False,
                           edgecolor=INK, linewidth=1))
    ax.text(x0 + n * cell / 2, y_top + 0.08, "key j (the token read)", ha="center", va="bottom",
            fontsize=9, color=INK)
    ax.text(x0 - 0.15, y_top - n * cell / 2, "query i\n(the token\nreading)", ha="right",
            va="center", fontsize=9, color=INK)
    notes = ["Each example keeps its own colour: query i reads key j",
             "only if both are in the same example and j ≤ i.",
             "Everything between examples is masked (white), so",
             "each example gets exactly the logits it gets alone.",
             "",
             "Positions restart at 0 in each example:",
             "the RoPE angles are those of the example alone.",
             "",
             f"The loss reads {answer_rows} rows per example: the rows",
             "whose next token is the answer or </s>."]
    ax.text(x0 + n * cell + 1.1, 3.75, "\n".join(notes), va="top", fontsize=9, color=INK,
            linespacing=1.5)
    return figure


def _sizes() -> tuple[int, int, int]:
    """(V, K, dim): the vocabulary, the token ids the data uses, the width of lesson 09's model."""
    from minipixtral.reference import trained_config
    from minipixtral.synthetic import dataset_token_ids

    config = trained_config()
    used = dataset_token_ids(tokenizer())
    return config.vocab_size, len(used), config.dim


def trainable_rows():
    """Only the K used rows of the two vocabulary tables are trained; one column stands for the rest."""
    vocab, used, dim = _sizes()
    figure, ax = canvas(12.0, 4.4, title=f"Training {used} of the {vocab:,} rows of the two "
                        "vocabulary tables")
    table = box(ax, 0.4, 0.5, 1.6, 3.0, "", colour=MUTED)
    for y in (0.75, 1.3, 1.45, 2.2, 2.9, 3.05):                      # a few used rows, lit
        ax.add_patch(Rectangle((0.4, y), 1.6, 0.07, facecolor=OUTPUT, edgecolor="none"))
    ax.text(1.2, 3.62, f"output: {vocab:,} × {dim}", ha="center", fontsize=9, color=INK)
    ax.text(1.2, 0.3, "frozen; the unused rows\nare set to zero", ha="center", va="top",
            fontsize=8, color=INK)
    rows = box(ax, 3.6, 1.6, 1.6, 0.8, f"TrainableRows\n{used} × {dim}", colour=OUTPUT, dark=True,
               size=9)
    arrow(ax, (2.0, 2.0), left(rows), text="copy the used rows")
    rest = math.log(vocab - used)
    logits = box(ax, 6.6, 1.6, 2.4, 0.8, f"logits [M, {used} + 1]", colour=OUTPUT, dark=True,
                 size=9)
    arrow(ax, right(rows), left(logits), text="h @ rowsᵀ")
    ax.text(7.8, 1.35, f"the extra column: ln(V − K) = ln {vocab - used:,} = {rest:.3f}",
            ha="center", va="top", fontsize=9, color=INK)
    ax.text(10.6, 2.0, "softmax over these\nK + 1 columns =\nsoftmax over all\n"
            f"{vocab:,} tokens", ha="center", va="center", fontsize=9, color=INK)
    arrow(ax, right(logits), (9.6, 2.0))
    ax.text(7.8, 0.55, f"tok_embeddings ({vocab:,} × {dim}) likewise: its {used} used rows\n"
            "are trained, the others keep their starting values", ha="center", va="center",
            fontsize=9, color=INK)
    arrow(ax, (4.4, 1.6), (4.4, 1.0), dashed=True)
    back = box(ax, 3.3, 0.45, 2.2, 0.55, "write_back at the end", colour=MUTED, size=9)
    arrow(ax, left(back), (2.0, 0.72), dashed=True)
    return figure


FIGURES = {"09_training_loop": training_loop, "09_packing": packing,
           "09_trainable_rows": trainable_rows}
