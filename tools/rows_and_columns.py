"""Two or three shapes in a row of a wide picture or a column of a tall one: how well a
checkpoint counts them.

    python tools/rows_and_columns.py               # the shipped tiny Pixtral
    python tools/rows_and_columns.py /tmp/tiny     # another checkpoint folder

Drawn with tools/independent_pictures.py's renderer (not the training generator): a picture
64 to 96 pixels long and 20 to 40 across, wide or tall (as often); two or three shapes of one
side, 10 pixels up to 4 less than the picture's short side (bigger than the second routine's
shapes, at most half the short side, ever get), evenly spaced along it at 3 pixels apart or
more, each its own kind and colour name. Prints, for wide and tall pictures, how many count
questions of two and three shapes it answers right, and of those with shapes bigger than half
the picture's short side (lesson 09, Going deeper: why this dataset).
"""
from __future__ import annotations

import os
import random

os.environ.setdefault("TQDM_DISABLE", "1")

from grid_rows import checkpoint_answers
from independent_pictures import HSV_BOXES, Shape, background_colour, render, shape_colour
from minipixtral.synthetic import ANSWERS, QUESTIONS, SHAPES, Sample


def rows_and_columns(draws: int = 1000, seed: int = 7) -> list[Sample]:
    """The count questions of `draws` draws (those whose shapes do not fit are skipped); each
    sample's boxes and shapes say what it holds, and its picture is tall for a column."""
    rng, samples = random.Random(seed), []
    for _ in range(draws):
        n, tall = rng.choice([2, 3]), rng.random() < 0.5
        length, across = rng.randint(64, 96), rng.randint(20, 40)
        side = rng.randint(10, across - 4)
        widest = (length - 2 - side) // (n - 1)
        if widest < side + 3:
            continue
        pitch = rng.randint(side + 3, widest)
        start = rng.uniform(1, length - 1 - side - pitch * (n - 1))
        offset = rng.uniform(1, across - 1 - side)
        names = [rng.choice(list(HSV_BOXES)) for _ in range(n)]
        kinds = [rng.choice(SHAPES) for _ in range(n)]
        boxes = tuple((offset, start + i * pitch, side) if tall else (start + i * pitch, offset,
                                                                        side) for i in range(n))
        shapes = [Shape(kind, shape_colour(rng, name), x, y, s)
                  for kind, name, (x, y, s) in zip(kinds, names, boxes)]
        width, height = (across, length) if tall else (length, across)
        picture = render(width, height, background_colour(rng), shapes, rng.random() < 0.5)
        samples.append(Sample(picture, "count", QUESTIONS["count"], ANSWERS["count"][n - 1],
                              boxes=boxes, shapes=tuple(kinds)))
    return samples


def main(argv: list[str] | None = None) -> int:
    samples = rows_and_columns()
    answers = checkpoint_answers(argv, __doc__.split("\n\n")[0], samples)
    right: dict[tuple[str, str, bool], list[bool]] = {}
    for sample, answer in zip(samples, answers):
        width, height = sample.image.size
        big = sample.boxes[0][2] > min(width, height) / 2
        key = ("tall" if height > width else "wide", sample.answer, big)
        right.setdefault(key, []).append(answer == sample.answer)
    for shape in ("wide", "tall"):
        print(f"{shape}  " + "   ".join(
            f"{n}: {sum(right[shape, n, False] + right[shape, n, True])} of "
            f"{len(right[shape, n, False] + right[shape, n, True])} "
            f"(big {sum(right[shape, n, True])} of {len(right[shape, n, True])})"
            for n in ANSWERS["count"][1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
