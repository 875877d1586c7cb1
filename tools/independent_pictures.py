"""Held-out pictures for evaluating the tiny Pixtral: the evaluator's own drawing routine.

Written independently of the training generator (minipixtral.synthetic): the two share the
questions and answers (QUESTIONS, ANSWERS, Sample, imported from there) and the domain spec
below, not one line of drawing code, so the evaluator measures what the model learned about
shapes rather than about one generator's habits.

The domain spec (both routines follow it):
- a picture is W x H pixels, each side an integer in [16, 96]; its background is one light
  colour, every RGB channel in [225, 255] and max(channel) - min(channel) <= 20;
- a shape is filled in one colour, no outline; s is the side of its bounding box (an s x s
  square), 10 <= s <= min(W, H) - 2: circle = disc of diameter s, square = square of side s,
  triangle = isosceles triangle pointing up, base s along the bottom of the box, apex at the
  top centre; edges hard (shape colour or background) or antialiased (blended);
- boxes lie inside the picture with >= 1 px margin, anywhere, across the patch borders or on
  the patch grid; the boxes of one picture are >= 3 px apart horizontally or vertically;
- colours in HSV (H in degrees, S and V in [0, 1]): red H in [-10, 10], S >= 0.6, V >= 0.5;
  yellow H in [48, 62], S >= 0.6, V >= 0.8; green H in [100, 140], S >= 0.5, V >= 0.45;
  blue H in [205, 245], S >= 0.5, V >= 0.5;
- the questions: colour and shape of the only shape; count of 1, 2 or 3 shapes; position:
  two shapes of different colour names, the right edge of one box >= 3 px left of the left
  edge of the other, answer the colour of the left one; size of the only shape: small when
  10 <= s <= 14, big when s >= 28 (15..27 is never asked about).

How this routine draws (on purpose, differently from the training generator):
- the answer is drawn first, uniformly among ANSWERS[kind] (count and position included),
  then a picture is drawn to fit it; a picture whose shapes cannot be placed is redrawn whole;
- count: in half of the pictures the shapes are alike (one kind, one RGB colour: three red
  circles), so that only their places tell them apart; otherwise each has its own kind and
  colour name;
- on the grid: in a quarter of the pictures (of every kind; not for a small shape, whose side
  10..14 is no multiple of 8), the picture's sides (uniform among 16, 24, ..., 96), every box
  corner and every side are multiples of GRID = 8 pixels, as a user who draws at round numbers
  makes them: each patch of the tiny model (8 pixels; Pixtral-12B's 16 too) is then all shape
  or all background where a square lies;
- picture sides otherwise: uniform in [16, 96], independently; background: pure white in a
  quarter of the pictures, otherwise uniform among the light colours of the spec;
- colours: uniform in the colour's HSV box through colorsys.hsv_to_rgb, kept only when the
  8-bit colour still lies in the box;
- sides s: uniform in [10, min(W, H) - 2] for one shape and in [10, min(W, H) // 2] for two
  or three; for the size question small is uniform in [10, 14] and big in [28, min(W, H) - 2]
  (a picture with min(W, H) < 30 is redrawn when the answer is "big");
- positions: box corners uniform over the sub-pixel positions that keep the margin;
- rasterised with numpy: coverage of each pixel by 5 x 5 sub-pixel samples, then blended
  (antialiased) or thresholded at 0.5 (hard edges), half of the pictures each.

independent_samples(n, seed) returns the kinds interleaved in the order of QUESTIONS
(colour, shape, count, position, size, colour, ...), n of each; the same seed gives the same
pictures.
"""
from __future__ import annotations

import colorsys
import math
import random
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from minipixtral.synthetic import ANSWERS, QUESTIONS, Sample

RGB = tuple[int, int, int]
SIDES = (16, 96)                   # picture width and height
MARGIN, GAP = 1, 3                 # box to picture edge; box to box
SHAPE_MIN, SMALL_MAX, BIG_MIN = 10, 14, 28
WHITE_SHARE, HARD_SHARE, ALIKE_SHARE, GRID_SHARE = 0.25, 0.5, 0.5, 0.25
GRID = 8                           # on the grid: corners and sides are multiples of this
SUBSAMPLES = 5                     # per pixel and per axis: odd, so coverage is never 0.5
PLACEMENT_TRIES = 50
BACKGROUND_RANGE, BACKGROUND_SPREAD = (225, 255), 20
HSV_BOXES: dict[str, tuple[float, float, float, float]] = {  # H low, H high, S min, V min
    "red": (-10.0, 10.0, 0.6, 0.5),
    "yellow": (48.0, 62.0, 0.6, 0.8),
    "green": (100.0, 140.0, 0.5, 0.45),
    "blue": (205.0, 245.0, 0.5, 0.5),
}
COUNTS = {"one": 1, "two": 2, "three": 3}


