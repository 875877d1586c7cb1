"""Fixtures shared by the test files (tools/ is importable through pytest's `pythonpath`).

- `tokenizer`: minipixtral's Tokenizer on the tekken.json the package ships;
- `checkpoint`: a random tiny Pixtral on disk in Mistral's format
  (minipixtral.reference.write_random_checkpoint: tiny_config, bfloat16, seed 0), written
  once per session: read it, or copy it before changing anything in it;
- `hf_model`: transformers' Llava holding the weights of the test module's own `model`
  fixture (every module that requests it defines `model`).
"""
from __future__ import annotations

import pytest

import minipixtral as mp
from minipixtral.reference import hf_llava_model, write_random_checkpoint


@pytest.fixture(scope="session")
def tokenizer() -> mp.Tokenizer:
    return mp.Tokenizer.from_file(mp.shipped_tokenizer_file())


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp("random_checkpoint"))


@pytest.fixture(scope="module")
def hf_model(model):
    return hf_llava_model(model)
