"""The pace table (tools/pace.py): how it measures, and every lesson within the limits."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import pace


def test_code_lines_leave_out_comments_blanks_and_docstrings():
    source = ('#| export\ndef f(x):\n    """Two words."""\n\n    # a comment\n    return x\n'
              '%time f(1)\n')
    assert pace.code_lines(source) == (3, 2)  # def, return, %time; "Two words."


def test_going_deeper_starts_the_optional_part(tmp_path):
    nb = new_notebook(cells=[new_markdown_cell("word " * 180),
                             new_code_cell("x = 1\n" * 15),
                             new_markdown_cell("## Going deeper: more\n" + "word " * 360),
                             new_markdown_cell("![a picture](figures/pipeline.png)")])
    path = tmp_path / "99_demo.ipynb"
    nbformat.write(nb, path)
    row = pace.pace(path)
    assert round(row.core_minutes, 6) == 2.0   # 180 words + 15 code lines
    assert round(row.optional_minutes, 6) == round(364 / 180, 6)  # "## Going deeper: more" + 360
    assert row.figures == 0                     # the picture is after "Going deeper"
    assert row.problems() == ["99_demo: 0 figures for 2.0 min (at least one per 5 min)"]


def test_a_long_cell_is_reported(tmp_path):
    nb = new_notebook(cells=[new_code_cell("x = 1\n" * 26)])
    path = tmp_path / "A_demo.ipynb"
    nbformat.write(nb, path)
    row = pace.pace(path)
    assert not row.lesson and row.long_cells == [1]
    assert row.problems() == ["A_demo: cell 1 has more than 25 code lines"]


def test_an_alt_text_holding_brackets_is_one_figure():
    assert pace.IMAGE.findall("![a [IMG] slot](figures/pipeline.png) and ![x](y.png)") == [
        "![a [IMG] slot](figures/pipeline.png)", "![x](y.png)"]


def test_every_lesson_keeps_the_limits():
    """Core path ≤ 40 min, no code cell over 25 code lines, a figure per 5 min (issue 14)."""
    rows = pace.table()
    assert [r.name for r in rows if r.lesson][:10] == [
        "00_overview", "01_images_to_patches", "02_rope", "03_vision_encoder",
        "04_image_tokens", "05_adapter", "06_decoder", "07_generation", "08_real_weights",
        "09_train_tiny_pixtral"]
    problems = [p for row in rows for p in row.problems()]
    assert not problems, "\n".join(problems)
    assert all(r.exercises >= 5 for r in rows if r.lesson)
