"""The pace table: how long each notebook takes to read, and whether the lessons keep the limits.

    python tools/pace.py            print the table
    python tools/pace.py --check    print it, and exit 1 when a lesson breaks a limit

Reading time, in minutes = words of markdown / 180 + code lines / 15, where a code line is a
non-blank line of a code cell that is neither a `#` comment nor part of a docstring (a
docstring is read as prose: its words count as words).
Images embedded in markdown (`![what](figures/x.png)`) are not words.

The core path of a lesson is every cell before its first "Going deeper" heading (a markdown
cell opening with `## Going deeper...`); the cells from there on are optional. Appendices
(lettered, `A_references.ipynb`) are optional entirely.

Limits (`--check`, and tests/test_pace.py):
- a lesson's core path takes at most 40 minutes;
- no code cell, in any notebook, holds more than 25 code lines;
- a lesson's core path shows at least one figure per 5 minutes: images embedded in markdown
  plus the images its code cells output.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
WORDS_PER_MINUTE, CODE_LINES_PER_MINUTE = 180, 15
CORE_MINUTES, CELL_LINES, MINUTES_PER_FIGURE = 40, 25, 5
GOING_DEEPER = re.compile(r"\s*#{1,6}\s+Going deeper", re.IGNORECASE)
IMAGE = re.compile(r"!\[(?:[^\[\]]|\[[^\]]*\])*\]\([^)]*\)|<img\b[^>]*>")  # alt may hold [IMG]


def code_lines(source: str) -> tuple[int, int]:
    """(non-blank lines that are neither comments nor docstrings, words in docstrings).

    IPython's `%magic` and `!shell` lines count as code lines."""
    lines = source.splitlines()
    python = [("" if line.lstrip().startswith(("%", "!")) else line) for line in lines]
    docstring: set[int] = set()
    try:
        tree = ast.parse("\n".join(python))
    except SyntaxError:
        tree = None
    for node in ast.walk(tree) if tree else ():
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            docstring.update(range(body[0].lineno - 1, body[0].end_lineno))
    code = sum(1 for i, line in enumerate(lines)
               if i not in docstring and line.strip() and not line.lstrip().startswith("#"))
    return code, sum(len(lines[i].replace('"""', " ").split()) for i in docstring)


def words(markdown: str) -> int:
    return len(IMAGE.sub(" ", markdown).split())


def figures(cell) -> int:
    if cell.cell_type == "markdown":
        return len(IMAGE.findall(cell.source))
    if cell.cell_type == "code":
        return sum(1 for out in cell.get("outputs", []) if "image/png" in out.get("data", {}))
    return 0


@dataclass
class Pace:
    """One notebook's row of the table."""
    name: str
    core_minutes: float
    optional_minutes: float
    figures: int            # on the core path
    long_cells: list[int]   # cell numbers (from 1) with more than CELL_LINES code lines
    exercises: int          # `## Exercise` headings in solutions/<name>.ipynb
    lesson: bool

    def problems(self) -> list[str]:
        found = [f"{self.name}: cell {n} has more than {CELL_LINES} code lines"
                 for n in self.long_cells]
        if self.lesson and self.core_minutes > CORE_MINUTES:
            found.append(f"{self.name}: core path {self.core_minutes:.1f} min > {CORE_MINUTES}")
        if self.lesson and self.figures * MINUTES_PER_FIGURE < self.core_minutes:
            found.append(f"{self.name}: {self.figures} figures for {self.core_minutes:.1f} min "
                         f"(at least one per {MINUTES_PER_FIGURE} min)")
        return found


def pace(path: Path) -> Pace:
    nb = nbformat.read(path, as_version=4)
    lesson = path.name[:1].isdigit()
    minutes = [0.0, 0.0]  # core, optional
    figure_count, long_cells, part = 0, [], 0 if lesson else 1
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type == "markdown" and GOING_DEEPER.match(cell.source):
            part = 1
        if cell.cell_type == "markdown":
            minutes[part] += words(cell.source) / WORDS_PER_MINUTE
        elif cell.cell_type == "code":
            lines, prose = code_lines(cell.source)
            minutes[part] += lines / CODE_LINES_PER_MINUTE + prose / WORDS_PER_MINUTE
            if lines > CELL_LINES:
                long_cells.append(number)
        if part == 0:
            figure_count += figures(cell)
    solution = ROOT / "solutions" / path.name
    exercises = 0
    if solution.exists():
        exercises = sum(1 for cell in nbformat.read(solution, as_version=4).cells
                        if cell.cell_type == "markdown"
                        and re.match(r"\s*##\s+Exercise\b", cell.source))
    return Pace(path.stem, minutes[0], minutes[1], figure_count, long_cells, exercises, lesson)


def table(folder: Path = ROOT / "notebooks") -> list[Pace]:
    return [pace(path) for path in sorted(folder.glob("*.ipynb"))]


def render(rows: list[Pace]) -> str:
    out = ["| notebook | core min | optional min | figures | min per figure | long cells "
           "| exercises |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        per = f"{r.core_minutes / r.figures:.1f}" if r.figures else ("—" if not r.lesson else "∞")
        out.append(f"| {r.name} | {r.core_minutes:.1f} | {r.optional_minutes:.1f} | "
                   f"{r.figures} | {per} | {len(r.long_cells)} | {r.exercises} |")
    lessons = [r for r in rows if r.lesson]
    out.append(f"| **lessons, in all** | {sum(r.core_minutes for r in lessons):.0f} | "
               f"{sum(r.optional_minutes for r in rows):.0f} | "
               f"{sum(r.figures for r in lessons)} | | "
               f"{sum(len(r.long_cells) for r in rows)} | {sum(r.exercises for r in rows)} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a lesson breaks one of the limits")
    args = parser.parse_args(argv)
    rows = table()
    print(render(rows))
    problems = [p for row in rows for p in row.problems()]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if args.check and problems else 0


if __name__ == "__main__":
    sys.exit(main())
