"""Draw the course's diagrams: the PNGs beside the notebooks, embedded in their markdown.

    python tools/draw_figures.py            draw every figure into notebooks/figures/
    python tools/draw_figures.py --check    redraw into a temporary folder; exit 1 when a
                                            stored PNG differs, is missing, or is drawn by nothing
    python tools/draw_figures.py NAME...    draw only these (file names without .png)

Each module `tools/figures/<topic>.py` defines `FIGURES = {"name": function}`; a function takes
no argument and returns a matplotlib Figure. So no drawing code stands in a lesson: a lesson
embeds `![what it shows](figures/name.png)`. Plots of computed results are not drawn here:
they call the helpers of `minipixtral.plots` (appendix C).
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "notebooks" / "figures"
DPI = 100


def registry() -> dict[str, Callable[[], plt.Figure]]:
    """Every figure of every module in tools/figures/, by name; a name is drawn by one module."""
    import figures

    found: dict[str, Callable[[], plt.Figure]] = {}
    for info in pkgutil.iter_modules(figures.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"figures.{info.name}")
        for name, draw in module.FIGURES.items():
            if name in found:
                raise SystemExit(f"figure {name!r} is drawn by two modules")
            found[name] = draw
    return found


def draw(name: str, function: Callable[[], plt.Figure], folder: Path) -> Path:
    plt.rcParams.update(plt.rcParamsDefault)
    figure = function()
    path = folder / f"{name}.png"
    figure.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(figure)
    return path


def same_picture(a: Path, b: Path) -> bool:
    """Equal size, and at most 0.5 % of pixels differing by more than 10 levels (font
    rasterisers differ in the last bits between matplotlib builds)."""
    x = np.asarray(Image.open(a).convert("RGB"), dtype=np.int16)
    y = np.asarray(Image.open(b).convert("RGB"), dtype=np.int16)
    if x.shape != y.shape:
        return False
    return float((np.abs(x - y).max(axis=-1) > 10).mean()) <= 0.005


def check(figures: dict[str, Callable[[], plt.Figure]]) -> list[str]:
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, function in figures.items():
            fresh, stored = draw(name, function, Path(tmp)), FOLDER / f"{name}.png"
            if not stored.exists():
                problems.append(f"{stored.relative_to(ROOT)} is missing")
            elif not same_picture(fresh, stored):
                problems.append(f"{stored.relative_to(ROOT)} differs from what its script draws")
    for stored in sorted(FOLDER.glob("*.png")):
        if stored.stem not in figures:
            problems.append(f"{stored.relative_to(ROOT)} is drawn by no script in tools/figures/")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="draw only these figures")
    parser.add_argument("--check", action="store_true",
                        help="redraw into a temporary folder and compare; exit 1 on a difference")
    args = parser.parse_args(argv)
    figures = registry()
    unknown = [n for n in args.names if n not in figures]
    if unknown:
        parser.error(f"no such figure: {', '.join(unknown)} (known: {', '.join(sorted(figures))})")
    if args.check:
        problems = check(figures)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("Run `python tools/draw_figures.py` and commit the PNGs.", file=sys.stderr)
        return 1 if problems else 0
    FOLDER.mkdir(parents=True, exist_ok=True)
    for name in args.names or figures:
        print(draw(name, figures[name], FOLDER).relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
