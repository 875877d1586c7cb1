"""Lesson 04's diagrams: an image as a line of tokens, why the breaks, the chat template."""
from __future__ import annotations

from ._style import IMAGE, INK, MUTED, TOKENS, arrow, box, canvas, tokenizer

BREAK = "#fbd0a9"   # [IMG_BREAK]: a paler IMAGE
END = "#c9783a"     # [IMG_END]: a darker IMAGE


def _ids():
    return tokenizer().image_ids  # Pixtral-12B's 10, 12, 13, read from tekken.json (lesson 04)


def _style_of(token: int, ids) -> tuple[str, str]:
    """(colour, short name) of an image token."""
    return {ids.img: (IMAGE, "IMG"), ids.img_break: (BREAK, "BRK"),
            ids.img_end: (END, "END")}[token]


def _legend(ax, x, y, entries) -> None:
    for colour, name in entries:
        box(ax, x, y, 0.3, 0.22, colour=colour)
        ax.text(x + 0.38, y + 0.11, name, ha="left", va="center", fontsize=9, color=INK)
        x += 0.5 + 0.085 * len(name)


def layout():
    """The patches of a 2 × 3 image become 2 · (3 + 1) = 8 tokens, row after row."""
    from minipixtral.layout import image_token_layout

    ids, rows, cols = _ids(), 2, 3
    tokens = image_token_layout(rows, cols, ids)
    figure, ax = canvas(11.0, 3.6, title=f"An image of {rows} × {cols} patches becomes "
                        f"{rows} · ({cols} + 1) = {len(tokens)} tokens, row after row")
    for r in range(rows):
        for c in range(cols):
            box(ax, 0.4 + c * 0.75, 2.0 - r * 0.75, 0.7, 0.7, f"patch\n{r * cols + c}",
                colour=IMAGE, size=9)
    ax.text(1.5, 0.95, "the image, after resizing:\nrow-major patch order", ha="center",
            va="top", fontsize=9, color=INK)
    arrow(ax, (2.85, 2.0), (3.6, 2.0))
    patch = 0
    for k, token in enumerate(tokens):
        colour, name = _style_of(token, ids)
        label = f"[{name}]\npatch {patch}" if token == ids.img else f"[{name}]"
        box(ax, 3.75 + k * 0.88, 1.65, 0.8, 0.7, label, colour=colour, size=8)
        ax.text(3.75 + k * 0.88 + 0.4, 1.55, str(k), ha="center", va="top", fontsize=8,
                color=INK)
        patch += token == ids.img
    ax.text(3.75 + 4 * 0.88, 1.15, "position in the token sequence", ha="center", va="top",
            fontsize=8, color=INK)
    ax.text(3.75 + 1.3, 2.55, "row 0", ha="center", va="bottom", fontsize=9, color=INK)
    ax.text(3.75 + 4 * 0.88 + 1.3, 2.55, "row 1", ha="center", va="bottom", fontsize=9,
            color=INK)
    ax.text(6.0, 0.35, "[IMG_BREAK] ends each row; the very last one becomes [IMG_END]. "
            "In lesson 05, patch k's vector replaces the k-th [IMG].", ha="center",
            va="center", fontsize=9, color=INK)
    return figure


def breaks():
    """A wide (2 × 8) and a tall (8 × 2) image: with breaks their tokens differ, without not."""
    from minipixtral.layout import image_token_layout

    ids = _ids()
    wide, tall = image_token_layout(2, 8, ids), image_token_layout(8, 2, ids)
    figure, ax = canvas(12.0, 6.6, title="Why [IMG_BREAK]: the decoder reads one token after "
                        "another, with no second coordinate")
    size = 0.36
    for tokens, cols, x0, title in [(wide, 8, 0.5, "wide image: 2 rows × 8 patches"),
                                    (tall, 2, 6.6, "tall image: 8 rows × 2 patches")]:
        ax.text(x0 + (cols + 1) * size / 2, 5.75, f"{title} → {len(tokens)} tokens",
                ha="center", va="bottom", fontsize=10, color=INK)
        for k, token in enumerate(tokens):
            r, c = divmod(k, cols + 1)
            box(ax, x0 + c * size, 5.6 - (r + 1) * size, size - 0.03, size - 0.03, str(k),
                colour=_style_of(token, ids)[0], size=7)
    lines = [(wide, "wide, with breaks"), (tall, "tall, with breaks"),
             ([ids.img] * 16, "wide, no breaks"), ([ids.img] * 16, "tall, no breaks")]
    for n, (tokens, label) in enumerate(lines):
        y = 1.9 - n * 0.42
        ax.text(2.3, y + 0.17, label, ha="right", va="center", fontsize=9, color=INK)
        for k, token in enumerate(tokens):
            box(ax, 2.45 + k * size, y, size - 0.03, 0.34, colour=_style_of(token, ids)[0])
    ax.text(2.45 + 16 * size + 0.2, 0.85, "identical:\nthe shape is lost", ha="left",
            va="center", fontsize=9, color=INK)
    ax.text(6.0, 2.45, "what the decoder reads: one token after another, positions 0, 1, 2, …",
            ha="center", va="bottom", fontsize=10, color=INK)
    _legend(ax, 0.5, 0.15, [(IMAGE, "[IMG]"), (BREAK, "[IMG_BREAK]"), (END, "[IMG_END]")])
    return figure