@dataclass(frozen=True)
class Shape:
    """One shape: its kind, colour and bounding box (top-left corner x, y and side, pixels)."""

    kind: str
    colour: RGB
    x: float
    y: float
    side: int


@dataclass(frozen=True)
class Plan:
    """What a picture must show: (shape kind, colour name) per shape, and its side range."""

    shapes: list[tuple[str, str]]
    side_range: tuple[int, int] | None   # None: [10, the largest the picture allows]
    in_a_row: bool                        # position: shapes left to right, horizontally apart
    alike: bool = False                   # count: every shape drawn in the first one's colour
    grid: bool = False                    # corners and sides multiples of GRID


def in_hsv_box(colour: RGB, name: str) -> bool:
    """Whether an 8-bit colour lies in the HSV box of a colour name."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in colour))
    low, high, s_min, v_min = HSV_BOXES[name]
    degrees = h * 360 - 360 if h * 360 > high + 180 else h * 360   # red's box crosses 0
    return low <= degrees <= high and s >= s_min and v >= v_min


def shape_colour(rng: random.Random, name: str) -> RGB:
    """A colour uniform in the HSV box of `name`, rounded to 8 bits and still in the box."""
    low, high, s_min, v_min = HSV_BOXES[name]
    while True:
        hsv = (rng.uniform(low, high) % 360 / 360, rng.uniform(s_min, 1), rng.uniform(v_min, 1))
        colour = tuple(round(c * 255) for c in colorsys.hsv_to_rgb(*hsv))
        if in_hsv_box(colour, name):
            return colour


def background_colour(rng: random.Random) -> RGB:
    """Pure white sometimes, otherwise a light colour uniform among those of the spec."""
    if rng.random() < WHITE_SHARE:
        return (255, 255, 255)
    while True:
        colour = tuple(rng.randint(*BACKGROUND_RANGE) for _ in range(3))
        if max(colour) - min(colour) <= BACKGROUND_SPREAD:
            return colour


def plan(rng: random.Random, kind: str) -> tuple[Plan, str]:
    """The answer, drawn uniformly, and what the picture must show for it."""
    if kind not in QUESTIONS:
        raise ValueError(f"unknown question kind {kind!r}; expected one of {list(QUESTIONS)}")
    answer = rng.choice(ANSWERS[kind])
    colours, shapes = ANSWERS["colour"], ANSWERS["shape"]
    if kind == "colour":
        return Plan([(rng.choice(shapes), answer)], None, False), answer
    if kind == "shape":
        return Plan([(answer, rng.choice(colours))], None, False), answer
    if kind == "size":
        sides = (SHAPE_MIN, SMALL_MAX) if answer == "small" else (BIG_MIN, SIDES[1])
        return Plan([(rng.choice(shapes), rng.choice(colours))], sides, False), answer
    if kind == "count":
        if rng.random() < ALIKE_SHARE:   # one kind, one colour: only the places differ
            return Plan([(rng.choice(shapes), rng.choice(colours))] * COUNTS[answer], None,
                        False, alike=True), answer
        pairs = [(rng.choice(shapes), rng.choice(colours)) for _ in range(COUNTS[answer])]
        return Plan(pairs, None, False), answer
    right = rng.choice([c for c in colours if c != answer])   # position: the answer on the left
    return Plan([(rng.choice(shapes), answer), (rng.choice(shapes), right)], None, True), answer


def draw_sides(rng: random.Random, picture_plan: Plan, width: int, height: int) -> list[int] | None:
    """A side per shape, or None when this picture is too small for the plan."""
    largest = min(width, height) - 2 * MARGIN
    if picture_plan.grid:   # a corner at GRID or further: the far margin is GRID - 1 or more
        largest = min(width, height) - GRID - MARGIN
    if len(picture_plan.shapes) > 1:
        largest = min(largest, min(width, height) // 2)
    low, high = picture_plan.side_range or (SHAPE_MIN, largest)
    high = min(high, largest)
    step = GRID if picture_plan.grid else 1
    low, high = math.ceil(low / step), high // step   # sides step × [low, high]
    if high < low:
        return None
    return [step * rng.randint(low, high) for _ in picture_plan.shapes]


def apart(a: tuple[float, float, int], b: tuple[float, float, int]) -> bool:
    """Whether two boxes (x, y, side) are >= GAP apart horizontally or vertically."""
    (ax, ay, aside), (bx, by, bside) = a, b
    horizontal = max(bx - (ax + aside), ax - (bx + bside))
    vertical = max(by - (ay + aside), ay - (by + bside))
    return max(horizontal, vertical) >= GAP


def corner(rng: random.Random, room: int, grid: bool) -> float:
    """A box corner along one axis, from MARGIN to room: sub-pixel, or a multiple of GRID
    (draw_sides keeps room >= GRID on the grid)."""
    if grid:
        return GRID * rng.randint(1, room // GRID)
    return rng.uniform(MARGIN, room)


def place(rng: random.Random, sides: list[int], width: int, height: int,
          in_a_row: bool, grid: bool = False) -> list[tuple[float, float, int]] | None:
    """Boxes (x, y, side), sub-pixel or on the grid, or None when PLACEMENT_TRIES draws all
    failed."""
    for _ in range(PLACEMENT_TRIES):
        boxes = [(corner(rng, width - MARGIN - s, grid), corner(rng, height - MARGIN - s, grid), s)
                 for s in sides]
        if in_a_row:
            ok = all(b[0] >= a[0] + a[2] + GAP for a, b in zip(boxes, boxes[1:]))
        else:
            ok = all(apart(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
        if ok:
            return boxes
    return None


def layout(rng: random.Random,
           picture_plan: Plan) -> tuple[int, int, list[tuple[float, float, int]]]:
    """Picture sides and the boxes (x, y, side), the whole picture redrawn until they fit."""
    while True:
        if picture_plan.grid:   # the picture's sides too: no resize moves the shapes
            width, height = (GRID * rng.randint(SIDES[0] // GRID, SIDES[1] // GRID)
                             for _ in range(2))
        else:
            width, height = rng.randint(*SIDES), rng.randint(*SIDES)
        sides = draw_sides(rng, picture_plan, width, height)
        boxes = None if sides is None else place(rng, sides, width, height,
                                                 picture_plan.in_a_row, picture_plan.grid)
        if boxes is not None:
            return width, height, boxes


def inside(shape: Shape, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Which sample points (xs: a row vector, ys: a column vector) lie inside the shape."""
    x, y, s = shape.x, shape.y, shape.side
    if shape.kind == "circle":
        return (xs - (x + s / 2)) ** 2 + (ys - (y + s / 2)) ** 2 <= (s / 2) ** 2
    if shape.kind == "square":
        return (xs >= x) & (xs <= x + s) & (ys >= y) & (ys <= y + s)
    above_base = y + s - ys    # the triangle's half-width shrinks by 1/2 per pixel of height
    return (above_base >= 0) & (xs >= x + above_base / 2) & (xs <= x + s - above_base / 2)


