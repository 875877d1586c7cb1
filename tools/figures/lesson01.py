"""Lesson 01's diagrams: the resize rule, bicubic taps, the patch grid, conv = patchify + matmul."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ._style import (IMAGE, INK, MUTED, VISION, arrow, box, canvas, left, right)

PATCH = 16


def _resized(width: int, height: int) -> tuple[int, int]:
    from minipixtral.image import resized_size  # the lesson's own rule

    return resized_size(width, height)


def resize_rule():
    """Three inputs (dashed) and the size the model sees (solid, with its 16-pixel grid)."""
    examples = [(70, 40), (1500, 600), (1025, 113)]
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.4),
                                gridspec_kw=dict(width_ratios=[1, 1.3, 1.3]))
    for ax, (w, h) in zip(axes, examples):
        W, H = _resized(w, h)
        for x in range(0, W + 1, PATCH):
            ax.plot([x, x], [0, H], color=INK, lw=0.3, alpha=0.6)
        for y in range(0, H + 1, PATCH):
            ax.plot([0, W], [y, y], color=INK, lw=0.3, alpha=0.6)
        ax.add_patch(plt.Rectangle((0, 0), W, H, facecolor=IMAGE, alpha=0.35, edgecolor=INK))
        ax.add_patch(plt.Rectangle((0, 0), w, h, fill=False, ls="--", lw=1.5, color="#c0392b"))
        ax.set_xlim(-0.03 * max(w, W), 1.03 * max(w, W))
        ax.set_ylim(1.05 * max(h, H), -0.05 * max(h, H))
        ax.set_aspect("equal")
        ax.axis("off")
        r = max(w, h) / 1024
        step = f"shrink by r = {r:.3f} → {max(round(w / r), 1)}×{max(round(h / r), 1)}" \
            if r > 1 else "fits: no shrinking"
        ax.set_title(f"{w}×{h} → {W}×{H} = {W // PATCH}×{H // PATCH} patches\n{step}, "
                     f"then up to multiples of 16", fontsize=9, color=INK)
    axes[0].plot([], [], "--", color="#c0392b", label="the input")
    axes[0].add_patch(plt.Rectangle((0, 0), 0, 0, facecolor=IMAGE, alpha=0.35, edgecolor=INK,
                                    label="what the model sees, in 16×16 patches"))
    figure.legend(loc="lower center", ncol=2, fontsize=9)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.14, top=0.84, wspace=0.08)
    return figure


def keys_kernel(s, a=-0.75):
    """Keys' cubic convolution kernel, the formula of the lesson."""
    s = np.abs(s)
    near = ((a + 2) * s - (a + 3)) * s * s + 1
    far = ((a * s - 5 * a) * s + 8 * a) * s - 4 * a
    return np.where(s <= 1, near, np.where(s < 2, far, 0.0))


def cubic_taps():
    """Keys' kernel for OpenCV and PIL, and the four taps of one output pixel at t = 0.3."""
    t = 0.3
    offsets = np.array([-1, 0, 1, 2]) - t            # tap positions relative to x
    weights = keys_kernel(offsets)
    s = np.linspace(-2.5, 2.5, 501)
    figure, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    axes[0].plot(s, keys_kernel(s), color=INK, label="a = −0.75 (OpenCV)")
    axes[0].plot(s, keys_kernel(s, -0.5), "--", color="#999999", label="a = −0.5 (PIL)")
    axes[0].set_xlabel("distance s (pixels)")
    axes[0].set_title("Keys' cubic kernel k(s)", color=INK)
    axes[0].legend(fontsize=9)
    axes[1].plot(s, keys_kernel(s), color=MUTED, lw=2)
    axes[1].stem(offsets, weights, basefmt=" ", linefmt=INK, markerfmt="o")
    for o, wgt in zip(offsets, weights):
        axes[1].annotate(f"{wgt:+.4f}", (o, wgt), textcoords="offset points", xytext=(6, 6),
                         fontsize=9, color=INK)
    axes[1].axvline(0, color="#c0392b", ls=":", label="the output pixel, at x")
    axes[1].set_xlabel("input pixel − x   (pixels j − 1, j, j + 1, j + 2)")
    axes[1].set_title(f"the 4 taps for t = {t}: weights sum to {weights.sum():.4f}", color=INK)
    axes[1].legend(fontsize=9, loc="upper left")
    for ax in axes:
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_ylim(-0.25, 1.15)
    figure.tight_layout()
    return figure


