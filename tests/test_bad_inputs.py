"""Bad input, at every entry point, gets a clear error that names the problem.

One table per kind of input; each row: what is wrong, the call, the exception type, and a
pattern its message must match. Never a bare traceback from inside torch, never a silent
wrong answer, never a partial file.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import minipixtral as mp
from minipixtral.__main__ import main
from minipixtral.reference import mistral_image_encoder


@pytest.fixture(scope="module")
def model(checkpoint):
    return mp.Pixtral.from_folder(checkpoint, device="cpu")


def _file(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- images -------------------------------------------------------------------------------
IMAGE_CASES = [
    ("missing file", lambda t: t / "nope.png", FileNotFoundError, "no image file"),
    ("not an image", lambda t: _file(t, "a.png", b"hello"), ValueError, "not an image"),
    ("zero-sized array", lambda t: np.zeros((0, 5, 3), np.uint8), ValueError, "no pixels"),
    ("float array", lambda t: np.zeros((4, 4, 3), np.float32), ValueError, "uint8"),
    ("2-channel array", lambda t: np.zeros((4, 4, 2), np.uint8), ValueError, "shape"),
    ("not an image object", lambda t: 42, ValueError, "expected a path"),
]


@pytest.mark.parametrize("what, make, error, message", IMAGE_CASES,
                         ids=[c[0] for c in IMAGE_CASES])
def test_bad_images(tmp_path, what, make, error, message):
    with pytest.raises(error, match=message):
        mp.load_image(make(tmp_path))


@pytest.mark.parametrize("size", [0, -16])
def test_non_positive_max_size(size):
    with pytest.raises(ValueError, match="must be positive"):
        mp.load_image(np.zeros((4, 4, 3), np.uint8), max_image_size=size)


def test_huge_image_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("L", (20000, 20000)).save(path)  # a few hundred kB on disk, 400 Mpixels
    with pytest.raises(ValueError, match="pixels"):
        mp.load_image(path)


@pytest.mark.parametrize("mode", ["I;16", "CMYK"])
def test_unusual_modes_equal_mistral_common(mode):
    from mistral_common.protocol.instruct.chunk import ImageChunk
    rng = np.random.default_rng(0)
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 300, (20, 30), dtype=np.uint16))
    else:
        image = Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).convert(mode)
    reference = torch.from_numpy(mistral_image_encoder()(ImageChunk(image=image)).image)
    assert (mp.load_image(image) - reference).abs().max() < 1e-5


def test_animated_gif_uses_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue")]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    first = mp.load_image(tmp_path / "a.gif")
    assert torch.allclose(first, mp.load_image(frames[0]), atol=1e-5)


# --- prompts ------------------------------------------------------------------------------
def test_prompt_errors(tokenizer, model):
    image = np.full((32, 48, 3), 200, np.uint8)
    with pytest.raises(ValueError, match="empty prompt"):
        tokenizer.encode_chat("")
    with pytest.raises(ValueError, match=r"\d+ tokens long.*fit"):
        tokenizer.encode_chat("word " * 200, max_length=100)
    ids, images = tokenizer.encode_chat("What is this?", images=[image])
    other = mp.load_image(np.full((64, 64, 3), 200, np.uint8))
    with pytest.raises(ValueError, match=r"image 0: 6 \[IMG\] tokens, 16 patches"):
        model(torch.tensor(ids), [other])                      # [IMG] count ≠ patches
    text_ids, _ = tokenizer.encode_chat("What is this?")
    with pytest.raises(ValueError, match=r"image 0: 0 \[IMG\] tokens, 6 patches"):
        model(torch.tensor(text_ids), images)                  # images without image tokens
    with pytest.raises(ValueError, match=r"image 0: 6 \[IMG\] tokens, 0 patches"):
        model(torch.tensor(ids))                               # image tokens without images
    with pytest.raises(ValueError, match="context"):
        mp.generate(model, [1] * 10, max_new_tokens=model.config.max_seq_len)


# --- generation arguments ------------------------------------------------------------------
@pytest.mark.parametrize("options, message", [
    ({"max_new_tokens": -1}, "max_new_tokens"), ({"max_new_tokens": 2.5}, "max_new_tokens"),
    ({"temperature": -0.1}, "temperature"), ({"top_p": 0.0}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
])
def test_generation_arguments(model, options, message):
    with pytest.raises(ValueError, match=message):
        mp.generate(model, [1, 3, 1000, 4], **options)


# --- checkpoints ---------------------------------------------------------------------------
def _copy(checkpoint, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(checkpoint, folder)
    return folder


def test_missing_files(checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        mp.Pixtral.from_folder(tmp_path / "nowhere")
    folder = _copy(checkpoint, tmp_path)
    (folder / "consolidated.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="consolidated.safetensors"):
        mp.Pixtral.from_folder(folder)
    (folder / "params.json").unlink()
    with pytest.raises(FileNotFoundError, match="params.json"):
        mp.Pixtral.from_folder(folder)


def test_truncated_safetensors(checkpoint, tmp_path):
    folder = _copy(checkpoint, tmp_path)
    path = folder / "consolidated.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated"):
        mp.Pixtral.from_folder(folder)


def test_wrong_shapes(checkpoint, tmp_path):
    folder = _copy(checkpoint, tmp_path)
    params = json.loads((folder / "params.json").read_text())
    params["hidden_dim"] = 96
    (folder / "params.json").write_text(json.dumps(params))
    with pytest.raises(ValueError, match=r"feed_forward.w1.weight has shape \(128, 64\).*\(96, 64\)"):
        mp.Pixtral.from_folder(folder)


def test_params_typo(checkpoint, tmp_path):
    folder = _copy(checkpoint, tmp_path)
    params = json.loads((folder / "params.json").read_text())
    params["n_kv_haeds"] = params.pop("n_kv_heads")
    (folder / "params.json").write_text(json.dumps(params))
    with pytest.raises(ValueError, match="did you mean 'n_kv_heads'"):
        mp.Pixtral.from_folder(folder)


def test_hf_layout_given_as_mistral_layout(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="Hugging Face layout"):
        mp.Pixtral.from_folder(tmp_path)


def test_unsupported_dtype_and_device(checkpoint):
    with pytest.raises(ValueError, match="float16"):
        mp.Pixtral.from_folder(checkpoint, device="cpu", dtype=torch.float16)
    with pytest.raises(ValueError, match="unknown device"):
        mp.Pixtral.from_folder(checkpoint, device="gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_gpu(checkpoint):
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        mp.Pixtral.from_folder(checkpoint, device="cuda")


# --- the command line ----------------------------------------------------------------------
# In-process: main() returns 2 with one `error: ...` line (an uncaught exception would fail the
# test); one real process shows what the user's terminal gets from `python -m minipixtral`.
@pytest.mark.parametrize("arguments, message", [
    (["describe", "/no/such/image.png"], "no image file"),
    (["describe", "--model", "/no/such/folder"], "no checkpoint folder"),
    (["describe", "--device", "cuda"], "CUDA"),
    (["describe", "--max-new-tokens", "-3"], "max_new_tokens"),
])
def test_command_line_errors(checkpoint, capsys, arguments, message):
    if "--model" not in arguments:
        arguments = arguments + ["--model", str(checkpoint)]
    if "cuda" in arguments and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(arguments) == 2
    err = capsys.readouterr().err.split("\r")[-1]      # after the (erased) loading bar
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


def test_a_command_line_error_in_a_real_process(checkpoint):
    run = subprocess.run([sys.executable, "-m", "minipixtral", "describe", "/no/such/image.png",
                          "--model", str(checkpoint)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 2, run.stderr
    assert "no image file" in run.stderr and "Traceback" not in run.stderr, run.stderr
