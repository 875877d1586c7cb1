"""An untouched exercise notebook must fail, and say which exercise is not done yet.

The grader reads an untouched stub's message from its source without starting a kernel
(tests/test_grade.py checks, on lesson 00, that it is the message the stub raises when run);
here every exercise of every lesson must be recognised that way (conftest's refuse_kernels)."""
import re
from pathlib import Path

import nbformat
import pytest

from minipixtral.grade import grade_notebook

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))


@pytest.mark.parametrize("path", EXERCISES, ids=[p.name for p in EXERCISES])
def test_untouched_exercises_are_all_not_done(path, refuse_kernels):
    refuse_kernels()
    nb = nbformat.read(path, as_version=4)
    stubs = re.findall(r"Exercise (\d+\.\d+) is not done yet",
                       "\n".join(c.source for c in nb.cells if c.cell_type == "code"))
    assert stubs, f"{path.name} has no exercise"
    results = grade_notebook(path)
    assert [r.exercise for r in results] == stubs, \
        f"{path.name}: graded exercises {[r.exercise for r in results]}, stubs {stubs}"
    wrong = [(r.exercise, r.status, r.message) for r in results
             if r.status != "not done" or f"Exercise {r.exercise} is not done yet" not in r.message]
    assert not wrong, f"{path.name}: untouched exercises must be 'not done', got {wrong}"
