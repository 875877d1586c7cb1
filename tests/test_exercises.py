"""An untouched exercise notebook must fail, and say which exercise is not done yet."""
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))


@pytest.mark.parametrize("path", EXERCISES, ids=[p.name for p in EXERCISES])
def test_untouched_exercises_fail_with_not_done_yet(path):
    nb = nbformat.read(path, as_version=4)
    stubs = re.findall(r"Exercise (\d+\.\d+) is not done yet",
                       "\n".join(c.source for c in nb.cells if c.cell_type == "code"))
    assert stubs, f"{path.name} has no exercise"
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    reported = re.findall(r"Exercise (\d+\.\d+) is not done yet",
                          "\n".join(f"{e.ename}: {e.evalue}" for e in errors))
    assert sorted(set(reported)) == sorted(set(stubs)), (
        f"{path.name}: every exercise's check should fail with 'not done yet'; "
        f"stubs {stubs}, reported {reported}")
    assert all(e.ename == "NotImplementedError" for e in errors), \
        f"{path.name}: an untouched notebook fails for another reason: " \
        f"{[(e.ename, e.evalue) for e in errors if e.ename != 'NotImplementedError']}"
