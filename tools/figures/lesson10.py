"""Lesson 10's diagrams: int8 rows with one scale each, int4 groups packed two a byte, and the
two ways a QuantizedLinear computes y = x · Wᵀ. Every number drawn is computed from W here."""
from __future__ import annotations

import numpy as np
from matplotlib.patches import Rectangle

from ._style import DECODER, INK, MUTED, OUTPUT, TOKENS, arrow, box, canvas, left, right, top

LIGHT = "#cfe0ec"                                      # float weights: the decoder's colour, faded
GROUPS = ["#a8dadc", "#f6bd60", "#cdb4db", "#b5d99c"]  # one tint per int4 group


def _cell(ax, x: float, y: float, w: float, h: float, text: str, *, colour: str = "white",
          text_colour: str = INK, size: int = 8, edge: str = "#999999", width: float = 0.6):
    """One square of a matrix, lower left corner at (x, y), with its number in the middle."""
    ax.add_patch(Rectangle((x, y), w, h, facecolor=colour, edgecolor=edge, linewidth=width))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size,
            color=text_colour)


def _num(value: float, spec: str = "") -> str:
    """A number as text with a true minus sign, and 0 rather than −0."""
    return format(value + 0, spec).replace("-", "−")


def _int8_example() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """W (4 × 8, two decimals, one outlier), absmax, scales and q = round(W / s) clipped to ±127."""
    rng = np.random.default_rng(4)
    weight = np.clip(rng.normal(0.0, 0.25, (4, 8)), -0.6, 0.6).round(2) + 0.0
    outlier = (2, 5)
    weight[outlier] = 2.40
    absmax = np.abs(weight).max(axis=1)
    scales = absmax / 127
    q = np.clip(np.round(weight / scales[:, None]), -127, 127).astype(int)
    return weight, absmax, scales, q, outlier


def int8_rows():
    """W [4, 8] → per row absmax and s_i = absmax / 127 → q = round(W / s) in int8, W ≈ q · s."""
    weight, absmax, scales, q, (o_row, o_col) = _int8_example()
    rows, cols = weight.shape
    cw, ch, qw = 0.56, 0.4, 0.48
    figure, ax = canvas(14.0, 4.5, title="int8: one scale per output channel (absmax)")
    x_w, y_top = 0.85, 3.5
    x_abs, x_s = x_w + cols * cw + 0.2, x_w + cols * cw + 1.05
    x_q = x_s + 2.25
    x_sv = x_q + cols * qw + 0.35

    def row_y(i: int) -> float:
        return y_top - (i + 1) * ch

    ax.text(x_w + cols * cw / 2, y_top + 0.12, "W (float), [out = 4, in = 8]", ha="center",
            va="bottom", fontsize=10, color=INK, fontweight="bold")
    ax.text(x_abs + 0.38, y_top + 0.12, "absmax", ha="center", va="bottom", fontsize=9, color=INK)
    ax.text(x_s + 0.5, y_top + 0.12, "s = absmax/127", ha="center", va="bottom", fontsize=9,
            color=INK)
    ax.text(x_q + cols * qw / 2, y_top + 0.12, "q = round(W / s), int8", ha="center",
            va="bottom", fontsize=10, color=INK, fontweight="bold")
    ax.text(x_sv + 0.45, y_top + 0.12, "s, [out]", ha="center", va="bottom", fontsize=10,
            color=INK, fontweight="bold")
    for i in range(rows):
        y = row_y(i)
        ax.text(x_w - 0.12, y + ch / 2, f"row {i}", ha="right", va="center", fontsize=9,
                color=INK)
        for j in range(cols):
            big = (i, j) == (o_row, o_col)
            _cell(ax, x_w + j * cw, y, cw, ch, _num(weight[i, j], ".2f"), colour=LIGHT,
                  edge=OUTPUT if big else "#999999", width=2.0 if big else 0.6)
            _cell(ax, x_q + j * qw, y, qw, ch, _num(q[i, j]), colour=DECODER, text_colour="white",
                  edge="white")
        colour = OUTPUT if i == o_row else INK
        ax.text(x_abs + 0.38, y + ch / 2, f"{absmax[i]:.2f}", ha="center", va="center",
                fontsize=9, color=colour)
        ax.text(x_s + 0.5, y + ch / 2, f"{scales[i]:.5f}", ha="center", va="center", fontsize=9,
                color=colour)
        _cell(ax, x_sv, y, 0.9, ch, f"{scales[i]:.5f}", colour=LIGHT, size=9,
              edge=OUTPUT if i == o_row else "#999999", width=2.0 if i == o_row else 0.6)
    ax.add_patch(Rectangle((x_w, row_y(rows - 1)), cols * cw, rows * ch, fill=False,
                           edgecolor=INK, linewidth=1))
    ax.add_patch(Rectangle((x_q, row_y(rows - 1)), cols * qw, rows * ch, fill=False,
                           edgecolor=INK, linewidth=1))
    ax.add_patch(Rectangle((x_q, row_y(o_row)), cols * qw, ch, fill=False, edgecolor=OUTPUT,
                           linewidth=2))
    mid = y_top - rows * ch / 2
    arrow(ax, (x_s + 1.15, mid), (x_q - 0.15, mid), text="÷ s, round")
    # the outlier row: a big scale, so its other weights use only a few integer levels
    others = np.delete(q[o_row], o_col)
    levels = int(np.abs(others).max())
    typical = int(np.median(np.abs(np.delete(q, o_row, axis=0)).max(axis=1)))
    y_note = row_y(rows - 1) - 0.2
    ax.text(x_w, y_note, f"Row {o_row}'s outlier {weight[o_row, o_col]:.2f} sets its scale "
            f"{scales[o_row]:.5f}, ≈ {scales[o_row] / np.delete(scales, o_row).max():.0f}× "
            "the others':", ha="left", va="top", fontsize=9, color=OUTPUT)
    ax.text(x_w, y_note - 0.27, f"its other weights round to integers within ±{levels}, "
            f"where the other rows use up to ±{typical}.", ha="left", va="top", fontsize=9,
            color=OUTPUT)
    ax.text(x_q, y_note, "W ≈ q · s : row i of q times s_i", ha="left", va="top", fontsize=10,
            color=INK, fontweight="bold")
    ax.text(x_q, y_note - 0.3, "error per weight ≤ s_i / 2", ha="left", va="top", fontsize=9,
            color=INK)
    box(ax, 2.4, 0.15, 9.2, 0.5, "y_i = s_i · Σ_j q_ij x_j :  the scale comes out of the dot "
        "product", colour=MUTED, size=10)
    return figure