def patch_order():
    """A 70×40 image becomes 80×48: 3 rows of 5 patches, numbered row-major; one patch is 768
    numbers, channel by channel."""
    W, H = _resized(70, 40)
    cols, rows = W // PATCH, H // PATCH
    figure, ax = canvas(12.0, 2.6, title=f"70×40 → {W}×{H}: {rows} rows × {cols} columns = "
                                         f"{rows * cols} patches, numbered k = {cols}·r + c")
    size = 0.55
    top_y = 0.2 + rows * size
    r0, c0 = 1, 2                                    # the patch taken apart on the right
    for r in range(rows):
        for c in range(cols):
            box(ax, 0.8 + c * size, top_y - (r + 1) * size, size, size, str(cols * r + c),
                colour=VISION if (r, c) == (r0, c0) else IMAGE, bold=(r, c) == (r0, c0))
    ax.text(0.8, top_y + 0.06, "column c →", fontsize=9, color=INK, va="bottom")
    ax.text(0.7, top_y - 0.05, "row r ↓", fontsize=9, color=INK, ha="right", va="top")
    k, values = cols * r0 + c0, 3 * PATCH * PATCH
    middle = top_y - (r0 + 0.5) * size
    patch = box(ax, 4.0, middle - 0.4, 1.6, 0.8, f"patch {k}\n3 × 16 × 16", colour=VISION)
    arrow(ax, (0.8 + cols * size + 0.05, middle), left(patch))
    x = 6.5
    arrow(ax, right(patch), (x, middle), text="flatten")
    for i, channel in enumerate(["red", "green", "blue"]):
        box(ax, x + i * 1.75, middle - 0.25, 1.75, 0.5, f"{channel}: 256 values", colour=IMAGE,
            size=9)
    ax.text(x + 2.6, middle + 0.33, f"patchify(image)[{k}]: {values} numbers", fontsize=10,
            ha="center", va="bottom", color=INK, family="monospace")
    ax.text(x + 2.6, middle - 0.35, "ordered (channel, row in patch, column in patch)",
            fontsize=9, ha="center", va="top", color=INK)
    return figure


def conv_vs_matmul():
    """The patch embedding two ways, with the photo's sizes: a strided conv, or patchify + matmul."""
    W, H = _resized(512, 600)
    rows, cols, D = H // PATCH, W // PATCH, 1024
    N, values = rows * cols, 3 * PATCH * PATCH
    figure, ax = canvas(12.0, 3.4, title="The patch embedding: one convolution = patchify + "
                                         "one matrix product")
    image = box(ax, 0.2, 1.2, 1.7, 0.9, f"image\n[3, {H}, {W}]", colour=IMAGE)
    conv = box(ax, 2.7, 2.2, 3.3, 0.8, f"Conv2d(3, {D}, kernel 16,\nstride 16, no bias)",
               colour=VISION)
    grid = box(ax, 6.8, 2.2, 2.2, 0.8, f"[{D}, {rows}, {cols}]", colour=VISION)
    patches = box(ax, 2.7, 0.3, 3.3, 0.8, f"patchify → [{N}, {values}]\n{N} patches, row-major",
                  colour=IMAGE)
    matmul = box(ax, 6.8, 0.3, 2.2, 0.8, f"@ Wᵀ,  W = kernel\nreshaped [{D}, {values}]",
                 colour=VISION)
    out = box(ax, 9.9, 1.2, 1.9, 0.9, f"embeddings\n[{N}, {D}]", colour=VISION, bold=True)
    arrow(ax, right(image), left(conv))
    arrow(ax, right(image), left(patches))
    arrow(ax, right(conv), left(grid))
    arrow(ax, right(patches), left(matmul))
    arrow(ax, right(grid), left(out))
    arrow(ax, right(matmul), left(out))
    ax.text(9.55, 2.25, "flatten,\ntranspose", fontsize=8, color=INK, ha="left")
    ax.text(10.85, 0.95, "the same numbers\n(up to float32 rounding)", fontsize=8, color=INK,
            ha="center", va="top")
    return figure


FIGURES = {"01_resize_rule": resize_rule, "01_cubic_taps": cubic_taps,
           "01_patch_order": patch_order, "01_conv_vs_matmul": conv_vs_matmul}
