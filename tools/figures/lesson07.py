"""Lesson 07's diagrams: the generation loop, recomputing versus caching, the KV cache filling up."""
from __future__ import annotations

from matplotlib.patches import Rectangle

from ._style import (DECODER, IMAGE, INK, MUTED, OUTPUT, TOKENS, arrow, bottom, box, canvas,
                     left, right, top)

LIGHT = "#cfe0ec"  # a slot read from the cache: the decoder's colour, faded


def generation_loop():
    """One prefill over the prompt, then a loop: choose a token, feed it back, one per step."""
    figure, ax = canvas(12.0, 3.9, title="Generation: one prefill, then one token per step")
    prompt = box(ax, 0.2, 2.2, 2.0, 0.9, "prompt ids + images\n(lessons 01–05)", colour=TOKENS,
                 size=9)
    prefill = box(ax, 2.9, 2.2, 2.4, 0.9, "prefill: the model on\nall T prompt tokens",
                  colour=DECODER, dark=True, size=9)
    choose = box(ax, 6.3, 2.2, 2.4, 0.9, "choose the next token\ngreedy / temperature / top-p",
                 colour=OUTPUT, dark=True, size=9)
    text = box(ax, 9.6, 2.2, 2.2, 0.9, "token id → text\n(streamed)", colour=TOKENS, size=9)
    cache = box(ax, 2.9, 0.35, 2.4, 0.9, "KV cache, one per layer\n[max_len, n_kv_heads, D]",
                colour=LIGHT, size=9)
    decode = box(ax, 6.3, 0.35, 2.4, 0.9, "decode step: the model\non 1 token + the cache",
                 colour=DECODER, dark=True, size=9)
    arrow(ax, right(prompt), left(prefill))
    arrow(ax, right(prefill), left(choose), text="logits")
    arrow(ax, right(choose), left(text), text="token")
    arrow(ax, bottom(prefill), top(cache), text="")
    ax.text(4.2, 1.72, "writes slots 0…T−1", fontsize=8, color=INK, va="center")
    arrow(ax, (7.2, 2.2), (7.2, 1.25))
    ax.text(7.1, 1.72, "token", fontsize=8, color=INK, ha="right", va="center")
    arrow(ax, (7.8, 1.25), (7.8, 2.2))
    ax.text(7.9, 1.72, "logits", fontsize=8, color=INK, va="center")
    arrow(ax, (6.3, 0.95), (5.3, 0.95))
    arrow(ax, (5.3, 0.65), (6.3, 0.65))
    ax.text(8.9, 0.8, "reads every slot,\nwrites one more", fontsize=8, color=INK, va="center")
    return figure


def recompute_vs_cache(prompt: int = 4, steps: int = 4):
    """Rows: the model calls of a greedy answer; columns: positions; a filled cell is computed."""
    cell = 0.42
    figure, ax = canvas(11.6, 4.2, title=f"A prompt of {prompt} tokens, {steps} new tokens: "
                        "what each call of the model computes")
    without = sum(prompt + i for i in range(steps))
    with_cache = prompt + steps - 1
    for panel, (x0, name, total) in enumerate([(1.3, "without a cache", without),
                                               (7.0, "with a KV cache", with_cache)]):
        ax.text(x0 + cell * (prompt + steps) / 2, 3.3, name, ha="center", fontsize=11,
                color=INK, fontweight="bold")
        for step in range(steps):
            y = 2.6 - step * cell * 1.25
            known = prompt + step                       # tokens in the sequence at this call
            ax.text(x0 - 0.15, y + cell / 2, "prefill" if step == 0 else f"step {step}",
                    ha="right", va="center", fontsize=9, color=INK)
            for pos in range(prompt + steps - 1):
                if pos >= known:
                    colour = "white"
                elif panel == 0 or step == 0 or pos == known - 1:
                    colour = DECODER                    # computed in this call
                else:
                    colour = LIGHT                      # read from the cache
                ax.add_patch(Rectangle((x0 + pos * cell, y), cell, cell, facecolor=colour,
                                       edgecolor="#999999", linewidth=0.6))
        ax.text(x0 + cell * (prompt + steps - 1) / 2, 0.45,
                f"{total} token-passes", ha="center", fontsize=10, color=INK)
    ax.add_patch(Rectangle((4.4, 0.05), 0.3, 0.22, facecolor=DECODER, edgecolor="#999999"))
    ax.text(4.8, 0.16, "computed in this call", va="center", fontsize=9, color=INK)
    ax.add_patch(Rectangle((7.2, 0.05), 0.3, 0.22, facecolor=LIGHT, edgecolor="#999999"))
    ax.text(7.6, 0.16, "keys and values read from the cache", va="center", fontsize=9,
            color=INK)
    return figure


def kv_cache(max_len: int = 10, prompt: int = 6, steps: int = 3):
    """One layer's buffer, allocated once; the prefill fills slots 0…P−1, each step one more."""
    cell = 0.62
    x0 = 2.6
    figure, ax = canvas(11.0, 6.0, title="The KV cache of one layer, allocated once and "
                        "filled slot by slot")
    stages = [("allocated", 0, None), (f"prefill ({prompt} tokens)", prompt, (0, prompt))]
    stages += [(f"decode step {s}", prompt + s, (prompt + s - 1, prompt + s))
               for s in range(1, steps)]
    for pos in range(max_len):
        ax.text(x0 + (pos + 0.5) * cell, 4.95, str(pos), ha="center", fontsize=8, color=INK)
    ax.text(x0 - 0.15, 4.95, "slot", ha="right", fontsize=8, color=INK)
    for row, (name, length, written) in enumerate(stages):
        y = 4.2 - row * 1.05
        ax.text(x0 - 0.15, y + cell / 2, name, ha="right", va="center", fontsize=9, color=INK)
        for pos in range(max_len):
            if written and written[0] <= pos < written[1]:
                colour, label = OUTPUT if row > 1 else DECODER, "new"
            elif pos < length:
                colour, label = LIGHT, ""
            else:
                colour, label = "white", ""
            ax.add_patch(Rectangle((x0 + pos * cell, y), cell, cell, facecolor=colour,
                                   edgecolor="#999999", linewidth=0.8))
        if length:
            ax.annotate("", xy=(x0 + length * cell, y - 0.08), xytext=(x0, y - 0.08),
                        arrowprops=dict(arrowstyle="<->", color=INK, lw=0.9))
            ax.text(x0 + max_len * cell + 0.15, y + cell / 2,
                    f"length = {length}\nattention reads K[0:{length}], V[0:{length}]",
                    va="center", fontsize=8, color=INK)
        else:
            ax.text(x0 + max_len * cell + 0.15, y + cell / 2, "length = 0: zeros, no\n"
                    "reallocation later", va="center", fontsize=8, color=INK)
    for colour, text, x in [(DECODER, "written by the prefill", 0.6),
                            (OUTPUT, "written by this step", 3.9),
                            (LIGHT, "already there", 7.5)]:
        ax.add_patch(Rectangle((x, 0.1), 0.3, 0.22, facecolor=colour, edgecolor="#999999"))
        ax.text(x + 0.4, 0.21, text, va="center", fontsize=9, color=INK)
    ax.text(5.5, 0.6, f"k and v: [max_len = {max_len}, n_kv_heads, head_dim] each, "
            "one pair per decoder layer; a slot holds one token", ha="center", fontsize=9,
            color=INK)
    return figure


FIGURES = {"07_generation_loop": generation_loop, "07_recompute_vs_cache": recompute_vs_cache,
           "07_kv_cache": kv_cache}
