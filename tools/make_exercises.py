"""Write the student notebooks `exercises/` from the filled-in `solutions/`.

In a solution notebook the student's part of a code cell sits between two marker lines:

    ### BEGIN SOLUTION: <what the student has to do, in one sentence>
    ...the answer...
    ### END SOLUTION

In the exercise notebook that part becomes one line, at the same indentation:

    raise NotImplementedError("Exercise 1.2 is not done yet: <what the student has to do>")

Exercises are numbered per notebook: lesson NN (from the file name), then 1, 2, ... in the
order the markers appear; the notebook's markdown must name each one ("Exercise 1.2") so
the student can find it. Outputs are cleared. The check cell after each exercise then fails
with that message until the student fills the blank in.

For the grader (`python -m minipixtral.grade`), which runs the course's own setup and check
cells and only the student's answers, every code cell gets a role in its metadata
(`metadata["minipixtral"]`): `{"role": "setup"}` before the first exercise heading (a
markdown cell starting with `#` and naming "Exercise N.k"), `{"role": "answer", "exercise":
"N.k"}` for the cell with the blank, plus whatever the solution cell's own `minipixtral`
metadata says (`points`, default 1; `reference`, the package names the answer must not call),
and `{"role": "check", "exercise": "N.k", "id": "N.k/1"}` for the other code cells of the
exercise's section. The notebook's metadata names its lesson (`{"lesson": "NN_topic"}`).

A cell whose metadata says `{"minipixtral": {"solution_only": true}}` (the notes after a
solution: the mistakes students make and how the check names them) stays in the solutions
and is left out of the exercises.

    python tools/make_exercises.py            write exercises/
    python tools/make_exercises.py --check    exit 1 (and say which) if exercises/ is stale
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

from sync import check_or_write

ROOT = Path(__file__).resolve().parent.parent
BEGIN = re.compile(r"^(\s*)### BEGIN SOLUTION(?::\s*(.*))?$")
END = re.compile(r"^\s*### END SOLUTION\s*$")
BANNER = ("> **Exercises.** This notebook is generated from `solutions/{name}`. Replace every "
          "`raise NotImplementedError(...)` with your code and run the check cell under it. "
          "When you are done, `pytest exercises/{name}` (from the repository root) runs the "
          "whole notebook and passes only if every check does; `python -m minipixtral.grade "
          "exercises/{name}` reports each exercise.")


def lesson_number(path: Path) -> int:
    prefix = path.name.split("_", 1)[0]
    if not prefix.isdigit():
        raise SystemExit(f"{path}: solution notebooks are named NN_topic.ipynb")
    return int(prefix)


def blank_cell(source: str, lesson: int, counter: list[int], where: str) -> str:
    """Replace each BEGIN/END SOLUTION block of one cell by a stub that raises."""
    out: list[str] = []
    inside = False
    for line in source.split("\n"):
        begin = BEGIN.match(line)
        if begin:
            if inside:
                raise SystemExit(f"{where}: nested `### BEGIN SOLUTION`")
            hint = (begin.group(2) or "").strip()
            if not hint:
                raise SystemExit(f"{where}: `### BEGIN SOLUTION` needs a hint: "
                                 f"`### BEGIN SOLUTION: <what to do>`")
            counter[0] += 1
            message = f"Exercise {lesson}.{counter[0]} is not done yet: {hint}"
            out.append(f"{begin.group(1)}raise NotImplementedError({message!r})")
            inside = True
        elif END.match(line):
            if not inside:
                raise SystemExit(f"{where}: `### END SOLUTION` without a BEGIN")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise SystemExit(f"{where}: `### BEGIN SOLUTION` is never closed")
    return "\n".join(out)


HEADING = re.compile(r"Exercise (\d+\.\d+)")


def role(cell, section: str | None, number: str | None, checks: list[int], where: str) -> dict:
    """The grader's metadata of one code cell (see the module's docstring)."""
    own = dict(cell.metadata.get("minipixtral", {}))
    if number is not None:  # the cell holds the blank of exercise `number`
        if section is not None and section != number:
            raise SystemExit(f"{where}: the blank of Exercise {number} sits in the section of "
                             f"Exercise {section}")
        return {"role": "answer", "exercise": number, **own}
    if section is None:
        return {"role": "setup"}
    checks[0] += 1
    return {"role": "check", "exercise": section, "id": f"{section}/{checks[0]}"}


def exercise_notebook(path: Path) -> nbformat.NotebookNode:
    """The student version of one solution notebook."""
    nb = nbformat.read(path, as_version=4)
    lesson = lesson_number(path)
    counter = [0]
    cells = []
    section, checks = None, [0]
    for index, cell in enumerate(nb.cells):
        if cell.metadata.get("minipixtral", {}).get("solution_only"):
            continue
        cell = copy.deepcopy(cell)
        cell.pop("id", None)
        heading = HEADING.search(cell.source) if cell.cell_type == "markdown" else None
        if heading and cell.source.lstrip().startswith("#"):
            section, checks = heading.group(1), [0]
        if cell.cell_type == "code":
            where = f"{path.name} cell {index}"
            before = counter[0]
            cell.source = blank_cell(cell.source, lesson, counter, where)
            if counter[0] > before + 1:
                raise SystemExit(f"{where}: one blank per cell (a cell has {counter[0] - before})")
            number = f"{lesson}.{counter[0]}" if counter[0] > before else None
            cell.metadata["minipixtral"] = role(cell, section, number, checks, where)
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
    if counter[0] == 0:
        raise SystemExit(f"{path}: no `### BEGIN SOLUTION` block, so no exercise")
    markdown = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    for k in range(1, counter[0] + 1):
        if f"Exercise {lesson}.{k}" not in markdown:
            raise SystemExit(f"{path}: no markdown cell introduces 'Exercise {lesson}.{k}'")
    out = nbformat.v4.new_notebook(metadata=copy.deepcopy(nb.metadata))
    out.metadata["minipixtral"] = {"lesson": path.stem}
    out.cells = [nbformat.v4.new_markdown_cell(BANNER.format(name=path.name))] + cells
    for cell in out.cells:  # stable ids, so that regenerating changes nothing
        cell.pop("id", None)
    out.nbformat, out.nbformat_minor = 4, 4
    return out


def render() -> dict[str, str]:
    """Every exercise notebook as it should be: {file name: JSON text}."""
    return {p.name: nbformat.writes(exercise_notebook(p)) + "\n"
            for p in sorted((ROOT / "solutions").glob("*.ipynb"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="only compare with exercises/ on disk; exit 1 if stale")
    parser.add_argument("--out", type=Path, default=ROOT / "exercises")
    args = parser.parse_args(argv)
    return check_or_write(
        render(), args.out, "*.ipynb", args.check,
        stale_says="exercises/{name} is stale: solutions/{name} changed",
        extra_says="exercises/{name} has no solutions/{name}",
        fix="Run `python tools/make_exercises.py`.",
        wrote="wrote {n} exercise notebooks to {folder}")

if __name__ == "__main__":
    sys.exit(main())
