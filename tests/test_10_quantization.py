"""Lesson 10: weight-only int8 / int4 quantization, its kernels, models and checkpoint folders.

References we did not write: torch's fused weight-only kernels against dequantize-then-matmul
(and the other way round), the safetensors library for the files we stream, float32 logits of
the unquantized model (with a documented tolerance per format), the trained tiny model's exact
match on pictures from the second drawing routine (tools/independent_pictures.py). Every
check has a negative control; every bad input is a clear error.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import minipixtral as mp
from independent_pictures import independent_samples
from minipixtral.quantize import (QuantizedLinear, SafetensorsWriter, dequantize_int4,
                                  dequantize_int8, int4_kernel_layout, int4_matmul, int8_matmul,
                                  load_quantized_folder, pack_int4, quantize_folder,
                                  quantize_int4, quantize_int8, quantize_linear, quantize_model,
                                  read_quantization, unpack_int4, weight_bytes)
from minipixtral.reference import (randomize, relative_error, tiny_config,
                                   write_random_checkpoint)

# max |Δ logits| / max |logits| of the random 256-wide model below against float32 (lesson 10
# section 7 documents the same numbers: int8 0.024, int4 0.35 (G = 128) and 0.31 (G = 32)).
TOLERANCE = {(8, 128): 0.05, (4, 128): 0.5, (4, 32): 0.5}


def _weight(out_features=64, in_features=256, seed=0, scale=0.02):
    return torch.randn(out_features, in_features, generator=torch.Generator().manual_seed(seed)) * scale


# ---------------------------------------------------------------- the number formats
def test_int8_is_absmax_per_row_within_half_a_step():
    w = _weight()
    w[3] = 0.0                                      # an all-zero row stays all zero
    q, s = quantize_int8(w)
    assert q.dtype == torch.int8 and s.dtype == torch.float32 and s.shape == (64,)
    assert q.abs().max() == 127 and torch.equal(q[3], torch.zeros_like(q[3]))
    error = (dequantize_int8(q, s) - w).abs()
    assert (error <= s[:, None] / 2 * (1 + 1e-6)).all()
    assert torch.allclose(s[torch.arange(64) != 3], w.abs().amax(1)[torch.arange(64) != 3] / 127)


@pytest.mark.parametrize("group", [32, 64, 128])
def test_int4_groups_within_half_a_step(group):
    w = _weight(48, 512, seed=1)
    packed, s = quantize_int4(w, group)
    assert packed.dtype == torch.uint8 and packed.shape == (48, 256) and s.shape == (48, 512 // group)
    codes = unpack_int4(packed)
    assert codes.min() >= -7 and codes.max() <= 7
    step = s.repeat_interleave(group, dim=1)
    assert ((dequantize_int4(packed, s) - w).abs() <= step / 2 * (1 + 1e-6)).all()
    # negative control: one scale for the whole row is a coarser grid
    row_packed, row_s = quantize_int4(w, 512)
    assert (dequantize_int4(row_packed, row_s) - w).abs().mean() > \
        (dequantize_int4(packed, s) - w).abs().mean()


def test_a_layer_narrower_than_the_group_takes_one_group_a_row():
    packed, s = quantize_int4(_weight(16, 32), 128)
    assert s.shape == (16, 1)


def test_pack_int4_layout_even_column_in_the_low_nibble():
    codes = torch.arange(-8, 8, dtype=torch.int8).reshape(1, 16)
    packed = pack_int4(codes)
    assert packed.tolist() == [[(2 * i) | ((2 * i + 1) << 4) for i in range(8)]]  # q + 8 = 0 … 15
    assert torch.equal(unpack_int4(packed), codes)


@pytest.mark.parametrize("call, message", [
    (lambda: quantize_int8(torch.zeros(4)), "2-D floating-point"),
    (lambda: quantize_int8(torch.zeros(4, 4, dtype=torch.int32)), "2-D floating-point"),
    (lambda: quantize_int4(_weight(8, 96), 64), "does not divide the 96 inputs"),
    (lambda: quantize_int4(_weight(8, 96), 3), "positive even"),
    (lambda: QuantizedLinear(8, 8, bits=5), "bits must be 8 or 4"),
])
def test_bad_inputs_are_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---------------------------------------------------------------- kernels and QuantizedLinear
@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-6), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("rows", [1, 3])
def test_fused_kernels_equal_dequantize_then_matmul(dtype, tolerance, rows):
    w, x = _weight(96, 256, seed=2), torch.randn(rows, 256, generator=torch.Generator().manual_seed(3))
    x = x.to(dtype)
    q8, s8 = quantize_int8(w)
    expected = x.float() @ dequantize_int8(q8, s8.to(dtype).float()).T
    assert relative_error(int8_matmul(x, q8, s8), expected) < tolerance
    q4, s4 = quantize_int4(w, 64)
    expected = x.float() @ dequantize_int4(q4, s4.to(dtype).float()).T
    assert relative_error(int4_matmul(x, int4_kernel_layout(q4, s4, dtype), 64), expected) < tolerance
    wrong = int4_kernel_layout(q4, s4.flip(1).contiguous(), dtype)        # negative control
    assert relative_error(int4_matmul(x, wrong, 64), expected) > 0.05


@pytest.mark.parametrize("bits, out_features", [(8, 64), (4, 64), (4, 40)])  # 40: no kernel fits
@pytest.mark.parametrize("shape", [(1, 256), (2, 1, 256), (37, 256)])       # fused, fused, not
def test_quantized_linear_equals_its_dequantized_weight(bits, out_features, shape):
    linear = torch.nn.Linear(256, out_features, bias=True)
    layer = quantize_linear(linear, bits=bits, group_size=64)
    x = torch.randn(shape)
    expected = torch.nn.functional.linear(x, layer.dequantized(), linear.bias)
    assert layer(x).shape == (*shape[:-1], out_features)
    assert relative_error(layer(x), expected) < 1e-6
    assert relative_error(layer(x), linear(x)) < (0.02 if bits == 8 else 0.2)
    assert relative_error(layer(x), linear(x)) > 1e-5       # it is quantized, not the original


def test_quantize_model_swaps_the_decoder_and_keeps_the_head_int8_in_int4():
    model = quantize_model(mp.Pixtral(tiny_config()), bits=4, group_size=32)
    kinds = {name: (m.bits if isinstance(m, QuantizedLinear) else type(m).__name__)
             for name, m in model.named_modules() if isinstance(m, (QuantizedLinear, torch.nn.Linear))}
    assert kinds["output"] == 8 and kinds["layers.0.feed_forward.w2"] == 4
    assert kinds["vision_language_adapter.w_in"] == "Linear"
    vision = quantize_model(mp.Pixtral(tiny_config()), bits=8, vision=True)
    assert not any(isinstance(m, torch.nn.Linear) for m in vision.modules())
    assert weight_bytes(vision) < weight_bytes(mp.Pixtral(tiny_config()))


# ---------------------------------------------------------------- logits and answers
@pytest.fixture(scope="module")
def wide_model_and_prompt(tokenizer):
    config = dataclasses.replace(tiny_config(), dim=256, head_dim=32, n_heads=8, n_kv_heads=4,
                                 hidden_dim=1024)
    model = randomize(mp.Pixtral(config), seed=0, std=0.05)
    picture = np.random.default_rng(3).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    ids, images = tokenizer.encode_chat("Describe the image.", images=[picture])
    with torch.inference_mode():
        return model, torch.tensor(ids), images, model(torch.tensor(ids), images)


@pytest.mark.parametrize("bits, group", list(TOLERANCE))
def test_logits_against_float32_within_the_documented_tolerance(wide_model_and_prompt, bits,
                                                                  group):
    model, ids, images, reference = wide_model_and_prompt
    quantized = quantize_model(copy.deepcopy(model), bits=bits, group_size=group)
    with torch.inference_mode():
        error = relative_error(quantized(ids, images), reference)
        assert 1e-4 < error < TOLERANCE[(bits, group)]
        broken = quantize_model(copy.deepcopy(model), bits=bits, group_size=group)
        broken.layers[0].feed_forward.w2.scales.mul_(3)              # negative control
        assert relative_error(broken(ids, images), reference) > TOLERANCE[(bits, group)] / 2


@pytest.fixture(scope="module")
def shipped_tokenizer():
    return mp.shipped_tokenizer()                       # patches of 8 pixels


@pytest.fixture(scope="module")
def trained_answers(shipped_tokenizer):
    model = mp.Pixtral.from_folder(mp.shipped_checkpoint(), device="cpu", dtype=torch.float32)
    samples = independent_samples(40, 2027)   # 200 pictures, 40 of each kind
    return model, samples, mp.exact_match(model, shipped_tokenizer, samples)[0]


# Measured: int8 changes none of the 200 answers, int4 three (96.5% → 95.0%); lesson 10's own
# 200 pictures of the training generator: int4 within a point.
@pytest.mark.parametrize("spec, points", [(dict(bits=8), 1), (dict(bits=4), 2)],
                         ids=["int8", "int4"])
def test_trained_model_exact_match_close_to_float32(trained_answers, shipped_tokenizer, spec,
                                                    points):
    model, samples, float_score = trained_answers
    score, _ = mp.exact_match(quantize_model(copy.deepcopy(model), **spec), shipped_tokenizer,
                              samples)
    assert abs(score - float_score) <= points / 100 + 1e-9, (spec, score, float_score)


# ---------------------------------------------------------------- checkpoint folders
@pytest.fixture(scope="module")
def float_folder(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp("float") / "f", dtype=torch.bfloat16)


@pytest.mark.parametrize("bits, group, vision", [(8, 128, False), (4, 32, False), (4, 64, True)])
def test_quantized_folder_loads_equal_to_quantizing_in_memory(float_folder, tmp_path, tokenizer,
                                                              bits, group, vision):
    out = quantize_folder(float_folder, tmp_path / "q", bits=bits, group_size=group, vision=vision)
    assert (out / "tekken.json").read_bytes() == (float_folder / "tekken.json").read_bytes()
    spec = read_quantization(out / "params.json")
    assert spec == {"bits": bits, "group_size": group if bits == 4 else 128, "vision": vision}
    stored = load_file(out / "consolidated.safetensors")              # the safetensors library
    assert stored["layers.0.attention.wq.weight"].dtype == (torch.int8 if bits == 8 else torch.uint8)
    assert stored["output.weight"].dtype == torch.int8 and stored["norm.weight"].dtype == torch.bfloat16
    loaded = mp.Pixtral.from_folder(out, device="cpu", dtype=torch.float32)
    expected = quantize_model(mp.Pixtral.from_folder(float_folder, device="cpu"), bits=bits,
                              group_size=group, vision=vision)
    ids, images = tokenizer.encode_chat("Hi", images=[np.zeros((20, 30, 3), np.uint8)])
    with torch.inference_mode():
        assert torch.equal(loaded(torch.tensor(ids), images), expected(torch.tensor(ids), images))
    assert next(mp.Pixtral.from_folder(out, device="cpu").parameters()).dtype == torch.bfloat16


def test_safetensors_writer_checks_its_pieces(tmp_path):
    entries = {"a": (torch.int8, (2, 3)), "b": (torch.float32, (4,))}
    with pytest.raises(ValueError, match="expected a torch.int8 piece of 'a'"):
        with SafetensorsWriter(tmp_path / "x.safetensors", entries) as out:
            out.write("b", torch.zeros(4))
    with pytest.raises(ValueError, match="'b' and the tensors after it were never written"):
        with SafetensorsWriter(tmp_path / "x.safetensors", entries) as out:
            out.write("a", torch.zeros(2, 3, dtype=torch.int8))
    assert list(tmp_path.iterdir()) == []                  # no partial file is left behind


def _edit_params(folder, **section):
    params = json.loads((folder / "params.json").read_text())
    params["quantization"] = section
    (folder / "params.json").write_text(json.dumps(params))


@pytest.fixture
def int4_folder(float_folder, tmp_path):
    return quantize_folder(float_folder, tmp_path / "q4", bits=4, group_size=32)


@pytest.mark.parametrize("section, message", [
    ({"bits": 8, "vision": False}, r"has shape \(64, 32\), the config implies \(64, 64\)"),
    ({"bits": 3, "vision": False}, "bits must be 8 or 4"),
    ({"bits": 4, "vision": False}, "int4 needs a positive even group_size"),
    ({"bits": 4, "group_size": 32, "vision": False, "zero_points": True}, "must hold only"),
    ({"bits": 4, "group_size": 32, "vision": True}, "missing"),
])
def test_a_mismatched_quantized_folder_is_a_clear_error(int4_folder, section, message):
    _edit_params(int4_folder, **section)
    with pytest.raises(ValueError, match=message):
        mp.Pixtral.from_folder(int4_folder, device="cpu")


def test_a_truncated_quantized_file_is_a_clear_error(int4_folder):
    path = int4_folder / "consolidated.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated"):
        mp.Pixtral.from_folder(int4_folder, device="cpu")


def test_quantize_folder_refuses_bad_sources_and_targets(float_folder, int4_folder, tmp_path):
    with pytest.raises(ValueError, match="quantized already"):
        quantize_folder(int4_folder, tmp_path / "again", bits=8)
    with pytest.raises(FileExistsError, match="not empty"):
        quantize_folder(float_folder, int4_folder, bits=8)
    with pytest.raises(ValueError, match="must not be the input"):
        quantize_folder(float_folder, float_folder, bits=8)
    with pytest.raises(FileNotFoundError):
        quantize_folder(tmp_path / "nothing", tmp_path / "out", bits=8)
    with pytest.raises(ValueError, match="not quantized"):
        load_quantized_folder(mp.Pixtral, float_folder)
    assert not (tmp_path / "again").exists() and not (tmp_path / "out").exists()


# ---------------------------------------------------------------- the command line
def test_cli_quantize_then_describe(float_folder, tmp_path, capsys):
    from minipixtral.__main__ import main

    assert main(["quantize", str(float_folder), str(tmp_path / "q8"), "--bits", "8"]) == 0
    said = capsys.readouterr().out
    assert "int8 checkpoint in" in said and "peak memory" in said
    assert main(["describe", "--model", str(tmp_path / "q8"), "--max-new-tokens", "3",
                 "--device", "cpu"]) == 0
    assert main(["quantize", str(float_folder), str(tmp_path / "x"), "--bits", "8",
                 "--group-size", "32"]) == 2
    assert "--group-size is for --bits 4" in capsys.readouterr().err
    assert main(["quantize", str(float_folder), str(tmp_path / "q8"), "--bits", "4"]) == 2
    assert "not empty" in capsys.readouterr().err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_quantizing_memory_does_not_grow_with_the_model(tmp_path):
    """Two bfloat16 checkpoints, 1 and 9 blocks (the 9-block file is 0.12 GB larger), each
    quantized in a fresh process: the memory quantize_folder adds is the same, because tensors
    are read from the memory map one at a time and dropped once written. Quantizing in memory
    would need the whole model (the difference, at least) on top. The growth is measured from
    the call on (the peak is reset there through /proc/self/clear_refs): the imports' memory
    varies from one process to the next and must not count."""
    growths, sizes = {}, {}
    for blocks in (1, 9):
        config = dataclasses.replace(tiny_config(), dim=256, hidden_dim=8192, n_layers=blocks,
                                     head_dim=32, n_heads=8, n_kv_heads=4)
        folder = write_random_checkpoint(tmp_path / f"f{blocks}", config, dtype=torch.bfloat16)
        sizes[blocks] = (folder / "consolidated.safetensors").stat().st_size
        growths[blocks] = _growth(textwrap.dedent(f"""
            import minipixtral.quantize as q
            START
            q.quantize_folder({str(folder)!r}, {str(tmp_path / f'q{blocks}')!r}, bits=4)"""))
        assert (tmp_path / f"q{blocks}" / "consolidated.safetensors").is_file()
    grown = sizes[9] - sizes[1]
    assert grown > 1e8
    assert growths[9] - growths[1] < 0.5 * grown, (growths, sizes)


def _growth(script: str) -> int:
    """Run script in a fresh Python; return how far its resident memory rose above the
    resident size at the line START (bytes): the peak (VmHWM) is reset there. glibc's malloc
    gets a fixed threshold for memory-mapped blocks: with its adaptive one, freed blocks of a
    few MB stay in the heap or not from run to run (±80 MB seen), and the peak with them."""
    status = "int(open('/proc/self/status').read().split({!r})[1].split()[0]) * 1024"
    start = ("open('/proc/self/clear_refs', 'w').write('5')\n"
             f"before = {status.format('VmRSS:')}")
    tail = f"\nprint({status.format('VmHWM:')} - before)"
    out = subprocess.run([sys.executable, "-c", script.replace("START", start) + tail],
                         check=True, capture_output=True, text=True,
                         env={**os.environ, "TQDM_DISABLE": "1",
                              "MALLOC_MMAP_THRESHOLD_": str(2**17)}).stdout
    return int(out.split()[-1])


def test_a_file_larger_than_the_memory_is_quantized_through_a_read_only_map(float_folder, tmp_path,
                                                                         monkeypatch, capsys):
    """As on a machine whose memory is smaller than the file (Pixtral-12B's 25.4 GB on 24 GB
    without swap): the operating system refuses a copy-on-write mapping (ENOMEM) but not a
    read-only one. Loading says so clearly; quantizing works."""
    import mmap

    from minipixtral.__main__ import main

    real = mmap.mmap

    def like_a_small_machine(fileno, length, *, access=mmap.ACCESS_WRITE, **kwargs):
        if access != mmap.ACCESS_READ:
            raise OSError(12, "Cannot allocate memory")
        return real(fileno, length, access=access, **kwargs)

    monkeypatch.setattr(mmap, "mmap", like_a_small_machine)
    with pytest.raises(MemoryError, match="does not fit in this machine's memory: quantize it"):
        mp.Pixtral.from_folder(float_folder, device="cpu")
    assert main(["describe", "--model", str(float_folder), "--device", "cpu"]) == 2
    assert "does not fit in this machine's memory" in capsys.readouterr().err
    assert quantize_folder(float_folder, tmp_path / "q", bits=8).is_dir()
