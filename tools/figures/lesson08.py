"""Lesson 08's and appendix D's diagrams: a checkpoint folder, the safetensors layout, loading
on the meta device, the Hugging Face names and q/k rows, and a safe write."""
from __future__ import annotations

from matplotlib.patches import FancyBboxPatch

from ._style import (ADAPTER, DECODER, FONT, IMAGE, INK, MUTED, OUTPUT, TOKENS, VISION, arrow,
                     bottom, box, canvas, left, right, top)

GB = "GB = 10⁹ bytes"


def checkpoint_folder():
    """The three files of Pixtral-12B-2409 and what each one becomes."""
    figure, ax = canvas(11.0, 3.9, title="A checkpoint folder: three files, no code")
    ax.add_patch(FancyBboxPatch(
        (0.2, 0.25), 4.6, 3.0, boxstyle="round,pad=0,rounding_size=0.08", facecolor="white",
        edgecolor=INK, linewidth=1, linestyle="--"))
    ax.text(0.35, 3.05, "Pixtral-12B-2409/", fontsize=FONT, color=INK, fontweight="bold",
            va="center")
    files = [("params.json\n453 bytes: the sizes", MUTED),
             ("consolidated.safetensors\n25.4 GB: 585 tensors, bfloat16", VISION),
             ("tekken.json\n19.3 MB: the tokenizer", TOKENS)]
    becomes = [("read_params → PixtralConfig\n(lesson 06's dataclass)", MUTED),
               ("read_safetensors → 585 tensors\n(views of the mapped file)", VISION),
               ("Tokenizer.from_file\n(lesson 04)", TOKENS)]
    model = box(ax, 9.6, 0.45, 1.25, 2.6, "Pixtral,\nready for\ngenerate", colour=DECODER,
                dark=True, size=FONT - 1)
    for i, ((text, colour), (target, colour2)) in enumerate(zip(files, becomes)):
        y = 2.2 - i * 0.9
        f = box(ax, 0.45, y, 4.1, 0.7, text, colour=colour)
        t = box(ax, 5.4, y, 3.4, 0.7, target, colour=colour2)
        arrow(ax, right(f), left(t))
        arrow(ax, right(t), (model[0], y + 0.35))
    ax.text(5.4, 0.02, GB + ", MB = 10⁶ bytes", fontsize=FONT - 2, color="#777777")
    return figure


def safetensors_layout():
    """8 bytes of length, a JSON header, then raw bytes that the header's offsets point into."""
    figure, ax = canvas(11.5, 4.2, title="consolidated.safetensors, byte by byte")
    y, h = 2.5, 0.6
    n = box(ax, 0.2, y, 1.3, h, "N\n8 bytes", colour=OUTPUT, dark=True, size=FONT - 1)
    head = box(ax, 1.5, y, 2.6, h, "header: N bytes of JSON", colour=MUTED)
    tensors = [("layers.0…wk", 1.2, DECODER), ("layers.0…wo", 1.2, DECODER),
               ("…", 0.6, DECODER), ("tok_embeddings", 2.5, TOKENS),
               ("vision_encoder…", 1.7, VISION)]
    x = 4.1
    spans = {}
    for name, w, colour in tensors:
        b = box(ax, x, y, w, h, name, colour=colour, dark=colour == DECODER, size=FONT - 1)
        spans[name] = b
        x += w
    ax.text(0.2, y + h + 0.12, "byte 0", fontsize=FONT - 2, color=INK)
    ax.text(4.1, y + h + 0.12, "byte 8 + N: the data start here", fontsize=FONT - 2, color=INK)
    ax.text(x, y + h + 0.12, "end of file", fontsize=FONT - 2, color=INK, ha="right")
    entry = box(ax, 0.2, 0.55, 6.2, 1.1,
                '"tok_embeddings.weight": {"dtype": "BF16",\n'
                '    "shape": [131072, 5120],\n'
                '    "data_offsets": [begin, end]}   (counted from byte 8 + N)',
                colour="white", size=FONT - 1)
    arrow(ax, bottom(head), (2.8, entry[1] + entry[3]))
    target = spans["tok_embeddings"]
    arrow(ax, (5.5, entry[1] + entry[3]), (target[0] + 0.05, target[1]), text="begin")
    arrow(ax, (6.2, entry[1] + entry[3]), (target[0] + target[2] - 0.05, target[1]), text="end")
    ax.text(6.7, 0.9, "memory-mapped (mmap): the file's bytes appear in memory;\n"
            "torch.frombuffer makes each tensor a view of its byte range;\n"
            "the disk is read only when a page is touched.",
            fontsize=FONT - 1, color=INK, va="center")
    return figure


