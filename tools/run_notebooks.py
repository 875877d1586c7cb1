"""Run notebooks top to bottom and store their outputs (what nbval later compares).

    python tools/run_notebooks.py notebooks/02_rope.ipynb solutions/02_rope.ipynb
    python tools/run_notebooks.py --all      every lesson and solution notebook

Run it after editing a notebook, then `python tools/export.py` and
`python tools/make_exercises.py`. Execution happens in this Python environment, in the
notebook's folder, exactly as `pytest --nbval-current-env` will replay it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def run(path: Path, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    for cell in nb.cells:  # keep diffs small: no timestamps, one output per run of prints
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = _joined_streams(cell.outputs)
    nbformat.write(nb, path)
    return time.perf_counter() - start


def _joined_streams(outputs: list) -> list:
    """Consecutive prints to one stream as one output: how they are split depends on when the
    kernel flushed them, which depends on the machine's load; nbval joins them the same way."""
    joined = []
    for output in outputs:
        previous = joined[-1] if joined else None
        if (output.output_type == "stream" and previous is not None
                and previous.output_type == "stream" and previous.name == output.name):
            previous.text += output.text
        else:
            joined.append(output)
    return joined


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = list(args.notebooks)
    if args.all:
        paths += sorted((ROOT / "notebooks").glob("*.ipynb"))
        paths += sorted((ROOT / "solutions").glob("*.ipynb"))
    if not paths:
        parser.error("name notebooks or pass --all")
    for path in paths:
        print(f"{path}: ran in {run(path.resolve(), args.timeout):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
