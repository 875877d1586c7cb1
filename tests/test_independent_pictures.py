"""The held-out pictures obey the domain spec and their answers are right, judged from pixels.

Two sources of pictures: tools/independent_pictures.py (the evaluator's drawing routine) and
the hand-made gallery tests/gallery/ (tools/make_gallery.py). The checker below shares no code
with either: it reads only pixels, and the spec's numbers are typed again here on purpose.

From pixels: the background is the most common colour of the picture's 1-px frame (no shape
reaches it), light per spec; "ink" is a pixel whose largest channel difference from it exceeds
INK; shapes are the 8-connected components of ink. A shape's colour is the mean of its core
(its ink pixels whose 8 neighbours are ink too), inside the HSV box of a colour name; its kind
follows from the fill ratio (pixels / bounding-box area) of its body, the pixels at least half
as far from the background as its farthest one (at least half covered), and for triangles a
top row narrower than the bottom one; its size is the width of its bounding box.
"""
from __future__ import annotations

import colorsys
import json
import subprocess
import sys
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from independent_pictures import independent_samples
from minipixtral.synthetic import ANSWERS, QUESTIONS

ROOT = Path(__file__).resolve().parent.parent
GALLERY = ROOT / "tests" / "gallery"
SIDES = (16, 96)
BACKGROUND_LOW, BACKGROUND_SPREAD = 225, 20
INK = 60                               # largest channel difference from the background
HSV_BOXES = {                          # H low, H high (degrees), S min, V min
    "red": (-10, 10, 0.6, 0.5), "yellow": (48, 62, 0.6, 0.8),
    "green": (100, 140, 0.5, 0.45), "blue": (205, 245, 0.5, 0.5),
}
FILL = {"square": (0.9, 1.0), "circle": (0.68, 0.88), "triangle": (0.38, 0.62)}
SMALL_WIDTH, BIG_WIDTH = 15, 27        # bounding-box widths of s <= 14 and s >= 28
MIN_WIDTH, GAP = 9, 3
NUMBERS = {"one": 1, "two": 2, "three": 3}
SEED, N_PER_KIND = 20240611, 40


def load_gallery() -> list[dict]:
    """The gallery's entries: file, description, questions."""
    return json.loads((GALLERY / "gallery.json").read_text())


SAMPLES = independent_samples(N_PER_KIND, seed=SEED)
ENTRIES = load_gallery()


def background(pixels: np.ndarray) -> np.ndarray:
    """The most common colour of the 1-px frame (no shape box reaches it)."""
    frame = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    colours, counts = np.unique(frame, axis=0, return_counts=True)
    return colours[counts.argmax()]


def components(mask: np.ndarray) -> list[np.ndarray]:
    """The 8-connected components of a boolean mask, each as an array of (row, column)."""
    seen, found = np.zeros_like(mask), []
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        seen[start], queue, members = True, deque([start]), []
        while queue:
            row, col = queue.popleft()
            members.append((row, col))
            for r in range(max(row - 1, 0), min(row + 2, mask.shape[0])):
                for c in range(max(col - 1, 0), min(col + 2, mask.shape[1])):
                    if mask[r, c] and not seen[r, c]:
                        seen[r, c] = True
                        queue.append((r, c))
        found.append(np.array(members))
    return found


def core_colour(pixels: np.ndarray, mask: np.ndarray, blob: np.ndarray) -> np.ndarray:
    """Mean colour (0..1) of the blob's pixels whose 8 neighbours are ink (all, if none are)."""
    padded = np.pad(mask, 1)
    core = [(r, c) for r, c in blob if padded[r:r + 3, c:c + 3].all()] or blob.tolist()
    rows, cols = np.array(core).T
    return pixels[rows, cols].mean(axis=0) / 255


