"""The grader: the course's checks run, not the student's; every trick gets its exact status.

Tricks tried on lesson 00's exercises (three exercises, a fast setup): a check cell replaced
by a print, asserts replaced by `pass`, a deleted exercise section, an answer that calls the
package's own implementation, an endless loop, an answer that passes the visible checks but
not the hidden ones, an empty notebook, an empty file, a notebook of no lesson. A folder of
mixed submissions gives the CSV and Gradescope's results.json.
"""
import copy
import csv
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from minipixtral.grade import (STATUSES, ExerciseResult, course_folder, grade_notebook, main,
                               report, uses_reference)

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "exercises" / "00_overview.ipynb"
SOLUTION = ROOT / "solutions" / "00_overview.ipynb"
HIDDEN = Path(__file__).resolve().parent / "hidden_checks"

STUB = None  # an answer left as the course's stub


def solution_answers() -> dict[str, str]:
    """{exercise: the solution's answer cell} for lesson 00: right answers to start from."""
    nb = nbformat.read(SOLUTION, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "### BEGIN SOLUTION" in c.source]
    return {f"0.{k}": c.source for k, c in enumerate(cells, 1)}


def stubs() -> dict[str, str]:
    """{exercise: the course's stub} for lesson 00 (one answer cell each)."""
    nb = nbformat.read(EXERCISES, as_version=4)
    return {c.metadata["minipixtral"]["exercise"]: c.source for c in nb.cells
            if c.metadata.get("minipixtral", {}).get("role") == "answer"}


RIGHT = solution_answers()
NUMBERS = list(RIGHT)                      # 0.1, 0.2, ... as many as the lesson has


def student(tmp_path: Path, name: str, answers: dict[str, str | None], edit=None) -> Path:
    """The course's exercise notebook answered right, except for `answers` (None: the stub
    stays), edited further by edit(cells), written to tmp_path / name."""
    nb = nbformat.read(EXERCISES, as_version=4)
    for cell in nb.cells:
        role = cell.metadata.get("minipixtral", {})
        if role.get("role") == "answer":
            source = {**RIGHT, **answers}[role["exercise"]]
            cell.source = cell.source if source is None else source
    if edit is not None:
        edit(nb.cells)
    nbformat.write(nb, tmp_path / name)
    return tmp_path / name


def check_cell(cells, exercise: str):
    return next(c for c in cells if c.metadata.get("minipixtral", {}).get("id") == f"{exercise}/1")


def statuses(results) -> list[tuple[str, str]]:
    return [(r.exercise, r.status) for r in results]


def rest_passed(results, first: int) -> bool:
    """Every exercise after the first `first` passed."""
    return [r.status for r in results[first:]] == ["passed"] * (len(NUMBERS) - first)


def test_an_honest_solution_passes_and_untouched_exercises_are_not_done():
    assert statuses(grade_notebook(SOLUTION)) == [(n, "passed") for n in NUMBERS]
    untouched = grade_notebook(EXERCISES)
    assert [r.exercise for r in untouched] == NUMBERS and len(NUMBERS) >= 3
    assert {r.status for r in untouched} == {"not done"}
    assert all(f"Exercise {r.exercise} is not done yet" in r.message for r in untouched)


def test_untouched_stubs_are_not_done_without_a_kernel(tmp_path, refuse_kernels):
    """An answer left as the course's stub is 'not done' with the error the stub raises, read
    from its source; a stub the student edited (a comment added) runs and says the same."""
    edited = {n: "# my notes\n" + source for n, source in stubs().items()}
    ran = grade_notebook(student(tmp_path, "edited.ipynb", edited))
    refuse_kernels()
    untouched = grade_notebook(EXERCISES)
    assert [(r.status, r.message) for r in untouched] == [(r.status, r.message) for r in ran]
    assert {r.status for r in untouched} == {"not done"}
    with pytest.raises(AssertionError, match="a kernel was started"):  # negative control
        grade_notebook(student(tmp_path, "one_edit.ipynb", {"0.1": edited["0.1"]}))


