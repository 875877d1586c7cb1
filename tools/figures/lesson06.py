"""Lesson 06's diagrams: the decoder with its real sizes, GQA head sharing, Pixtral's parts."""
from __future__ import annotations

from ._style import (ADAPTER, DECODER, IMAGE, INK, OUTPUT, TOKENS, VISION, arrow, box, canvas,
                     left, right)


def _config():
    from minipixtral.decoder import DecoderConfig  # the real sizes: params.json's values

    return DecoderConfig()


def decoder():
    """Embeddings, n_layers pre-norm blocks, a final norm, the output head; one block below."""
    c = _config()
    figure, ax = canvas(13.0, 4.6, title="The decoder with its real sizes: embeddings, "
                        f"{c.n_layers} pre-norm blocks, a final norm, the output head")
    row = [(f"ids [T]\n+ image features\n(lessons 04–05)", TOKENS, False),
           (f"tok_embeddings\n{c.vocab_size} × {c.dim}", DECODER, True),
           (f"layers\n{c.n_layers} blocks", DECODER, True),
           ("norm\nRMSNorm", DECODER, True),
           (f"output\n{c.dim} → {c.vocab_size}\n(untied)", DECODER, True),
           (f"logits [T, {c.vocab_size}]\n→ next token\n(lesson 07)", OUTPUT, True)]
    boxes = []
    for i, (text, colour, dark) in enumerate(row):
        boxes.append(box(ax, 0.2 + i * 2.15, 2.75, 1.75, 1.0, text, colour=colour, dark=dark,
                         size=9))
        if i:
            arrow(ax, right(boxes[i - 1]), left(boxes[i]))
    block = [("x", TOKENS, False, 0.5),
             ("attention_norm\nRMSNorm", DECODER, True, 1.45),
             (f"attention (GQA)\n{c.n_heads} query, {c.n_kv_heads} KV heads\n"
              f"RoPE θ = {c.rope_theta:.0e}, causal".replace("e+0", "e"), DECODER, True, 2.2),
             ("+", "white", False, 0.4),
             ("ffn_norm\nRMSNorm", DECODER, True, 1.3),
             (f"feed_forward\nSwiGLU, {c.hidden_dim}", DECODER, True, 1.6),
             ("+", "white", False, 0.4),
             ("out", TOKENS, False, 0.55)]
    x, parts = 0.3, []
    for text, colour, dark, w in block:
        parts.append(box(ax, x, 0.75, w, 0.95, text, colour=colour, dark=dark, size=9))
        if len(parts) > 1:
            arrow(ax, right(parts[-2]), left(parts[-1]))
        x += w + 0.35
    # the residual paths: x around attention, h around the feed-forward
    for (xa, ya), b, y in [((0.55, 1.7), 3, 2.05), ((right(parts[3])[0] + 0.15, 1.225), 6, 1.9)]:
        xb = parts[b][0] + parts[b][2] / 2
        ax.plot([xa, xa, xb], [ya, y, y], color="#777777", lw=1)
        arrow(ax, (xb, y), (xb, 1.7), colour="#777777")
    ax.text(parts[2][0] + 0.5, 2.1, "residual", fontsize=8, color="#777777")
    ax.plot([boxes[2][0], 0.3], [2.75, 2.2], ls=":", color="#777777")
    ax.plot([boxes[2][0] + boxes[2][2], x - 0.35], [2.75, 2.2], ls=":", color="#777777")
    ax.text(6.5, 0.3, "one block:  h = x + attention(attention_norm(x)),   "
            "out = h + feed_forward(ffn_norm(h))", ha="center", fontsize=9, style="italic",
            color=INK)
    return figure


