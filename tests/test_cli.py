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
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("images") / "small.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)).save(path)
    return path


def test_describe_with_the_defaults(tokenizer, capsys):
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
    assert f"({len(ids)} prompt tokens, 1 image, 1 new token in" in result.stderr   # "two", then </s>
    # another question, in-process (a second interpreter would only repeat the imports)
    assert main(["describe", "--device", "cpu", "--prompt",
                 "What colour is the shape on the left?"]) == 0
    assert capsys.readouterr().out.strip() == "red"


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


# ---------------------------------------------------------------- several images, --messages
def answer(capsys, *args) -> tuple[int, str, str]:
    """main(describe ARGS) in this process with the built-in model: (code, stdout, stderr)."""
    code = main(["describe", "--device", "cpu", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_several_images_go_in_front_of_the_prompt(capsys, tmp_path):
    paths = [tmp_path / "demo.png", tmp_path / "sample.png"]
    mp.demo_picture().save(paths[0])
    mp.make_samples(1, seed=5, balanced=False)[0].image.save(paths[1])
    code, out, err = answer(capsys, *paths, "--max-new-tokens", 3)
    assert code == 0, err
    tok = mp.shipped_tokenizer()
    ids, images = tok.encode_chat("How many shapes are there?", images=paths)
    model = mp.Pixtral.from_folder(mp.shipped_checkpoint(), device="cpu")
    expected = tok.decode(mp.generate(model, ids, images, max_new_tokens=3, eos_id=tok.eos_id))
    assert out == expected and f"({len(ids)} prompt tokens, 2 images," in err


def test_messages_file_is_read_as_the_api_takes_it(capsys, tmp_path):
    """The question before the picture, as a data URL: lesson 11's rule turns it round, so the
    prompt is the default one and the answer too ("two")."""
    import base64
    import io
    import json
    buffer = io.BytesIO()
    mp.demo_picture().save(buffer, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    request = tmp_path / "request.json"
    request.write_text(json.dumps([{"role": "user", "content": [
        {"type": "text", "text": "How many shapes are there?"},
        {"type": "image_url", "image_url": {"url": url}}]}]))
    code, out, err = answer(capsys, "--messages", request)
    assert code == 0, err
    assert out.strip() == "two" and "1 image," in err


@pytest.mark.parametrize("args, message", [
    (["--messages", "{request}", "{image}"], "give no IMAGE and no --prompt"),
    (["--messages", "{request}", "--prompt", "Hi"], "give no IMAGE and no --prompt"),
    (["--messages", "{missing}"], "no messages file at"),
    (["--messages", "{not_json}"], "is not JSON"),
    (["--messages", "{not_a_list}"], "messages must be a list of dicts, got dict"),
    (["{image}", "{image}", "--show-attention", "{png}"], "--show-attention draws one picture"),
    (["--messages", "{request}", "--show-attention", "{png}"], "--show-attention draws one"),
], ids=["messages-and-image", "messages-and-prompt", "missing", "not-json", "not-a-list",
        "attention-two-images", "attention-messages"])
def test_bad_requests_end_with_an_error_line(capsys, tmp_path, args, message):
    files = {"request": tmp_path / "r.json", "image": tmp_path / "a.png",
             "missing": tmp_path / "none.json", "not_json": tmp_path / "n.json",
             "not_a_list": tmp_path / "d.json", "png": tmp_path / "out.png"}
    files["request"].write_text('[{"role": "user", "content": "Hi"}]')
    files["not_json"].write_text("[{'role': 'user'}]")
    files["not_a_list"].write_text('{"role": "user", "content": "Hi"}')
    mp.demo_picture().save(files["image"])
    code, out, err = answer(capsys, *[a.format(**files) for a in args])
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: ") and message in err
    assert "Traceback" not in err and not files["png"].exists()