def test_tricks_get_their_exact_status(tmp_path):
    def print_instead_of_check(cells):      # 0.1: a wrong answer, its check made harmless
        check_cell(cells, "0.1").source = 'print("Exercise 0.1 passed")'

    tricky = student(tmp_path, "tricky.ipynb", {
        "0.1": "def image_token_ids(tekken):\n    return (10, 11, 12)",
        "0.2": "def encode_prompt(tekken, text):\n    return tokenizer.encode_chat(text)[0]",
        "0.3": "N_PARAMETERS = 12_682_739_712\n\ndef weights_gigabytes(n, dtype):\n"
               "    while True:\n        pass",
        **{n: STUB for n in NUMBERS[3:]}}, print_instead_of_check)  # stubs: no time needed
    results = grade_notebook(tricky, timeout=10)  # as appendix B (0.1: well under 1 s)
    assert statuses(results)[:3] == [("0.1", "failed"), ("0.2", "uses the reference"),
                                     ("0.3", "timed out")]
    assert all(r.status == "not done" for r in results[3:])  # stubs: not run at all
    assert "expected (10, 12, 13)" in results[0].message     # the course's check, its message
    assert "encode_chat" in results[1].message
    assert "10 s" in results[2].message
    assert [r.points for r in results[:3]] == [0, 0, 0]


def test_asserts_replaced_by_pass_and_a_deleted_section(tmp_path):
    def tamper(cells):
        check = check_cell(cells, "0.1")
        check.source = check.source.replace("assert ", "pass  # assert ")
        heading = next(i for i, c in enumerate(cells) if c.source.startswith("## Exercise 0.3"))
        end = next((i for i, c in enumerate(cells) if i > heading
                    and c.source.startswith("## Exercise")), len(cells))
        del cells[heading:end]                                   # the whole section

    results = grade_notebook(student(tmp_path, "03_deleted.ipynb", {
        "0.1": "def image_token_ids(tekken):\n    return (1, 2, 3)"}, tamper))
    assert statuses(results)[:3] == [("0.1", "failed"), ("0.2", "passed"), ("0.3", "missing")]
    assert rest_passed(results, 3)
    assert "no answer to Exercise 0.3" in results[2].message


def test_hidden_checks_run_after_the_visible_ones(tmp_path):
    hard_coded = ("N_PARAMETERS = 12_682_739_712\n\ndef weights_gigabytes(n, dtype):\n"
                  "    return {torch.float32: 50.730958848}.get(dtype, 25.365479424)")
    notebook = student(tmp_path, "hard.ipynb", {"0.3": hard_coded})
    assert statuses(grade_notebook(notebook))[2] == ("0.3", "passed")       # visible only
    results = grade_notebook(notebook, hidden=HIDDEN)
    assert statuses(results)[:3] == [("0.1", "passed"), ("0.2", "passed"), ("0.3", "failed")]
    assert results[2].message.startswith("hidden check: AssertionError: a billion float64")
    assert rest_passed(results, 3)
    assert statuses(grade_notebook(student(tmp_path, "right.ipynb", {}), hidden=HIDDEN)) \
        == [(n, "passed") for n in NUMBERS]


def test_helper_cells_a_student_adds_are_part_of_the_answer(tmp_path):
    def add_helper(cells):
        answer = next(i for i, c in enumerate(cells)
                      if c.metadata.get("minipixtral", {}).get("exercise") == "0.3")
        cells.insert(answer, nbformat.v4.new_code_cell("def bytes_per_value(dtype):\n"
                                                       "    return torch.finfo(dtype).bits / 8"))
    notebook = student(tmp_path, "helper.ipynb", {"0.3": (
        "N_PARAMETERS = 12_682_739_712\n\ndef weights_gigabytes(n, dtype):\n"
        "    return n * bytes_per_value(dtype) / 1e9")}, add_helper)
    assert {r.status for r in grade_notebook(notebook)} == {"passed"}


@pytest.mark.parametrize("answer, reference, hit", [
    ("from minipixtral.layers import FeedForward\nffn = FeedForward(64, 128)", ["FeedForward"],
     "FeedForward"),
    ("def f(d, t):\n    return mp.rope_frequencies(d, t)", ["rope_frequencies"],
     "rope_frequencies"),
    ("import minipixtral.rope as r\nf = r.rope_frequencies(8, 1e4)", ["rope_frequencies"],
     "rope_frequencies"),
    ("def f(x):\n    return apply_rope(x, angles)", ["apply_rope"], "apply_rope"),  # setup's
    ("from minipixtral import *", ["RMSNorm"], "*"),
    ("def rope_frequencies_mine(d, t):\n    return 1 / t ** (torch.arange(0, d, 2) / d)",
     ["rope_frequencies"], None),
    ("def f(x):\n    return mp.load_image(x)", ["rope_frequencies"], None),
])
def test_answers_that_call_the_package_are_found(answer, reference, hit):
    setup = "import minipixtral as mp\nfrom minipixtral import apply_rope, load_image"
    assert uses_reference(answer, setup, reference) == hit


