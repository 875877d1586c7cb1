"""One source of truth: the package is what the notebooks export, and the exercises are what
the solutions generate. Each check fails with the command that fixes it."""
import export
import make_exercises
import nbformat
import pytest
from sync import differences


def test_package_is_exactly_what_the_notebooks_export():
    stale, extra = differences(export.render(), export.ROOT / "minipixtral", "*.py")
    assert not stale and not extra, (
        f"minipixtral/ is out of sync with notebooks/: differs {stale}, exported by no "
        f"notebook {extra}. Edit the notebooks, then run `python tools/export.py`.")


def test_every_module_names_its_notebook():
    for path in (export.ROOT / "minipixtral").glob("*.py"):
        assert path.read_text().startswith("# Generated"), f"{path} has no generated header"


def test_exercises_are_generated_from_the_solutions():
    stale, extra = differences(make_exercises.render(), export.ROOT / "exercises", "*.ipynb")
    assert not stale and not extra, (
        f"exercises/ is out of sync with solutions/: stale {stale}, without a solution "
        f"{extra}. Run `python tools/make_exercises.py`.")


def test_every_lesson_from_01_has_solutions_and_exercises():
    """Lessons are numbered; appendices (A_references.ipynb, lettered) have no exercises."""
    lessons = {p.name for p in (export.ROOT / "notebooks").glob("[0-9]*.ipynb")}
    solutions = {p.name for p in (export.ROOT / "solutions").glob("*.ipynb")}
    assert lessons == solutions, f"lessons without solutions: {sorted(lessons - solutions)}; " \
                                 f"solutions without a lesson: {sorted(solutions - lessons)}"


def _notebook(tmp_path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("Exercise 7.1 and Exercise 7.2")]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    path = tmp_path / "07_demo.ipynb"
    nbformat.write(nb, path)
    return path


def test_marked_blocks_become_stubs_that_raise(tmp_path):
    path = _notebook(tmp_path,
                     "def f(x):\n    ### BEGIN SOLUTION: double x\n    return 2 * x\n"
                     "    ### END SOLUTION",
                     "### BEGIN SOLUTION: set y\ny = 3\n### END SOLUTION\nprint(y)")
    cells = make_exercises.exercise_notebook(path).cells
    assert cells[2].source == ("def f(x):\n    raise NotImplementedError("
                               "'Exercise 7.1 is not done yet: double x')")
    assert cells[3].source.startswith("raise NotImplementedError('Exercise 7.2 is not done")
    assert "return 2 * x" not in "".join(c.source for c in cells)


@pytest.mark.parametrize("source, problem", [
    ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", "needs a hint"),
    ("### BEGIN SOLUTION: a\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without a BEGIN"),
])
def test_malformed_markers_are_refused(tmp_path, source, problem):
    with pytest.raises(SystemExit, match=problem):
        make_exercises.exercise_notebook(_notebook(tmp_path, source))


def test_cells_get_the_graders_roles_and_solution_notes_are_left_out(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import torch"),
                nbformat.v4.new_markdown_cell("## Exercise 7.1 — double"),
                nbformat.v4.new_code_cell("def f(x):\n    ### BEGIN SOLUTION: double x\n"
                                          "    return 2 * x\n    ### END SOLUTION"),
                nbformat.v4.new_markdown_cell("**Solution notes.** Some add x to itself."),
                nbformat.v4.new_code_cell("assert f(2) == 4"),
                nbformat.v4.new_code_cell("print('Exercise 7.1 passed')")]
    nb.cells[2].metadata["minipixtral"] = {"reference": ["double"], "points": 2}
    nb.cells[3].metadata["minipixtral"] = {"solution_only": True}
    path = tmp_path / "07_demo.ipynb"
    nbformat.write(nb, path)
    out = make_exercises.exercise_notebook(path)
    assert out.metadata["minipixtral"] == {"lesson": "07_demo"}
    roles = [c.metadata.get("minipixtral") for c in out.cells if c.cell_type == "code"]
    assert roles == [{"role": "setup"},
                     {"role": "answer", "exercise": "7.1", "reference": ["double"], "points": 2},
                     {"role": "check", "exercise": "7.1", "id": "7.1/1"},
                     {"role": "check", "exercise": "7.1", "id": "7.1/2"}]
    assert "Solution notes" not in "".join(c.source for c in out.cells)
    assert "Solution notes" in "".join(c.source for c in nb.cells)           # negative control


def test_a_blank_outside_its_section_is_refused(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("## Exercise 7.2 — the second one"),
                nbformat.v4.new_code_cell("### BEGIN SOLUTION: a\nx = 1\n### END SOLUTION")]
    path = tmp_path / "07_demo.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(SystemExit, match="sits in the section of Exercise 7.2"):
        make_exercises.exercise_notebook(path)


def test_every_solution_names_its_own_lesson():
    """The grader finds the course's copy through this name: a solution notebook started from
    another lesson's file must not keep that lesson's name."""
    for path in sorted((export.ROOT / "solutions").glob("*.ipynb")):
        lesson = nbformat.read(path, as_version=4).metadata.get("minipixtral", {}).get("lesson")
        assert lesson in (None, path.stem), f"{path.name} says it is lesson {lesson!r}"
