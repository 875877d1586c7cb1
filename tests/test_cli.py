"""The command line, `python -m minipixtral describe | download`.

`describe` runs as a real subprocess (the defaults: the trained tiny Pixtral shipped in the
package and its demo picture; then --model and an image path), and user errors must end
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
from PIL import Image, ImageDraw

import minipixtral as mp
from minipixtral.__main__ import main

ROOT = Path(__file__).resolve().parent.parent


def run(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, TQDM_DISABLE="1")
    return subprocess.run([sys.executable, "-m", "minipixtral", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("images") / "small.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)).save(path)
    return path


def test_describe_with_the_defaults(tokenizer):
    """No --model: the trained tiny Pixtral of lesson 09 answers about its demo picture (a red
    circle on the left, a blue triangle on the right), offline."""
    result = run("describe", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "the tiny Pixtral of lesson 09" in result.stderr
    assert "How many shapes are there?" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout.strip() == "two"
    # the demo picture is 64×32: in patches of 8, 4 rows of 8 [IMG], each row closed by
    # [IMG_BREAK] / [IMG_END]: the tokenizer follows the checkpoint's params.json
    ids, _ = mp.shipped_tokenizer().encode_chat("How many shapes are there?",
                                                images=[mp.demo_picture()])
    assert len(ids) == 4 * (8 + 1) + len(tokenizer.encode("How many shapes are there?")) + 3
    assert f"({len(ids)} prompt tokens, 1 new token in" in result.stderr   # "two", then </s>
    result = run("describe", "--device", "cpu", "--prompt",
                 "What colour is the shape on the left?")
    assert result.returncode == 0 and result.stdout.strip() == "red", result.stderr


def test_describe_a_picture_of_ours_with_the_built_in_model(tmp_path):
    path = tmp_path / "three.png"
    picture = Image.new("RGB", (64, 48), "white")
    pen = ImageDraw.Draw(picture)
    for box, colour in [((2, 2, 13, 13), "green"), ((34, 18, 45, 29), "yellow"),
                        ((50, 34, 61, 45), "blue")]:
        mp.draw_shape(pen, "square", box, mp.COLOURS[colour])
    picture.save(path)
    result = run("describe", path, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "three"


def test_describe_with_model_and_image(checkpoint, photo):
    folder = checkpoint
    result = run("describe", photo, "--model", folder, "--prompt", "What is this?",
                 "--max-new-tokens", 5, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    tokenizer = mp.Tokenizer.from_file(folder / "tekken.json")
    ids, images = tokenizer.encode_chat("What is this?", images=[photo])
    model = mp.Pixtral.from_folder(folder, device="cpu")
    expected = tokenizer.decode(mp.generate(model, ids, images, max_new_tokens=5,
                                            eos_id=tokenizer.eos_id))
    assert result.stdout == expected
    assert f"({len(ids)} prompt tokens" in result.stderr


def test_a_bad_image_is_one_error_line(tmp_path, capsys, checkpoint):
    assert main(["describe", str(tmp_path / "missing.jpg"), "--model", str(checkpoint)]) == 2
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
def test_cuda_without_a_gpu(capsys, photo, checkpoint):
    assert main(["describe", str(photo), "--model", str(checkpoint), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: device 'cuda' was requested but CUDA is not available")


def test_unknown_device(capsys, photo, checkpoint):
    assert main(["describe", str(photo), "--model", str(checkpoint), "--device", "tpu"]) == 2
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
