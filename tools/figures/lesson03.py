"""Lesson 03's diagrams: the encoder, attention with numbers, the masks, the pre-norm block."""
from __future__ import annotations

import math

from ._style import (ADAPTER, IMAGE, INK, MUTED, VISION, arrow, box, canvas, left, right)

# The 4-token example of lesson 03, section 2 (the lesson recomputes it and checks every number).
Q = [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [2.0, -1.0]]
K = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 1.0]]
V = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]]
TOKENS = ["t0", "t1", "t2", "t3"]
CELL_W, CELL_H = 0.55, 0.36


def _example():
    """q, k, v and the scores q·kᵀ/√d of the example, as torch tensors."""
    import torch

    q, k, v = (torch.tensor(m) for m in (Q, K, V))
    return q, k, v, q @ k.T / math.sqrt(q.shape[1])


def _tint(colour: str, t: float) -> str:
    """colour mixed with white: t = 0 gives white, t = 1 the colour."""
    rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(255 - (255 - c) * t):02x}" for c in rgb)


def _matrix(ax, x, y, values, *, title="", colour=VISION, shade=False, rows=TOKENS,
            cols=None, cell_w=CELL_W):
    """A grid of numbers with its top left corner at (x, y); −inf is drawn as a grey −∞."""
    values = [[float(v) for v in row] for row in values]
    for r, row in enumerate(values):
        for c, value in enumerate(row):
            masked = math.isinf(value)
            fill = MUTED if masked else _tint(colour, 0.25 + 0.75 * value) if shade else colour
            box(ax, x + c * cell_w, y - (r + 1) * CELL_H, cell_w, CELL_H,
                "−∞" if masked else f"{value:.2f}".replace("-", "−"), colour=fill, size=8)
    for r, name in enumerate(rows or ()):
        ax.text(x - 0.06, y - (r + 0.5) * CELL_H, name, ha="right", va="center", fontsize=8,
                color=INK)
    for c, name in enumerate(cols or ()):
        ax.text(x + (c + 0.5) * cell_w, y + 0.05, name, ha="center", va="bottom", fontsize=8,
                color=INK)
    if title:
        ax.text(x + len(values[0]) * cell_w / 2, y + (0.3 if cols else 0.08), title,
                ha="center", va="bottom", fontsize=10, color=INK, fontweight="bold")
    return x, y - len(values) * CELL_H, len(values[0]) * cell_w, len(values) * CELL_H


def attention_numbers():
    """scores = q·kᵀ/√d, weights = softmax of each row, output = weights · v, with numbers."""
    q, k, v, scores = _example()
    weights = scores.softmax(dim=-1)
    out = weights @ v
    figure, ax = canvas(13.0, 4.1, title="Attention with numbers: 4 tokens, head size d = 2 "
                        "(no mask: every token reads every token)")
    top = 2.95
    _matrix(ax, 0.45, top, q, title="q", cols=["", ""], cell_w=0.5)
    _matrix(ax, 1.85, top, k, title="k", cols=["", ""], cell_w=0.5)
    vb = _matrix(ax, 3.25, top, v, title="v", cols=["", ""], cell_w=0.5)
    sb = _matrix(ax, 4.95, top, scores, title="scores = q·kᵀ / √2", cols=TOKENS, colour=MUTED)
    wb = _matrix(ax, 8.0, top, weights, title="weights = softmax(row)", cols=TOKENS, shade=True)
    ob = _matrix(ax, 11.55, top, out, title="out = weights · v", cols=["", ""], cell_w=0.6)
    arrow(ax, (right(vb)[0] + 0.12, right(vb)[1]), (left(sb)[0] - 0.3, left(sb)[1]))
    arrow(ax, (right(sb)[0] + 0.1, right(sb)[1]), (left(wb)[0] - 0.3, left(wb)[1]))
    arrow(ax, (right(wb)[0] + 0.1, right(wb)[1]), (left(ob)[0] - 0.3, left(ob)[1]))
    ax.text(9.1, 1.35, "a row per query, a column per key", ha="center", va="top",
            fontsize=8, color=INK)
    s, w = scores[1, 2].item(), weights[0]
    ax.text(6.5, 0.72, f"score of query t1 for key t2:  q₁·k₂ / √2 = (0·1 + 2·1) / 1.41 = "
            f"{s:.2f};   every row of weights sums to 1", ha="center", va="center",
            fontsize=9, color=INK)
    ax.text(6.5, 0.3, "out₀ = " + " + ".join(f"{w[j]:.2f}·v{j}" for j in range(4))
            + f" = ({out[0, 0]:.2f}, {out[0, 1]:.2f}):  a weighted mean of the values",
            ha="center", va="center", fontsize=9, color=INK)
    return figure