def test_every_course_exercise_names_what_it_must_not_call():
    """The course's copy carries each answer's reference names (the grader's only source)."""
    for path in sorted(course_folder().glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata["minipixtral"]["lesson"] == path.stem
        answers = [c.metadata["minipixtral"] for c in nb.cells
                   if c.metadata.get("minipixtral", {}).get("role") == "answer"]
        assert answers and all("reference" in a for a in answers), path.name


def test_points_from_the_course_copy(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    for path in course_folder().glob("*.ipynb"):
        shutil.copy(path, course / path.name)
    nb = nbformat.read(course / EXERCISES.name, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("minipixtral", {}).get("exercise") == "0.2":
            cell.metadata["minipixtral"]["points"] = 3
    nbformat.write(nb, course / EXERCISES.name)
    submission = student(tmp_path, "points.ipynb", {"0.3": STUB})
    results = grade_notebook(submission, course=course)
    n = len(NUMBERS)
    assert [(r.points, r.max_points) for r in results] == \
        [(1, 1), (3, 3), (0, 1)] + [(1, 1)] * (n - 3)
    assert (f"score: {n + 1}/{n + 2} points ({n - 1} of {n} exercises passed)"
            in report(submission, results))


def test_a_folder_gives_csv_and_gradescope_and_never_stops_early(tmp_path, capsys):
    folder = tmp_path / "submissions"
    folder.mkdir()
    shutil.copy(SOLUTION, folder / "alice.ipynb")
    shutil.copy(EXERCISES, folder / "bob.ipynb")
    empty = copy.deepcopy(nbformat.read(EXERCISES, as_version=4))
    empty.cells = []
    nbformat.write(empty, folder / "carol.ipynb")                 # no cells: all missing
    (folder / "dave.ipynb").write_text("")                       # an empty file
    other = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nbformat.write(other, folder / "erin.ipynb")                 # a notebook of no lesson
    code = main([str(folder), "--csv", str(tmp_path / "grades.csv"),
                 "--gradescope", str(tmp_path / "results.json")])
    assert code == 1
    rows = [(Path(r["notebook"]).name, r["exercise"], r["status"], r["points"])
            for r in csv.DictReader(open(tmp_path / "grades.csv"))]
    n = len(NUMBERS)
    assert rows[:3 * n] == [("alice.ipynb", k, "passed", "1") for k in NUMBERS] + \
        [("bob.ipynb", k, "not done", "0") for k in NUMBERS] + \
        [("carol.ipynb", k, "missing", "0") for k in NUMBERS]
    assert rows[3 * n:] == [("dave.ipynb", "-", "failed", "0"), ("erin.ipynb", "-", "failed", "0")]
    out = capsys.readouterr().out
    assert "not a readable notebook" in out and "names no lesson of the course" in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["score"] == n and len(results["tests"]) == 3 * n + 2
    first = results["tests"][0]
    assert set(first) == {"name", "score", "max_score", "output", "visibility"}
    assert first["name"] == "alice.ipynb: Exercise 0.1" and first["output"] == "passed"


def test_exit_codes(tmp_path, capsys):
    assert main([str(SOLUTION)]) == 0
    assert main([str(tmp_path / "nope.ipynb")]) == 1
    assert "no notebook at" in capsys.readouterr().out
    assert main([str(tmp_path)]) == 2                            # an empty folder
    assert "no notebook found" in capsys.readouterr().err


def test_a_course_notebook_without_exercises_is_refused(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nb.metadata["minipixtral"] = {"lesson": "42_nothing"}
    nbformat.write(nb, course / "42_nothing.ipynb")
    with pytest.raises(ValueError, match="has no exercise to grade"):
        grade_notebook(course / "42_nothing.ipynb", course=course)


def test_messages_are_wrapped_never_cut():
    message = "AssertionError: " + " ".join(f"word{k}" for k in range(80))
    text = report(Path("x.ipynb"), [ExerciseResult("x.ipynb", "3.3", "failed", message)])
    assert all(len(line) <= 100 for line in text.splitlines())
    assert " ".join(text.split()).count("word79") == 1 and "word0" in text
    assert set(STATUSES) == {"passed", "not done", "failed", "missing", "timed out",
                             "uses the reference"}