def chat_template():
    """<s>[INST]{image}Describe this image[/INST] for a 70 × 40 image, one box per token."""
    from PIL import Image

    tok = tokenizer()
    ids, _ = tok.encode_chat("Describe this image", images=[Image.new("RGB", (70, 40))])
    image_ids = tok.image_ids
    figure, ax = canvas(13.0, 3.2, title="One turn with a 70 × 40 image: "
                        f"<s>[INST]{{image}}Describe this image[/INST], {len(ids)} tokens")
    w = 12.4 / len(ids)
    for k, token in enumerate(ids):
        if token in (image_ids.img, image_ids.img_break, image_ids.img_end):
            colour, text = _style_of(token, image_ids)
        else:
            piece = tok.tekken.id_to_piece(token)
            colour, text = (MUTED if token < 1000 else TOKENS), piece.replace(" ", "␣")
        b = box(ax, 0.3 + k * w, 1.2, w - 0.05, 1.2, colour=colour)
        ax.text(b[0] + b[2] / 2, 1.8, text, ha="center", va="center", fontsize=8,
                rotation=90, color=INK)
        ax.text(b[0] + b[2] / 2, 1.1, str(k), ha="center", va="top", fontsize=7, color=INK)
    _legend(ax, 1.2, 0.3, [(MUTED, "control token"), (IMAGE, "[IMG]"), (BREAK, "[IMG_BREAK]"),
                           (END, "[IMG_END]"), (TOKENS, "text (␣ = space)")])
    ax.text(12.6, 2.55, "the answer comes next →", ha="right", va="bottom", fontsize=9,
            color=INK)
    return figure


def turns():
    """Several turns and a system prompt, each run of [IMG] shortened, one box per token."""
    from PIL import Image

    tok = tokenizer()
    image = Image.new("RGB", (70, 40))
    prompts = [
        ("two turns", tok.encode_conversation([
            {"role": "user", "content": "What is in the sky?"},
            {"role": "assistant", "content": "A sun."},
            {"role": "user", "content": "And below?"}])[0]),
        ("system prompt,\nno image", tok.encode_chat("What is this?", system="Be brief.")[0]),
        ("system prompt\nand an image", tok.encode_chat("What is this?", images=[image],
                                                        system="Be brief.")[0])]
    figure, ax = canvas(13.0, 4.4, title="More turns and a system prompt "
                        "(each run of [IMG] drawn as one box)")
    marks = tok.image_ids
    for n, (label, ids) in enumerate(prompts):
        y, x, k = 3.0 - n * 1.05, 1.7, 0
        ax.text(1.55, y + 0.3, label, ha="right", va="center", fontsize=9, color=INK)
        while k < len(ids):
            token, run = ids[k], 1
            while token == marks.img and k + run < len(ids) and ids[k + run] == token:
                run += 1
            if token in (marks.img, marks.img_break, marks.img_end):
                colour, text = _style_of(token, marks)
                text += f"×{run}" if run > 1 else ""
            else:
                colour = MUTED if token < 1000 else TOKENS
                text = tok.tekken.id_to_piece(token).replace(" ", "␣").replace("\n", "\\n")
            width = 0.2 + 0.075 * len(text)
            box(ax, x, y, width, 0.6, text, colour=colour, size=8)
            x, k = x + width + 0.04, k + run
    ax.text(6.5, 0.25, "an answer ends with </s>;  the system text goes in front of the last "
            "turn, followed by a blank line (\\n\\n), before its images if it has some",
            ha="center", va="center", fontsize=9, color=INK)
    return figure


FIGURES = {"04_layout": layout, "04_breaks": breaks, "04_chat_template": chat_template,
           "04_turns": turns}