def meta_assign():
    """The usual way (three copies) against ours (one: the mapped file)."""
    figure, ax = canvas(11.5, 3.9, title="Loading 25.4 GB of bfloat16 weights (GB = 10⁹ bytes)")
    ax.text(0.2, 3.05, "the usual way: three copies", fontsize=FONT, color=OUTPUT,
            fontweight="bold")
    a = box(ax, 0.2, 2.0, 3.2, 0.8, "Pixtral(config)\nrandom numbers: 50.7 GB (float32)",
            colour=MUTED, size=FONT - 1)
    b = box(ax, 4.1, 2.0, 3.2, 0.8, "torch.load(file)\na second copy: 25.4 GB", colour=MUTED,
            size=FONT - 1)
    c = box(ax, 8.0, 2.0, 3.3, 0.8, "load_state_dict(state)\ncopies into the first", colour=MUTED,
            size=FONT - 1)
    arrow(ax, right(a), left(b))
    arrow(ax, right(b), left(c))
    ax.text(0.2, 1.45, "ours: one copy, the file itself", fontsize=FONT, color=ADAPTER,
            fontweight="bold")
    m = box(ax, 0.2, 0.2, 3.2, 0.9, "with torch.device('meta'):\nPixtral(config)\nshapes, no memory",
            colour=DECODER, dark=True, size=FONT - 1)
    r = box(ax, 4.1, 0.2, 3.2, 0.9, "read_safetensors(file)\nviews of the mapped file",
            colour=VISION, size=FONT - 1)
    f = box(ax, 8.0, 0.2, 3.3, 0.9, "load_state_dict(tensors,\nstrict=True, assign=True)\n"
            "names, shapes checked", colour=ADAPTER, size=FONT - 1)
    arrow(ax, right(m), left(r))
    arrow(ax, right(r), left(f))
    return figure


def hf_names():
    """Mistral's names against transformers', and the q/k rows of one head reordered."""
    figure, ax = canvas(11.5, 4.6, title="Mistral's layout and the Hugging Face layout")
    rows = [("tok_embeddings.weight", "language_model.model.embed_tokens.weight", TOKENS),
            ("layers.i.attention.wq.weight", "language_model.model.layers.i.self_attn.q_proj.weight",
             DECODER),
            ("layers.i.feed_forward.w1.weight", "language_model.model.layers.i.mlp.gate_proj.weight",
             DECODER),
            ("vision_encoder.…attention.wk.weight", "vision_tower.…attention.k_proj.weight", VISION),
            ("vision_language_adapter.w_in.weight", "multi_modal_projector.linear_1.weight",
             ADAPTER)]
    ax.text(0.2, 4.0, "Mistral (params.json)", fontsize=FONT, color=INK, fontweight="bold")
    ax.text(5.0, 4.0, "Hugging Face (config.json)", fontsize=FONT, color=INK, fontweight="bold")
    for i, (ours, theirs, colour) in enumerate(rows):
        y = 3.35 - i * 0.5
        a = box(ax, 0.2, y, 3.9, 0.4, ours, colour=colour, dark=colour == DECODER, size=FONT - 2)
        b = box(ax, 5.0, y, 6.3, 0.4, theirs, colour=colour, dark=colour == DECODER,
                size=FONT - 2)
        permuted = "wq" in ours or "wk" in ours
        arrow(ax, right(a), left(b), style="<|-|>", colour=OUTPUT if permuted else INK)
    ax.text(0.2, 0.72, "wq, wk: rows reordered in each head (D = 8 here):", fontsize=FONT - 1,
            color=OUTPUT)
    for j, row in enumerate([0, 1, 2, 3, 4, 5, 6, 7]):
        box(ax, 4.1 + j * 0.42, 0.62, 0.38, 0.35, str(row), colour=MUTED, size=FONT - 1)
    for j, row in enumerate([0, 2, 4, 6, 1, 3, 5, 7]):
        box(ax, 8.0 + j * 0.42, 0.62, 0.38, 0.35, str(row), colour=MUTED, size=FONT - 1)
    arrow(ax, (7.5, 0.8), (7.95, 0.8), colour=OUTPUT)
    ax.text(4.1, 0.18, "pairs (0, 1), (2, 3)… rotated together", fontsize=FONT - 2, color=INK)
    ax.text(8.0, 0.18, "pairs (j, j + D/2): rotate_half", fontsize=FONT - 2, color=INK)
    return figure


def atomic_write():
    """Write under a temporary name, rename when complete."""
    figure, ax = canvas(11.0, 2.9, title="A safe write: the file is the old one or the new one")
    a = box(ax, 0.2, 1.2, 3.2, 0.8, "write every byte to\n.consolidated.safetensors.partial",
            colour=MUTED, size=FONT - 1)
    b = box(ax, 4.2, 1.2, 2.6, 0.8, "complete?\nrename (atomic)", colour=ADAPTER, size=FONT - 1)
    c = box(ax, 7.6, 1.2, 3.2, 0.8, "consolidated.safetensors\nnew, whole", colour=VISION,
            size=FONT - 1)
    arrow(ax, right(a), left(b))
    arrow(ax, right(b), left(c))
    d = box(ax, 0.2, 0.15, 3.2, 0.6, "interrupted (disk full, Ctrl-C)", colour=IMAGE,
            size=FONT - 1)
    e = box(ax, 4.2, 0.15, 6.6, 0.6, "the old consolidated.safetensors is untouched",
            colour="white", size=FONT - 1)
    arrow(ax, bottom(a), top(d))
    arrow(ax, right(d), left(e))
    return figure


FIGURES = {"08_checkpoint_folder": checkpoint_folder,
           "08_safetensors_layout": safetensors_layout,
           "08_meta_assign": meta_assign,
           "D_hf_names": hf_names,
           "D_atomic_write": atomic_write}
