"""The diagrams: every image a notebook embeds exists, and tools/draw_figures.py redraws it."""
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image

import draw_figures

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"!\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)\)|<img\b[^>]*\bsrc=\"([^\"]+)\"")
NOTEBOOKS = sorted(p for folder in ("notebooks", "solutions", "exercises")
                   for p in (ROOT / folder).glob("*.ipynb"))


def embedded_images(path: Path) -> list[str]:
    cells = nbformat.read(path, as_version=4).cells
    return [a or b for cell in cells if cell.cell_type == "markdown"
            for a, b in LINK.findall(cell.source)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_embedded_image_exists(path):
    for link in embedded_images(path):
        assert not link.startswith(("http:", "https:")), f"{path.name}: {link} is not offline"
        assert (path.parent / link).is_file(), f"{path.name} embeds {link}, which does not exist"


LOCAL_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s#]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_linked_file_exists(path):
    cells = nbformat.read(path, as_version=4).cells
    for cell in cells:
        for link in LOCAL_LINK.findall(cell.source) if cell.cell_type == "markdown" else ():
            if not link.startswith(("http:", "https:", "mailto:")):
                assert (path.parent / link).exists(), f"{path.name} links to {link}: missing"


def test_lesson_00_links_the_glossary():
    text = (ROOT / "notebooks" / "GLOSSARY.md").read_text()
    cells = nbformat.read(ROOT / "notebooks" / "00_overview.ipynb", as_version=4).cells
    assert any("(GLOSSARY.md)" in cell.source for cell in cells if cell.cell_type == "markdown")
    for term in ("GQA", "SDPA", "RoPE", "KV cache", "bfloat16", "meta device", "logits",
                 "nbval", "GiB"):
        assert f"**{term}" in text or f", {term}" in text or f"{term} (" in text, term


def test_the_lessons_embed_drawn_figures():
    used = {Path(link).stem for p in NOTEBOOKS for link in embedded_images(p)}
    assert "pipeline" in used
    unused = set(draw_figures.registry()) - used
    assert not unused, f"drawn but embedded nowhere: {sorted(unused)}"


def test_the_script_reproduces_every_stored_figure():
    assert draw_figures.check(draw_figures.registry()) == []


def test_a_changed_figure_is_caught(tmp_path):
    """Negative control for the comparison the check above relies on."""
    stored = draw_figures.FOLDER / "pipeline.png"
    pixels = np.asarray(Image.open(stored).convert("RGB")).copy()
    pixels[10:60, 10:200] = 0  # a black bar: what a changed label or box looks like
    changed = tmp_path / "pipeline.png"
    Image.fromarray(pixels).save(changed)
    assert draw_figures.same_picture(stored, stored)
    assert not draw_figures.same_picture(stored, changed)
