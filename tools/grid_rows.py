"""Rows of alike shapes on the patch grid: how well a checkpoint counts them.

    python tools/grid_rows.py                      # the shipped tiny Pixtral
    python tools/grid_rows.py /tmp/tiny            # another checkpoint folder

The pictures a user draws at round numbers: white, 96 × 32, 96 × 48 or 80 × 40 pixels; one,
two or three circles, squares or triangles of one kind, one colour (red or blue) and one side
(16 or 24 pixels), in a row at y = 8 or 16 starting at x = 8, every corner a multiple of 8.
On 8-pixel patches a square there leaves no edge inside a patch (lesson 09, Going deeper: why
this dataset). Prints, for each kind, how many of the count questions it answers right.
"""
from __future__ import annotations

import argparse
import itertools
import os
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

from PIL import Image, ImageDraw

import minipixtral as mp
from minipixtral.synthetic import ANSWERS, COLOURS, QUESTIONS, SHAPES, Sample, draw_shape


def grid_rows() -> list[Sample]:
    """The probe's 126 count questions; each sample's boxes and shapes say what it holds."""
    samples = []
    for shape, n, side, (width, height), colour, y in itertools.product(
            SHAPES, [1, 2, 3], [16, 24], [(96, 32), (96, 48), (80, 40)], ["red", "blue"], [8, 16]):
        pitch = side + 8 if n == 3 and side == 24 else side + 16
        fits = lambda pitch: 8 + (n - 1) * pitch + side <= width - 1 and y + side <= height - 1
        pitch = pitch if fits(pitch) else side + 8
        if not fits(pitch):
            continue
        picture = Image.new("RGB", (width, height), "white")
        pen = ImageDraw.Draw(picture)
        boxes = tuple((x, y, side) for x in range(8, 8 + n * pitch, pitch))
        for x, _, _ in boxes:
            draw_shape(pen, shape, (x, y, x + side - 1, y + side - 1), COLOURS[colour])
        samples.append(Sample(picture, "count", QUESTIONS["count"], ANSWERS["count"][n - 1],
                              boxes=boxes, shapes=(shape,) * n))
    return samples


def checkpoint_answers(argv: list[str] | None, description: str,
                       samples: list[Sample]) -> list[str]:
    """The answers to the samples of the checkpoint folder named in argv (by default the
    shipped tiny Pixtral), for a probe's command line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("folder", nargs="?", type=Path, default=mp.shipped_checkpoint())
    folder = parser.parse_args(argv).folder
    model = mp.Pixtral.from_folder(folder, device="cpu")
    tokenizer = mp.tokenizer_for(mp.shipped_tokenizer_file(), model.config.vision_encoder)
    return mp.exact_match(model, tokenizer, samples)[1]


def main(argv: list[str] | None = None) -> int:
    samples = grid_rows()
    answers = checkpoint_answers(argv, __doc__.split("\n\n")[0], samples)
    right: dict[tuple[str, str], list[bool]] = {}
    for sample, answer in zip(samples, answers):
        right.setdefault((sample.shapes[0], sample.answer), []).append(answer == sample.answer)
    for shape in SHAPES:
        print(f"{shape + 's':9s} " + "   ".join(
            f"{n}: {sum(right[shape, n])} of {len(right[shape, n])}" for n in ANSWERS["count"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
