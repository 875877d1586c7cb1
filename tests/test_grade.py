"""The grading command: passed / not done / failed per exercise, a score, a CSV."""
import csv
import shutil
from pathlib import Path

import nbformat

from minipixtral.grade import grade_notebook, main

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "00_overview.ipynb"


def _edited(tmp_path, name, edit):
    nb = nbformat.read(SOLUTION, as_version=4)
    edit(nb.cells)
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def _replace(cells, old, new):
    cell = next(c for c in cells if c.cell_type == "code" and old in c.source)
    cell.source = cell.source.replace(old, new)


def test_solutions_pass_and_a_wrong_answer_fails_with_the_checks_message(tmp_path):
    assert [r.status for r in grade_notebook(SOLUTION)] == ["passed"] * 3
    wrong = _edited(tmp_path, "wrong.ipynb",
                    lambda cells: _replace(cells, "bits / 8 / 1e9", "bits / 8 / 1e6"))
    results = grade_notebook(wrong)
    assert [r.status for r in results] == ["passed", "passed", "failed"]
    assert "AssertionError" in results[2].message and "expected about" in results[2].message


def test_a_removed_check_is_not_a_pass(tmp_path):
    def drop_check(cells):
        index = next(i for i, c in enumerate(cells) if "Exercise 0.1 passed" in c.source)
        del cells[index]
    results = grade_notebook(_edited(tmp_path, "nocheck.ipynb", drop_check))
    assert results[0].status == "failed" and "check did not run" in results[0].message


def test_folder_of_submissions_to_csv(tmp_path, capsys):
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    shutil.copy(SOLUTION, submissions / "alice.ipynb")
    shutil.copy(ROOT / "exercises" / "00_overview.ipynb", submissions / "bob.ipynb")
    assert main([str(submissions), "--csv", str(tmp_path / "grades.csv")]) == 1
    rows = list(csv.DictReader(open(tmp_path / "grades.csv")))
    assert [(Path(r["notebook"]).name, r["status"]) for r in rows] == \
        [("alice.ipynb", "passed")] * 3 + [("bob.ipynb", "not done")] * 3
    assert "score: 3/3" in capsys.readouterr().out


def test_missing_notebook_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path / "nope.ipynb")]) == 2
    assert "no notebook at" in capsys.readouterr().err
