"""Fixtures shared by the test files (tools/ is importable through pytest's `pythonpath`).

- `tokenizer`: minipixtral's Tokenizer on the tekken.json the package ships;
- `checkpoint`: a random tiny Pixtral on disk in Mistral's format
  (minipixtral.reference.write_random_checkpoint: tiny_config, bfloat16, seed 0), written
  once per session: read it, or copy it before changing anything in it;
- `hf_model`: transformers' Llava holding the weights of the test module's own `model`
  fixture (every module that requests it defines `model`);
- `refuse_kernels`: a function that makes the grader fail if it starts a Jupyter kernel.

And one hook: the JupyterLab test (every lesson in a browser, the longest file by far) is
collected first, so that one of pytest-xdist's two workers starts it at once while the other
takes the rest, file by file (pyproject's `-n 2 --dist loadfile`).
"""
from __future__ import annotations

import os
import sys

# One torch thread per process when pytest-xdist runs several workers (pyproject: two, on two
# cores). Each worker, its notebook kernels and its subprocesses inherit this; with torch's
# default (a thread per core) their OpenMP threads fight over the cores and some cells take ten
# times as long (lesson 10's int8 evaluation: 191 s instead of 21). Outputs do not change: the
# stored ones were checked under both. A value given on the command line wins.
_SHARING_CORES = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1
if _SHARING_CORES:
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# rfc3987_syntax, an optional dependency of jsonschema that JupyterLab installs, builds its
# grammar parsers when imported: about 2.7 s in every process that imports minipixtral (through
# mistral_common and jsonschema), and the suite starts dozens (notebook kernels, the command
# line, the benchmarks). Nothing in the suite validates IRIs: this process
# and every process it starts find tests/stubs/ first on their path, whose rfc3987_syntax
# raises ImportError, which jsonschema takes as "not installed".
_STUBS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stubs")
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_STUBS] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != _STUBS])
sys.path.insert(0, _STUBS)

import pytest  # noqa: E402  (torch reads OMP_NUM_THREADS when it is first imported)
import torch  # noqa: E402

if _SHARING_CORES:  # in case a plugin imported torch before this file
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

import minipixtral as mp  # noqa: E402
from minipixtral.reference import hf_llava_model, write_random_checkpoint


def pytest_collection_modifyitems(items: list) -> None:
    """The JupyterLab test first; the sort is stable, the rest keep their order."""
    items.sort(key=lambda item: item.path.name != "test_jupyterlab.py")


@pytest.fixture(scope="session")
def tokenizer() -> mp.Tokenizer:
    return mp.Tokenizer.from_file(mp.shipped_tokenizer_file())


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp("random_checkpoint"))


@pytest.fixture
def refuse_kernels(monkeypatch):
    """Call it to make grading fail from then on if it starts a Jupyter kernel (grade.Kernel
    replaced by a stand-in that raises)."""
    from minipixtral import grade

    def refuse(workdir):
        raise AssertionError("a kernel was started")

    return lambda: monkeypatch.setattr(grade, "Kernel", refuse)


@pytest.fixture(scope="module")
def hf_model(model):
    return hf_llava_model(model)