def colour_names(colour: np.ndarray) -> list[str]:
    """The colour names whose HSV box holds the colour (0..1 RGB)."""
    h, s, v = colorsys.rgb_to_hsv(*colour)
    names = []
    for name, (low, high, s_min, v_min) in HSV_BOXES.items():
        degrees = h * 360 - 360 if h * 360 > high + 180 else h * 360   # red's box crosses 0
        if low <= degrees <= high and s >= s_min and v >= v_min:
            names.append(name)
    return names


def shape_kind(body: np.ndarray) -> str | None:
    """circle, square or triangle from the fill ratio of the body pixels (None when none fits)."""
    rows, cols = body.T
    fill = len(body) / ((np.ptp(rows) + 1) * (np.ptp(cols) + 1))
    top, bottom = (rows == rows.min()).sum(), (rows == rows.max()).sum()
    for kind, (low, high) in FILL.items():
        if low <= fill <= high and (kind != "triangle" or top < bottom):
            return kind
    return None


def describe(blob: np.ndarray, pixels: np.ndarray, difference: np.ndarray) -> dict:
    """What the pixels say about one shape; its body: the pixels at least half its colour."""
    rows, cols = blob.T
    strength = difference[rows, cols]
    body = blob[strength >= strength.max() / 2]
    return {"left": cols.min(), "right": cols.max(), "width": np.ptp(cols) + 1,
            "names": colour_names(core_colour(pixels, difference > INK, blob)),
            "kind": shape_kind(body)}


def spec_problems(mask: np.ndarray, bg: np.ndarray, shapes: list[dict]) -> list[str]:
    """Violations of the spec whatever the question (mask: the ink pixels)."""
    height, width = mask.shape
    problems = []
    if not (SIDES[0] <= width <= SIDES[1] and SIDES[0] <= height <= SIDES[1]):
        problems.append(f"picture {width}x{height} outside {SIDES}")
    if bg.min() < BACKGROUND_LOW or int(bg.max()) - int(bg.min()) > BACKGROUND_SPREAD:
        problems.append(f"background {bg.tolist()} is not light")
    if mask[[0, -1]].any() or mask[:, [0, -1]].any():
        problems.append("ink on the picture's border: no 1-px margin")
    if not 1 <= len(shapes) <= 3:
        problems.append(f"{len(shapes)} shapes")
    for shape in shapes:
        if len(shape["names"]) != 1 or shape["kind"] is None or shape["width"] < MIN_WIDTH:
            problems.append(f"shape not in the domain: {shape}")
    return problems


def answer_problems(kind: str, answer: str, shapes: list[dict]) -> list[str]:
    """Where the pixels disagree with the answer to a question of `kind`."""
    expected = NUMBERS[answer] if kind == "count" else 2 if kind == "position" else 1
    if len(shapes) != expected:
        return [f"{kind}={answer}: {len(shapes)} shapes, expected {expected}"]
    return [] if answer_fits(kind, answer, shapes) else [f"{kind}={answer}: pixels say {shapes}"]


def answer_fits(kind: str, answer: str, shapes: list[dict]) -> bool:
    """Whether the shapes (as many as the question wants) agree with the answer."""
    first = shapes[0]
    if kind == "colour":
        return first["names"] == [answer]
    if kind == "shape":
        return first["kind"] == answer
    if kind == "size":
        return first["width"] <= SMALL_WIDTH if answer == "small" else first["width"] >= BIG_WIDTH
    if kind == "position":
        return position_fits(answer, shapes)
    return True     # count: the number of shapes is the answer


def position_fits(answer: str, shapes: list[dict]) -> bool:
    """The left shape of the answer's colour, the right one of another, GAP columns apart.

    Boxes 3 px apart at sub-pixel positions may leave only 2 clear columns between the inks:
    the leftmost ink column of the right shape is >= GAP past the rightmost of the left one.
    """
    left, right = sorted(shapes, key=lambda shape: shape["left"])
    return (left["names"] == [answer] and right["names"] != [answer]
            and right["left"] - left["right"] >= GAP)