def coverage(shape: Shape) -> tuple[slice, slice, np.ndarray]:
    """The rows and columns the shape's box touches, and each such pixel's covered fraction."""
    col0, col1 = math.floor(shape.x), math.ceil(shape.x + shape.side)
    row0, row1 = math.floor(shape.y), math.ceil(shape.y + shape.side)
    offsets = (np.arange(SUBSAMPLES) + 0.5) / SUBSAMPLES
    xs = (np.arange(col0, col1)[:, None] + offsets).reshape(1, -1)
    ys = (np.arange(row0, row1)[:, None] + offsets).reshape(-1, 1)
    hits = inside(shape, xs, ys).reshape(row1 - row0, SUBSAMPLES, col1 - col0, SUBSAMPLES)
    return slice(row0, row1), slice(col0, col1), hits.mean(axis=(1, 3))


def render(width: int, height: int, background: RGB, shapes: list[Shape],
           hard: bool) -> Image.Image:
    """The picture: each shape blended over the background by coverage (thresholded if hard)."""
    canvas = np.empty((height, width, 3))
    canvas[:] = background
    for shape in shapes:
        rows, cols, covered = coverage(shape)
        alpha = (covered >= 0.5).astype(float) if hard else covered
        alpha = alpha[..., None]
        canvas[rows, cols] = (1 - alpha) * canvas[rows, cols] + alpha * np.array(shape.colour)
    return Image.fromarray(np.rint(canvas).astype(np.uint8), "RGB")


def independent_sample(rng: random.Random, kind: str) -> Sample:
    """One held-out picture with its question of `kind` and the answer."""
    picture_plan, answer = plan(rng, kind)
    low, high = picture_plan.side_range or (SHAPE_MIN, SIDES[1])
    if rng.random() < GRID_SHARE and math.ceil(low / GRID) * GRID <= high:   # not small
        picture_plan = replace(picture_plan, grid=True)
    width, height, boxes = layout(rng, picture_plan)
    shapes = [Shape(shape, shape_colour(rng, name), x, y, s)
              for (shape, name), (x, y, s) in zip(picture_plan.shapes, boxes)]
    if picture_plan.alike:
        shapes = [replace(shape, colour=shapes[0].colour) for shape in shapes]
    background, hard = background_colour(rng), rng.random() < HARD_SHARE
    image = render(width, height, background, shapes, hard)
    return Sample(image=image, kind=kind, question=QUESTIONS[kind], answer=answer)


def independent_samples(n_per_kind: int, seed: int) -> list[Sample]:
    """n_per_kind samples of every kind, interleaved in the order of QUESTIONS."""
    rng = random.Random(seed)
    return [independent_sample(rng, kind) for _ in range(n_per_kind) for kind in QUESTIONS]