def gqa():
    """Query head h reads key/value head h // (n_heads / n_kv_heads)."""
    c = _config()
    group = c.n_heads // c.n_kv_heads
    step = 0.34
    x0 = 2.6
    figure, ax = canvas(x0 + step * c.n_heads + 0.3, 3.6,
                        title=f"GQA in Pixtral's decoder: {c.n_heads} query heads share "
                              f"{c.n_kv_heads} key/value heads, {group} query heads each")
    for h in range(c.n_heads):
        g = h // group
        x = x0 + h * step + (g * 0.0)
        box(ax, x, 2.1, step - 0.06, 0.55, str(h), colour=DECODER, dark=True, size=7)
        centre = x0 + (g * group + group / 2) * step - 0.03
        arrow(ax, (x + (step - 0.06) / 2, 2.1), (centre, 1.25), style="-", colour="#777777")
    for g in range(c.n_kv_heads):
        box(ax, x0 + g * group * step + 0.05, 0.7, group * step - 0.16, 0.55, f"KV {g}",
            colour=TOKENS, size=9)
    ax.text(x0 - 0.15, 2.37, f"query heads\nwq: {c.n_heads} × {c.head_dim}", ha="right",
            va="center", fontsize=9, color=INK)
    ax.text(x0 - 0.15, 0.97, f"key/value heads\nwk, wv: {c.n_kv_heads} × {c.head_dim}",
            ha="right", va="center", fontsize=9, color=INK)
    ax.text(x0 + step * c.n_heads / 2, 0.35, f"query head h reads KV head h // {group}: "
            f"heads 0–{group - 1} read KV 0, heads {group}–{2 * group - 1} read KV 1, …  "
            f"The cache (lesson 07) stores only the {c.n_kv_heads} KV heads.",
            ha="center", va="center", fontsize=9, color=INK)
    return figure


def pixtral():
    """Pixtral's top-level parts under the checkpoint's names, and the two halves of forward."""
    c = _config()
    figure, ax = canvas(12.6, 4.0, title="Pixtral is a Decoder with two more parts; "
                        "the parts' names are the checkpoint's")
    images = box(ax, 0.2, 2.3, 1.3, 0.8, "images", colour=IMAGE, size=9)
    vision = box(ax, 2.0, 2.3, 2.0, 0.8, "vision_encoder.*\n(lesson 03)", colour=VISION, size=9)
    adapt = box(ax, 4.5, 2.3, 2.5, 0.8, "vision_language_adapter.*\n(lesson 05)",
                colour=ADAPTER, size=9)
    ids = box(ax, 0.2, 0.8, 1.3, 0.8, "ids [T]", colour=TOKENS, size=9)
    embed = box(ax, 2.0, 0.8, 2.0, 0.8, "tok_embeddings", colour=DECODER, dark=True, size=9)
    merge = box(ax, 4.5, 0.8, 2.5, 0.8, "merge: features\nat the [IMG] slots", colour=ADAPTER,
                size=9)
    layers = box(ax, 7.5, 0.8, 1.7, 0.8, f"layers.0–{c.n_layers - 1}", colour=DECODER,
                 dark=True, size=9)
    norm = box(ax, 9.6, 0.8, 1.0, 0.8, "norm", colour=DECODER, dark=True, size=9)
    out = box(ax, 11.0, 0.8, 1.4, 0.8, "output\n→ logits", colour=DECODER, dark=True, size=9)
    for a, b in [(images, vision), (vision, adapt), (ids, embed), (embed, merge),
                 (merge, layers), (layers, norm), (norm, out)]:
        arrow(ax, right(a), left(b))
    arrow(ax, (5.75, 2.3), (5.75, 1.6))
    ax.plot([2.0, 7.0], [0.45, 0.45], color=INK, lw=1)
    ax.text(4.5, 0.38, "embed(ids, images)", ha="center", va="top", fontsize=9, color=INK)
    ax.plot([7.5, 12.4], [0.45, 0.45], color=INK, lw=1)
    ax.text(9.95, 0.38, "forward_embeddings(h) (the Decoder's)", ha="center", va="top",
            fontsize=9, color=INK)
    ax.text(9.95, 2.7, "Pixtral.forward(ids, images)\n= embed, then forward_embeddings",
            ha="center", va="center", fontsize=10, color=INK)
    return figure


FIGURES = {"06_decoder": decoder, "06_gqa": gqa, "06_pixtral": pixtral}