def _int4_example(group: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One row of 16 weights (two decimals), absmax and scale = absmax / 7 per group of G, q."""
    rng = np.random.default_rng(4)
    weight = rng.normal(0.0, 0.3, 16).round(2) + 0.0
    grouped = weight.reshape(-1, group)
    absmax = np.abs(grouped).max(axis=1)
    scales = absmax / 7
    q = np.clip(np.round(grouped / scales[:, None]), -7, 7).astype(int).reshape(-1)
    return weight, absmax, scales, q


def int4_groups(group: int = 4):
    """A row of 16 weights in groups of G = 4, each with s = absmax / 7 and codes −7…7; then the
    first 4 codes stored as q + 8, two a byte (even column in the low nibble)."""
    weight, absmax, scales, q = _int4_example(group)
    n = weight.size
    cw, ch = 0.68, 0.42
    figure, ax = canvas(13.0, 5.8, title="int4: a scale per group of G inputs, two values a byte")
    x0, y_w = 1.6, 4.55
    y_q = y_w - 1.4
    for j in range(n):
        ax.text(x0 + (j + 0.5) * cw, y_w + ch + 0.06, str(j), ha="center", va="bottom",
                fontsize=8, color=INK)
        _cell(ax, x0 + j * cw, y_w, cw, ch, _num(weight[j], ".2f"), colour=LIGHT)
        _cell(ax, x0 + j * cw, y_q, cw, ch, _num(q[j]), colour=DECODER, text_colour="white",
              size=9, edge="white")
    ax.text(x0 - 0.15, y_w + ch + 0.06, "column", ha="right", va="bottom", fontsize=8, color=INK)
    ax.text(x0 - 0.15, y_w + ch / 2, "W row", ha="right", va="center", fontsize=9, color=INK)
    ax.text(x0 - 0.15, y_q + ch / 2, "q (−7…7)", ha="right", va="center", fontsize=9,
            color=INK)
    for k in range(n // group):
        xa, xb = x0 + k * group * cw + 0.06, x0 + (k + 1) * group * cw - 0.06
        yb = y_w - 0.12
        ax.plot([xa, xa, xb, xb], [yb + 0.08, yb, yb, yb + 0.08], color=INK, linewidth=1.2)
        ax.add_patch(Rectangle((xa, yb - 0.72), xb - xa, 0.64, facecolor=GROUPS[k],
                               edgecolor="none"))
        ax.text((xa + xb) / 2, yb - 0.4, f"group {k}: absmax {absmax[k]:.2f}\n"
                f"s = {absmax[k]:.2f}/7 = {scales[k]:.4f}", ha="center", va="center",
                fontsize=8.5, color=INK, linespacing=1.4)
        ax.add_patch(Rectangle((x0 + k * group * cw, y_q), group * cw, ch, fill=False,
                               edgecolor=GROUPS[k], linewidth=3))
    ax.text(x0 + n * cw / 2, y_q - 0.12, "q = round(W / s of its group), clipped to −7…7;  "
            f"stored: {n // 2} bytes of codes + {n // group} scales", ha="center", va="top",
            fontsize=9, color=INK)
    # packing: stored code u = q + 8 in 0…15, byte = u[even] | u[odd] << 4
    ax.plot([0.3, 12.7], [2.65, 2.65], color="#bbbbbb", linewidth=0.8)
    ax.text(6.5, 2.5, "Packing the first 4 codes (group 0) into 2 bytes:  stored code "
            "u = q + 8 (0…15),  byte = u[even column] | u[odd column] << 4", ha="center",
            va="top", fontsize=10, color=INK, fontweight="bold")
    u = q + 8
    bw = 0.46
    for b in range(2):
        lo, hi = u[2 * b], u[2 * b + 1]
        byte = int(lo | (hi << 4))
        xb0 = 1.2 + b * 6.1
        ax.text(xb0, 1.85, f"column {2 * b}: q = {_num(q[2 * b])}, u = {lo} = {lo:04b}₂\n"
                f"column {2 * b + 1}: q = {_num(q[2 * b + 1])}, u = {hi} = {hi:04b}₂",
                ha="left", va="center", fontsize=9, color=INK, linespacing=1.5)
        bits = f"{byte:08b}"
        y_bits = 0.8
        for i, bit in enumerate(bits):
            _cell(ax, xb0 + i * bw, y_bits, bw, 0.46, bit, colour=GROUPS[0], size=10, edge=INK,
                  width=0.8)
            ax.text(xb0 + (i + 0.5) * bw, y_bits + 0.5, str(7 - i), ha="center", va="bottom",
                    fontsize=7, color="#777777")
        ax.text(xb0 + 2 * bw, y_bits - 0.08, f"high nibble:\ncolumn {2 * b + 1} (u = {hi})",
                ha="center", va="top", fontsize=8, color=INK)
        ax.text(xb0 + 6 * bw, y_bits - 0.08, f"low nibble:\ncolumn {2 * b} (u = {lo})",
                ha="center", va="top", fontsize=8, color=INK)
        ax.plot([xb0 + 4 * bw] * 2, [y_bits - 0.05, y_bits + 0.51], color=INK, linewidth=2)
        arrow(ax, (xb0 + 8 * bw + 0.15, y_bits + 0.23), (xb0 + 8 * bw + 0.75, y_bits + 0.23))
        ax.text(xb0 + 8 * bw + 0.85, y_bits + 0.23, f"byte {b} = {byte}\n"
                f"= {lo} + {hi}·16", ha="left", va="center", fontsize=10, color=INK,
                fontweight="bold", linespacing=1.4)
    return figure


def two_paths():
    """The stored codes + scales and x feed either a fused kernel (a few rows, CPU) or
    dequantize-then-matmul (many rows, or a GPU); both give y = x · Wᵀ."""
    figure, ax = canvas(13.0, 5.6, title="A QuantizedLinear: two ways to compute y = x · Wᵀ")
    stored = box(ax, 0.25, 2.0, 2.9, 1.5, "stored weights (in memory)\nint8: q [out, in] + s [out]"
                 "\nint4: codes, 2 a byte\n+ s [out, in / G]", colour=DECODER, dark=True, size=9)
    kernel = box(ax, 4.1, 3.75, 5.2, 1.0, "fused kernel (torch._weight_int8pack_mm /\n"
                 "_weight_int4pack_mm_for_cpu): reads the\nintegers, scales inside the kernel",
                 colour=DECODER, dark=True, size=9)
    dequant = box(ax, 4.1, 0.75, 2.8, 1.0, "dequantize once per call:\nW = q · s in\n"
                  "bfloat16 / float32", colour=LIGHT, size=9)
    matmul = box(ax, 7.6, 0.75, 2.2, 1.0, "dense matmul\nx · Wᵀ", colour=LIGHT, size=9)
    x_in = box(ax, 8.05, 2.35, 1.3, 0.55, "x [rows, in]", colour=TOKENS, size=9)
    y_a = box(ax, 10.9, 3.95, 1.8, 0.6, "y [rows, out]", colour=OUTPUT, dark=True, size=9)
    y_b = box(ax, 10.9, 0.95, 1.8, 0.6, "y [rows, out]", colour=OUTPUT, dark=True, size=9)
    ax.text(4.1, 4.9, "A: a few rows (a decode step), on the CPU", ha="left", va="bottom",
            fontsize=10, color=INK, fontweight="bold")
    ax.text(4.1, 0.6, "B: many rows (a prefill), or a GPU", ha="left", va="top", fontsize=10,
            color=INK, fontweight="bold")
    x_s, y_s = right(stored)
    arrow(ax, (x_s, y_s + 0.25), left(kernel))
    arrow(ax, (x_s, y_s - 0.25), left(dequant))
    arrow(ax, top(x_in), (top(x_in)[0], 3.75))
    arrow(ax, (top(matmul)[0], 2.35), top(matmul))
    arrow(ax, right(dequant), left(matmul))
    arrow(ax, right(kernel), left(y_a))
    arrow(ax, right(matmul), left(y_b))
    box(ax, 0.25, 0.35, 2.9, 1.3, "bytes read per decode step:\nint8: 1 byte / weight\n"
        "int4: ½ byte / weight (+ scales)\nbfloat16: 2 bytes / weight", colour=MUTED, size=9)
    ax.text(9.5, 2.62, "activations stay\nfloating point", ha="left", va="center", fontsize=8,
            color=INK)
    return figure


FIGURES = {"10_int8_rows": int8_rows, "10_int4_groups": int4_groups, "10_two_paths": two_paths}
