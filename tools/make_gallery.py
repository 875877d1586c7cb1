"""The gallery: hand-made pictures "a user might draw", for evaluating the tiny Pixtral.

    python tools/make_gallery.py              rewrite tests/gallery/ (PNGs and gallery.json)
    python tools/make_gallery.py --out DIR    write them into DIR instead

Every picture below was laid out by hand, like a person in a paint program: a size, a
background, and shapes with literal colours, box corners (x, y: the top-left pixel of the
shape's s x s box) and sides s; no random numbers. Drawn with PIL's ImageDraw (ellipse,
rectangle, polygon); the antialiased ones are drawn 4x larger and downscaled with LANCZOS.
The colours are pure primaries, CSS, MS Paint and matplotlib colours inside the spec's HSV
boxes (see tools/independent_pictures.py for the domain spec).

gallery.json lists {"file", "description", "questions"} per picture; the questions follow
from the shapes by the spec's rules: one shape is asked colour, shape, count, and size when
s <= 14 (small) or s >= 28 (big); two shapes of different colours, horizontally >= 3 px apart,
are asked count and position; anything else count only. tests/test_independent_pictures.py
checks every answer from the pixels, and that this script reproduces the stored PNGs.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from minipixtral.synthetic import QUESTIONS, Sample

ROOT = Path(__file__).resolve().parent.parent
GALLERY = ROOT / "tests" / "gallery"
SCALE = 4                          # antialiased pictures are drawn this much larger
SIDES, SHAPE_MIN, SMALL_MAX, BIG_MIN, MARGIN, GAP = (16, 96), 10, 14, 28, 1, 3
NUMBERS = ("one", "two", "three")
RGB = tuple[int, int, int]
Colour = tuple[str, RGB]           # (colour name, RGB)

# colour name and RGB: pure primaries, CSS named colours, MS Paint's and matplotlib's
RED, DARKRED = ("red", (255, 0, 0)), ("red", (139, 0, 0))
FIREBRICK, CRIMSONISH = ("red", (178, 34, 34)), ("red", (220, 20, 50))   # CSS crimson, H 348: out
PAINT_RED, TAB_RED = ("red", (237, 28, 36)), ("red", (214, 39, 40))
YELLOW, GOLD = ("yellow", (255, 255, 0)), ("yellow", (255, 215, 0))
PAINT_YELLOW, LEMON = ("yellow", (255, 242, 0)), ("yellow", (255, 247, 80))
LIME, CSS_GREEN = ("green", (0, 255, 0)), ("green", (0, 128, 0))
FORESTGREEN, LIMEGREEN = ("green", (34, 139, 34)), ("green", (50, 205, 50))
PAINT_GREEN, TAB_GREEN = ("green", (34, 177, 76)), ("green", (44, 160, 44))
BLUE, DODGERBLUE = ("blue", (0, 0, 255)), ("blue", (30, 144, 255))
ROYALBLUE, MEDIUMBLUE = ("blue", (65, 105, 225)), ("blue", (0, 0, 205))
DARKBLUE, PAINT_INDIGO = ("blue", (0, 0, 139)), ("blue", (63, 72, 204))

WHITE, SNOW, IVORY, CREAM = (255, 255, 255), (255, 250, 250), (255, 255, 240), (255, 250, 235)
LINEN, LIGHT_GREY, WHITESMOKE = (250, 240, 230), (235, 235, 235), (245, 245, 245)


@dataclass(frozen=True)
class Shape:
    """A shape: kind, colour, the top-left pixel (x, y) of its box, and the box side."""

    kind: str
    colour: Colour
    x: int
    y: int
    side: int


@dataclass(frozen=True)
class Picture:
    """One gallery picture, antialiased (`smooth`) or with hard edges."""

    file: str
    size: tuple[int, int]
    background: RGB
    shapes: tuple[Shape, ...]
    smooth: bool
    description: str


def circle(colour: Colour, x: int, y: int, side: int) -> Shape:
    """A disc of diameter `side` in the box whose top-left pixel is (x, y)."""
    return Shape("circle", colour, x, y, side)


def square(colour: Colour, x: int, y: int, side: int) -> Shape:
    """A square of side `side` whose top-left pixel is (x, y)."""
    return Shape("square", colour, x, y, side)


def triangle(colour: Colour, x: int, y: int, side: int) -> Shape:
    """An up-pointing triangle, base and height `side`, in the box whose top-left is (x, y)."""
    return Shape("triangle", colour, x, y, side)


PICTURES = (
    # one shape: colour, shape, count (and size when small or big)
    Picture("01_red_circle.png", (64, 64), WHITE, (circle(RED, 16, 16, 32),), False,
            "a big pure red circle centred on the patch corner (32, 32)"),
    Picture("02_blue_square.png", (64, 64), WHITE, (square(BLUE, 12, 12, 40),), True,
            "a big pure blue square in the middle, antialiased"),
    Picture("03_green_triangle.png", (64, 64), WHITE, (triangle(LIME, 10, 12, 44),), False,
            "a big pure green triangle, a little right of and below the centre"),
    Picture("04_yellow_circle_fills.png", (48, 48), WHITE, (circle(YELLOW, 4, 4, 40),), False,
            "a pure yellow circle filling most of the picture"),
    Picture("05_gold_square_small_top_right.png", (96, 96), WHITE,
            (square(GOLD, 76, 8, 12),), False, "a small gold square near the top right corner"),
    Picture("06_dodgerblue_circle_small_bottom_left.png", (96, 64), WHITE,
            (circle(DODGERBLUE, 6, 46, 14),), True,
            "a small dodgerblue circle near the bottom left corner, antialiased"),
    Picture("07_forestgreen_triangle_small_centre.png", (80, 80), IVORY,
            (triangle(FORESTGREEN, 34, 34, 12),), False,
            "a small forestgreen triangle in the middle of an ivory picture"),
    Picture("08_tiny_darkred_square.png", (16, 16), WHITE, (square(DARKRED, 3, 3, 10),), False,
            "a 10-px darkred square in a 16 x 16 picture"),
    Picture("09_tiny_red_triangle.png", (20, 18), WHITE, (triangle(PAINT_RED, 4, 3, 12),), False,
            "a 12-px MS Paint red triangle in a 20 x 18 picture"),
    Picture("10_tiny_blue_circle.png", (16, 16), WHITE, (circle(BLUE, 2, 2, 12),), True,
            "a 12-px pure blue circle in a 16 x 16 picture, antialiased"),
    Picture("11_tall_yellow_triangle.png", (24, 80), WHITE,
            (triangle(PAINT_YELLOW, 5, 34, 14),), False,
            "a small MS Paint yellow triangle halfway down a tall 24 x 80 picture"),
    Picture("12_banner_limegreen_circle.png", (96, 32), WHITE,
            (circle(LIMEGREEN, 36, 3, 26),), True,
            "a limegreen circle as tall as a 96 x 32 banner allows, antialiased"),
    Picture("13_banner_royalblue_triangle.png", (90, 40), WHITE,
            (triangle(ROYALBLUE, 29, 4, 32),), False,
            "a big royalblue triangle in a 90 x 40 banner"),
    Picture("14_crimson_circle_on_grid.png", (64, 64), WHITE,
            (circle(CRIMSONISH, 22, 22, 20),), True,
            "a crimson-like circle centred on the patch corner (32, 32), antialiased"),
    Picture("15_firebrick_square_on_grid_line.png", (48, 48), CREAM,
            (square(FIREBRICK, 10, 10, 12),), False,
            "a small firebrick square across the grid lines x = 16 and y = 16, on cream"),
    Picture("16_mediumblue_square_top_left.png", (64, 48), LIGHT_GREY,
            (square(MEDIUMBLUE, 1, 1, 16),), False,
            "a mediumblue square in the top left corner, 1 px from the edges, on light grey"),
    Picture("17_gold_triangle_bottom_right.png", (64, 64), WHITE,
            (triangle(GOLD, 49, 49, 14),), True,
            "a small gold triangle in the bottom right corner, 1 px from the edges, antialiased"),
    Picture("18_green_square_on_linen.png", (40, 40), LINEN,
            (square(CSS_GREEN, 5, 5, 30),), False, "a big CSS green square on linen"),
    Picture("19_huge_red_circle.png", (96, 96), WHITE, (circle(TAB_RED, 8, 8, 80),), True,
            "a huge matplotlib red circle, antialiased"),
    Picture("20_darkblue_triangle_whitesmoke.png", (56, 56), WHITESMOKE,
            (triangle(DARKBLUE, 6, 6, 44),), False, "a big darkblue triangle on whitesmoke"),
    Picture("21_lemon_circle_small.png", (36, 36), WHITE, (circle(LEMON, 13, 13, 10),), True,
            "a 10-px pale lemon-yellow circle in the middle, antialiased"),
    Picture("22_paint_green_square_right.png", (72, 40), WHITE,
            (square(PAINT_GREEN, 44, 10, 20),), False,
            "a medium MS Paint green square right of the centre"),
    Picture("23_yellow_square_fills.png", (30, 30), WHITE, (square(YELLOW, 1, 1, 28),), False,
            "a pure yellow square filling a 30 x 30 picture but a 1-px frame"),
    Picture("24_indigo_circle_on_snow.png", (50, 70), SNOW,
            (circle(PAINT_INDIGO, 10, 30, 30),), True,
            "a big MS Paint indigo circle low in a 50 x 70 picture, on snow, antialiased"),
    Picture("25_green_triangle_on_grid_line.png", (96, 64), WHITE,
            (triangle(TAB_GREEN, 40, 26, 16),), False,
            "a matplotlib green triangle across the grid lines x = 48 and y = 32"),
    # two shapes of different colours side by side: count, position
    Picture("26_red_circle_blue_square.png", (64, 32), WHITE,
            (circle(RED, 6, 8, 16), square(BLUE, 40, 8, 16)), False,
            "a red circle left of a blue square, on one line"),
    Picture("27_blue_triangle_gold_circle_lower.png", (80, 48), WHITE,
            (triangle(DODGERBLUE, 4, 4, 20), circle(GOLD, 50, 24, 20)), True,
            "a dodgerblue triangle top left, a gold circle lower on the right, antialiased"),
    Picture("28_banner_green_square_red_triangle.png", (96, 32), WHITE,
            (square(FORESTGREEN, 10, 6, 20), triangle(FIREBRICK, 70, 7, 18)), False,
            "a forestgreen square and a firebrick triangle far apart in a banner"),
    Picture("29_small_yellow_big_green.png", (64, 64), WHITE,
            (circle(YELLOW, 4, 40, 12), circle(LIMEGREEN, 24, 8, 34)), True,
            "a small yellow circle low on the left, a big limegreen circle up right, antialiased"),
    Picture("30_blue_red_squares_on_grid.png", (48, 48), WHITE,
            (square(BLUE, 8, 18, 12), square(RED, 28, 18, 12)), False,
            "a blue and a red square side by side, across the grid lines y = 16 and x = 32"),
    Picture("31_red_top_left_green_bottom_right.png", (90, 40), CREAM,
            (square(PAINT_RED, 3, 3, 14), triangle(TAB_GREEN, 60, 20, 16)), False,
            "a red square top left and a green triangle bottom right of a banner, on cream"),
    Picture("32_green_blue_on_the_right.png", (64, 64), WHITE,
            (triangle(LIME, 30, 10, 14), circle(BLUE, 48, 40, 14)), True,
            "a green triangle and, lower right of it, a blue circle, antialiased"),
    Picture("33_yellow_blue_triangles.png", (48, 24), LIGHT_GREY,
            (triangle(GOLD, 3, 5, 14), triangle(ROYALBLUE, 30, 5, 14)), False,
            "a gold and a royalblue triangle side by side in a 48 x 24 strip, on light grey"),
    Picture("34_green_low_red_high.png", (72, 48), IVORY,
            (circle(FORESTGREEN, 6, 26, 18), square(CRIMSONISH, 40, 4, 20)), True,
            "a forestgreen circle low on the left, a crimson-like square high right, antialiased"),
    Picture("35_blue_yellow_3px_apart.png", (40, 24), WHITE,
            (square(BLUE, 2, 6, 14), circle(PAINT_YELLOW, 19, 5, 14)), False,
            "a blue square and a yellow circle only 3 px apart"),
    # anything else: count only
    Picture("36_two_red_circles.png", (64, 32), WHITE,
            (circle(RED, 8, 8, 16), circle(RED, 40, 8, 16)), False, "two red circles side by side"),
    Picture("37_blue_square_above_green_circle.png", (32, 64), WHITE,
            (square(BLUE, 8, 4, 16), circle(LIMEGREEN, 6, 30, 20)), True,
            "a blue square above a limegreen circle in a tall picture, antialiased"),
    Picture("38_three_in_a_row.png", (96, 32), WHITE,
            (circle(RED, 4, 8, 16), square(YELLOW, 40, 8, 16), triangle(BLUE, 76, 8, 16)), False,
            "a red circle, a yellow square and a blue triangle in a row"),
    Picture("39_three_scattered.png", (80, 80), WHITE,
            (square(LIMEGREEN, 6, 6, 20), triangle(GOLD, 50, 8, 24),
             circle(ROYALBLUE, 20, 46, 28)), True,
            "a green square, a gold triangle and a big royalblue circle scattered, antialiased"),
    Picture("40_traffic_light.png", (32, 96), WHITE,
            (circle(RED, 8, 4, 16), circle(YELLOW, 8, 40, 16), circle(LIME, 8, 76, 16)), False,
            "a traffic light: red, yellow and green circles stacked in a tall picture"),
    Picture("41_three_small_in_big.png", (96, 96), IVORY,
            (triangle(RED, 10, 10, 10), square(BLUE, 50, 50, 12), circle(FORESTGREEN, 80, 20, 12)),
            False, "three small shapes far apart in a big ivory picture"),
    Picture("42_red_square_darkred_triangle.png", (48, 48), WHITE,
            (square(RED, 2, 2, 18), triangle(DARKRED, 26, 26, 18)), True,
            "a red square top left, a darkred triangle bottom right (both red), antialiased"),
    Picture("43_two_blue_one_yellow.png", (64, 48), LINEN,
            (circle(BLUE, 4, 4, 14), circle(DODGERBLUE, 24, 4, 14), square(GOLD, 44, 26, 16)),
            False, "two blue circles and a gold square, on linen"),
    Picture("44_yellow_above_red.png", (40, 64), SNOW,
            (triangle(YELLOW, 12, 4, 16), square(RED, 10, 30, 20)), False,
            "a yellow triangle above a red square, on snow"),
    # alike shapes: the same kind and colour, so that only their places tell them apart
    Picture("45_three_blue_squares_in_a_row.png", (96, 32), WHITE,
            (square(BLUE, 8, 8, 16), square(BLUE, 40, 8, 16), square(BLUE, 72, 8, 16)), False,
            "three pure blue squares in a row, on the patch grid"),
    Picture("46_two_green_triangles.png", (64, 40), IVORY,
            (triangle(PAINT_GREEN, 6, 10, 22), triangle(PAINT_GREEN, 36, 10, 22)), True,
            "two Paint-green triangles side by side, antialiased"),
    Picture("47_three_red_circles_scattered.png", (80, 64), WHITE,
            (circle(RED, 6, 6, 18), circle(RED, 50, 10, 22), circle(RED, 22, 38, 20)), False,
            "three pure red circles scattered"),
    Picture("48_two_gold_squares_stacked.png", (32, 72), WHITE,
            (square(GOLD, 7, 6, 18), square(GOLD, 7, 40, 18)), False,
            "two gold squares one above the other in a tall picture"),
    Picture("49_three_small_dodgerblue_circles.png", (72, 40), SNOW,
            (circle(DODGERBLUE, 6, 14, 12), circle(DODGERBLUE, 30, 14, 12),
             circle(DODGERBLUE, 54, 14, 12)), True,
            "three small dodgerblue circles in a row, antialiased, on snow"),
    Picture("50_two_big_red_triangles.png", (96, 56), LINEN,
            (triangle(TAB_RED, 4, 8, 40), triangle(TAB_RED, 50, 8, 40)), False,
            "two big matplotlib-red triangles, on linen"),
    Picture("51_three_green_squares_diagonal.png", (90, 90), WHITE,
            (square(LIME, 6, 6, 20), square(LIME, 35, 35, 20), square(LIME, 64, 64, 20)), False,
            "three pure green squares on the diagonal"),
    Picture("52_two_blue_triangles_3px_apart.png", (48, 32), WHITE,
            (triangle(ROYALBLUE, 4, 8, 18), triangle(ROYALBLUE, 25, 8, 18)), False,
            "two royalblue triangles whose boxes are 3 px apart"),
)


def horizontally_apart(left: Shape, right: Shape) -> bool:
    """Whether `right`'s box starts >= GAP px right of where `left`'s ends."""
    return right.x - (left.x + left.side) >= GAP


def questions(picture: Picture) -> dict[str, str]:
    """The questions that apply to the picture under the spec, with their answers."""
    shapes = picture.shapes
    asked = {"count": NUMBERS[len(shapes) - 1]}
    if len(shapes) == 1:
        (shape,) = shapes
        asked = {"colour": shape.colour[0], "shape": shape.kind, "count": "one"}
        if shape.side <= SMALL_MAX or shape.side >= BIG_MIN:
            asked["size"] = "small" if shape.side <= SMALL_MAX else "big"
    elif len(shapes) == 2:
        left, right = sorted(shapes, key=lambda shape: shape.x)
        if left.colour[0] != right.colour[0] and horizontally_apart(left, right):
            asked["position"] = left.colour[0]
    return asked


def check_layout(picture: Picture) -> None:
    """Raise ValueError when a picture breaks the spec's sizes, margins or gaps."""
    width, height = picture.size
    problems = [] if all(SIDES[0] <= n <= SIDES[1] for n in (width, height)) else ["size"]
    for shape in picture.shapes:
        if not SHAPE_MIN <= shape.side <= min(width, height) - 2 * MARGIN:
            problems.append(f"side of {shape}")
        if min(shape.x, shape.y) < MARGIN or shape.x + shape.side > width - MARGIN \
                or shape.y + shape.side > height - MARGIN:
            problems.append(f"margin of {shape}")
    for i, a in enumerate(picture.shapes):
        for b in picture.shapes[i + 1:]:
            gaps = (b.x - a.x - a.side, a.x - b.x - b.side, b.y - a.y - a.side, a.y - b.y - b.side)
            if max(gaps) < GAP:
                problems.append(f"{a} and {b} closer than {GAP} px")
    if problems:
        raise ValueError(f"{picture.file}: {problems}")


