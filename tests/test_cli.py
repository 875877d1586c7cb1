"""The command line, `python -m minipixtral describe | download`.

`describe` runs as a real subprocess (the default tiny checkpoint written under
$MINIPIXTRAL_HOME, the default photo; then --model and an image path), and user errors must end
with exit code 2 and one `error: ...` line, never a traceback (checked in-process, where an
uncaught exception would fail the test). `download` never touches the
network here: huggingface_hub's download function is replaced by one that fails.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import minipixtral as mp
from minipixtral.__main__ import main

ROOT = Path(__file__).resolve().parent.parent


def run(*args, home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, MINIPIXTRAL_HOME=str(home), TQDM_DISABLE="1")
    return subprocess.run([sys.executable, "-m", "minipixtral", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("images") / "small.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)).save(path)
    return path


def test_describe_with_the_defaults(tmp_path):
    result = run("describe", "--max-new-tokens", 3, "--device", "cpu", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "tiny" / "consolidated.safetensors").is_file()   # written once, here
    assert "gibberish" in result.stderr
    assert "new tokens in" in result.stderr and "Traceback" not in result.stderr
    # the default photo is matplotlib's Grace Hopper, 512×600: 38 rows of 32 patches
    assert "(1262 prompt tokens, 3 new tokens" in result.stderr


def test_describe_with_model_and_image(tmp_path, photo):
    folder = mp.write_tiny_checkpoint(tmp_path / "model")
    result = run("describe", photo, "--model", folder, "--prompt", "What is this?",
                 "--max-new-tokens", 5, "--device", "cpu", home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "home").exists()          # no default checkpoint needed
    tokenizer = mp.Tokenizer.from_file(folder / "tekken.json")
    ids, images = tokenizer.encode_chat("What is this?", images=[photo])
    model = mp.Pixtral.from_folder(folder, device="cpu")
    expected = tokenizer.decode(mp.generate(model, ids, images, max_new_tokens=5,
                                            eos_id=tokenizer.eos_id))
    assert result.stdout == expected
    assert f"({len(ids)} prompt tokens" in result.stderr


def test_a_bad_image_is_one_error_line(tmp_path, capsys):
    folder = mp.write_tiny_checkpoint(tmp_path / "model")
    assert main(["describe", str(tmp_path / "missing.jpg"), "--model", str(folder)]) == 2
    err = capsys.readouterr().err.split("\r")[-1]      # after the (erased) loading bar
    assert err.startswith("error: no image file") and "missing.jpg" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "nowhere", "no checkpoint folder"),
    (lambda tmp: tmp, "has no params.json"),
])
def test_a_bad_model_folder(tmp_path, capsys, photo, make, message):
    assert main(["describe", str(photo), "--model", str(make(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu(tmp_path, capsys, photo):
    folder = mp.write_tiny_checkpoint(tmp_path / "model")
    assert main(["describe", str(photo), "--model", str(folder), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: device 'cuda' was requested but CUDA is not available")


def test_unknown_device(tmp_path, capsys, photo):
    folder = mp.write_tiny_checkpoint(tmp_path / "model")
    assert main(["describe", str(photo), "--model", str(folder), "--device", "tpu"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown device 'tpu'")


def test_download_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["download", "--help"])
    assert exit_.value.code == 0
    assert "folder" in capsys.readouterr().out


def test_download_without_network(tmp_path, capsys, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("cannot reach the Hub")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    assert main(["download", str(tmp_path / "pixtral")]) == 1
    err = capsys.readouterr().err
    assert "could not download mistralai/Pixtral-12B-2409" in err and "no network?" in err


def test_download_gated(tmp_path, capsys, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError

    def gated(*args, **kwargs):
        raise GatedRepoError.__new__(GatedRepoError)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", gated)
    assert main(["download", str(tmp_path / "pixtral")]) == 1
    err = capsys.readouterr().err
    assert "is gated" in err and "hf auth login" in err


def test_download_success_message(tmp_path, capsys, monkeypatch):
    import huggingface_hub
    fetched = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        lambda repo, name, local_dir: fetched.append((repo, name)))
    assert main(["download", str(tmp_path)]) == 0
    assert [name for _, name in fetched] == ["params.json", "consolidated.safetensors",
                                             "tekken.json"]
    assert f"describe --model {tmp_path}" in capsys.readouterr().out