def picture_problems(image: Image.Image, questions: dict[str, str]) -> list[str]:
    """Every way the picture breaks the spec or disagrees with an answer ([] when none)."""
    if image.mode != "RGB":
        return [f"mode {image.mode}, expected RGB"]
    pixels = np.asarray(image).astype(int)
    bg = background(pixels)
    difference = np.abs(pixels - bg).max(axis=2)
    mask = difference > INK
    shapes = [describe(blob, pixels, difference) for blob in components(mask)]
    problems = spec_problems(mask, bg, shapes)
    for kind, answer in questions.items():
        if answer not in ANSWERS[kind]:
            problems.append(f"{answer!r} is not an answer to {kind}")
        else:
            problems.extend(answer_problems(kind, answer, shapes))
    return problems


@pytest.mark.parametrize("index", range(len(SAMPLES)))
def test_independent_sample_obeys_the_spec_and_its_answer(index: int) -> None:
    sample = SAMPLES[index]
    assert sample.question == QUESTIONS[sample.kind]
    assert picture_problems(sample.image, {sample.kind: sample.answer}) == []


def test_independent_samples_interleave_the_kinds_and_use_every_answer() -> None:
    kinds = [sample.kind for sample in SAMPLES]
    assert kinds == list(QUESTIONS) * N_PER_KIND
    for kind, answers in ANSWERS.items():
        assert {s.answer for s in SAMPLES if s.kind == kind} == set(answers), kind


def test_independent_samples_are_deterministic() -> None:
    def pixels(seed: int) -> list[bytes]:
        return [sample.image.tobytes() for sample in independent_samples(3, seed=seed)]

    assert pixels(7) == pixels(7)
    assert pixels(7) != pixels(8)


def test_independent_samples_vary_in_size_and_edges() -> None:
    sizes = {sample.image.size for sample in SAMPLES}
    colours = [len(sample.image.getcolors(96 * 96)) for sample in SAMPLES]
    assert len(sizes) > len(SAMPLES) // 2
    hard = sum(n <= 4 for n in colours)      # background and up to three shape colours
    assert 0.3 < hard / len(SAMPLES) < 0.7


def test_gallery_lists_every_picture_and_nothing_else() -> None:
    files = [entry["file"] for entry in ENTRIES]
    assert len(files) >= 32 and len(set(files)) == len(files)
    assert sorted(files) == sorted(path.name for path in GALLERY.glob("*.png"))


def test_gallery_asks_every_kind_often_with_valid_answers() -> None:
    for entry in ENTRIES:
        assert entry["description"] and entry["questions"], entry["file"]
        for kind, answer in entry["questions"].items():
            assert answer in ANSWERS[kind], (entry["file"], kind, answer)
    for kind in QUESTIONS:
        assert sum(kind in entry["questions"] for entry in ENTRIES) >= 4, kind


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry["file"] for entry in ENTRIES])
def test_gallery_picture_obeys_the_spec_and_its_answers(entry: dict) -> None:
    with Image.open(GALLERY / entry["file"]) as image:
        assert picture_problems(image.copy(), entry["questions"]) == []


def test_make_gallery_reproduces_the_gallery(tmp_path: Path) -> None:
    script = ROOT / "tools" / "make_gallery.py"
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], check=True)
    assert json.loads((tmp_path / "gallery.json").read_text()) == ENTRIES
    for entry in ENTRIES:
        with Image.open(GALLERY / entry["file"]) as stored, \
                Image.open(tmp_path / entry["file"]) as drawn:
            assert np.array_equal(np.asarray(stored), np.asarray(drawn)), entry["file"]


@pytest.mark.parametrize("kind", QUESTIONS)
def test_the_checker_rejects_every_wrong_answer(kind: str) -> None:
    entry = next(e for e in ENTRIES if kind in e["questions"])
    with Image.open(GALLERY / entry["file"]) as image:
        picture = image.copy()
    assert picture_problems(picture, entry["questions"]) == []
    for wrong in [a for a in ANSWERS[kind] if a != entry["questions"][kind]]:
        assert picture_problems(picture, {**entry["questions"], kind: wrong}) != [], wrong