def draw(picture: Picture) -> Image.Image:
    """The picture drawn with ImageDraw, at 4x and downscaled when antialiased."""
    scale = SCALE if picture.smooth else 1
    width, height = picture.size
    image = Image.new("RGB", (width * scale, height * scale), picture.background)
    pen = ImageDraw.Draw(image)
    for shape in picture.shapes:
        left, top = shape.x * scale, shape.y * scale
        right, bottom = (shape.x + shape.side) * scale - 1, (shape.y + shape.side) * scale - 1
        colour = shape.colour[1]
        if shape.kind == "circle":
            pen.ellipse((left, top, right, bottom), fill=colour)
        elif shape.kind == "square":
            pen.rectangle((left, top, right, bottom), fill=colour)
        else:
            pen.polygon([(left, bottom), (right, bottom), ((left + right) / 2, top)], fill=colour)
    return image.resize(picture.size, Image.Resampling.LANCZOS) if picture.smooth else image


def write_gallery(out: Path) -> None:
    """Write every picture and gallery.json into `out`, removing PNGs no longer listed."""
    out.mkdir(parents=True, exist_ok=True)
    names = {picture.file for picture in PICTURES}
    for stale in out.glob("*.png"):
        if stale.name not in names:
            stale.unlink()
    entries = []
    for picture in PICTURES:
        check_layout(picture)
        draw(picture).save(out / picture.file)
        entries.append({"file": picture.file, "description": picture.description,
                        "questions": questions(picture)})
    (out / "gallery.json").write_text(json.dumps(entries, indent=2) + "\n")


def gallery_samples(folder: Path = GALLERY) -> list[Sample]:
    """Every question of the committed gallery as a Sample (picture, kind, question, answer),
    picture by picture in the order of gallery.json (a picture's questions share its image)."""
    samples = []
    for entry in json.loads((folder / "gallery.json").read_text()):
        picture = Image.open(folder / entry["file"]).convert("RGB")
        samples += [Sample(picture, kind, QUESTIONS[kind], answer)
                    for kind, answer in entry["questions"].items()]
    return samples


def main() -> None:
    """Parse the command line and write the gallery."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=GALLERY, help="folder to write into")
    write_gallery(parser.parse_args().out)


if __name__ == "__main__":
    main()