def attention_masks():
    """The same scores under the causal mask and under a block-diagonal mask of two images."""
    import torch

    *_, scores = _example()
    causal = torch.ones(4, 4, dtype=torch.bool).tril()
    image = torch.tensor([0, 0, 1, 1])
    masks = [("causal mask\nquery t reads keys s ≤ t\n(the decoder, lesson 06)", causal),
             ("block-diagonal mask\nimage A = t0, t1; image B = t2, t3\n"
              "(the encoder, this lesson)", image[:, None] == image[None, :])]
    figure, ax = canvas(13.0, 5.4, title="The same scores with a mask: −∞ where a query may not "
                        "read a key, so that key's weight is 0")
    for n, (label, mask) in enumerate(masks):
        top = 4.3 - n * 2.45
        ax.text(1.4, top - 0.75, label, ha="center", va="center", fontsize=9, color=INK)
        allowed = [["✓" if a else "" for a in row] for row in mask.tolist()]
        for r, row in enumerate(allowed):
            for c, mark in enumerate(row):
                box(ax, 3.4 + c * 0.42, top - (r + 1) * CELL_H, 0.42, CELL_H, mark,
                    colour=VISION if mark else MUTED, size=9)
        for c, name in enumerate(TOKENS):
            ax.text(3.4 + (c + 0.5) * 0.42, top + 0.05, name, ha="center", va="bottom",
                    fontsize=8, color=INK)
            ax.text(3.34, top - (c + 0.5) * CELL_H, name, ha="right", va="center", fontsize=8,
                    color=INK)
        ax.text(3.4 + 0.84, top + 0.3, "may read?", ha="center", va="bottom", fontsize=10,
                color=INK, fontweight="bold")
        masked = scores.masked_fill(~mask, float("-inf"))
        sb = _matrix(ax, 6.0, top, masked, title="scores + mask", cols=TOKENS, colour=MUTED)
        wb = _matrix(ax, 9.6, top, masked.softmax(dim=-1), title="weights = softmax(row)",
                     cols=TOKENS, shade=True)
        arrow(ax, (5.2, top - 2 * CELL_H), (left(sb)[0] - 0.3, left(sb)[1]))
        arrow(ax, (right(sb)[0] + 0.1, right(sb)[1]), (left(wb)[0] - 0.3, left(wb)[1]),
              text="softmax")
    return figure


def prenorm_block():
    """x → RMSNorm → attention → + → RMSNorm → SwiGLU → +, with the two residual paths."""
    figure, ax = canvas(11.9, 3.4, title="The pre-norm block: each branch reads a normalised "
                        "copy and adds its result to the residual stream")
    row = [("x\n[T, dim]", MUTED, 0.9),
           ("attention_norm\nRMSNorm", VISION, 1.45),
           ("attention\n2-D RoPE, mask", VISION, 1.5),
           ("+", "white", 0.45),
           ("ffn_norm\nRMSNorm", VISION, 1.3),
           ("feed_forward\nSwiGLU", VISION, 1.4),
           ("+", "white", 0.45),
           ("out\n[T, dim]", MUTED, 0.9)]
    x, parts = 0.3, []
    for text, colour, w in row:
        parts.append(box(ax, x, 0.9, w, 0.9, text, colour=colour, size=9))
        if len(parts) > 1:
            arrow(ax, right(parts[-2]), left(parts[-1]))
        x += w + 0.42
    # the residual paths: x around the attention branch, h around the feed-forward branch
    for start, plus, y in [(right(parts[0])[0] + 0.2, 3, 2.45),
                           (right(parts[3])[0] + 0.2, 6, 2.25)]:
        end = parts[plus][0] + parts[plus][2] / 2
        ax.plot([start, start, end], [1.35, y, y], color=INK, lw=1.2)
        arrow(ax, (end, y), (end, 1.8))
    ax.text((right(parts[0])[0] + parts[3][0]) / 2 + 0.3, 2.5, "residual: x itself",
            ha="center", va="bottom", fontsize=9, color=INK)
    ax.text((right(parts[3])[0] + parts[6][0]) / 2 + 0.3, 2.3, "residual: h itself",
            ha="center", va="bottom", fontsize=9, color=INK)
    ax.text(right(parts[3])[0] + 0.2, 0.75, "h", ha="center", va="top", fontsize=10,
            color=INK, style="italic")
    ax.text(5.95, 0.3, "h = x + attention(attention_norm(x)),    "
            "out = h + feed_forward(ffn_norm(h))", ha="center", va="center", fontsize=10,
            color=INK, style="italic")
    return figure


def encoder():
    """Images → patch_conv → one sequence → ln_pre → the blocks → features, real sizes."""
    from minipixtral.vision import VisionConfig

    c = VisionConfig()
    p, d = c.patch_size, c.hidden_size
    figure, ax = canvas(12.8, 3.3, title="Pixtral's vision encoder (box names are the module "
                        "names of the checkpoint)")
    row = [(f"images\n[3, H_n, W_n]\n(lesson 01)", IMAGE, 1.55),
           (f"patch_conv\n{p}×{p}, stride {p}\n→ [h_n·w_n, {d}]", VISION, 1.75),
           (f"concatenate\nall images\n→ [N, {d}]", VISION, 1.5),
           ("ln_pre\nRMSNorm", VISION, 1.2),
           (f"transformer.layers\n{c.num_hidden_layers} pre-norm blocks\n"
            f"{c.num_attention_heads} heads, 2-D RoPE,\nblock-diagonal mask", VISION, 2.35),
           (f"features\n[N, {d}]\n→ adapter (lesson 05)", ADAPTER, 1.9)]
    x, parts = 0.25, []
    for text, colour, w in row:
        parts.append(box(ax, x, 1.1, w, 1.3, text, colour=colour, size=9,
                         bold=text.startswith("transformer")))
        if len(parts) > 1:
            arrow(ax, right(parts[-2]), left(parts[-1]))
        x += w + 0.4
    ax.text(6.4, 0.45, "N = Σ h_n·w_n patches of all images, one vector each.  "
            "No class token, no table of position embeddings, no norm after the last block.",
            ha="center", va="center", fontsize=9, color=INK)
    return figure


FIGURES = {"03_encoder": encoder, "03_attention_numbers": attention_numbers,
           "03_attention_masks": attention_masks, "03_prenorm_block": prenorm_block}
