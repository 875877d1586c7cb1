"""benchmarks/run.py --quick: one real run (a tiny model, one thread, a subprocess) whose table
must have every row with finite positive numbers, ratios that match the numbers, and greedy
tokens that agree between minipixtral and transformers and with / without the cache."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import minipixtral as mp

ROOT = Path(__file__).resolve().parent.parent
# (start of the row's label, whether transformers has a number, lower is better)
ROWS = [("load time (s)", True, True),
        ("load peak RSS / checkpoint size", True, True),
        ("vision encoder (patches/s)", True, False),
        ("prefill, ", True, False),
        ("decode, 8 new tokens (tokens/s)", True, False),
        ("decode, compile=True (tokens/s)", True, False),
        ("decode bound: ", False, False),
        ("decode eager / bound (%)", False, False),
        ("decode compile=True / bound (%)", False, False),
        ("generation with cache, 64-token prompt, 4 new (tokens/s)", False, False),
        ("generation without cache, same (tokens/s)", False, False),
        ("cache speed-up (×)", False, False)]


def run(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, TQDM_DISABLE="1")
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _benchmark(name: str):
    """benchmarks/<name>.py imported as a module, in this process: its folder on sys.path while
    it imports its siblings, and the TQDM_DISABLE it sets for itself taken back (the worker's
    later subprocesses and notebook kernels must not inherit it)."""
    import importlib
    before = os.environ.get("TQDM_DISABLE")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
        if before is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = before


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "quick.json"
    result = run("--quick", "--compile", "--threads", "1", "--device", "cpu", "--json", str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, json.loads(path.read_text())


def number(cell: str) -> float | None:
    cell = cell.strip().rstrip("×").replace(",", "")
    return float(cell) if cell else None


def table_rows(stdout: str) -> dict[str, list[float | None]]:
    lines = [line for line in stdout.splitlines() if line.startswith("| ")]
    assert lines[0] == "| measurement | minipixtral | transformers | minipixtral / transformers |"
    return {cells[0].strip(): [number(c) for c in cells[1:]]
            for cells in (line.strip("|").split("|") for line in lines[1:])}


def test_every_row_has_finite_positive_numbers(quick):
    stdout, data = quick
    rows = table_rows(stdout)
    assert len(rows) == len(ROWS), list(rows)
    for (start, both, lower_is_better), (label, (ours, theirs, ratio)) in zip(ROWS, rows.items()):
        assert label.startswith(start), (label, start)
        assert ours is not None and math.isfinite(ours) and ours > 0, label
        if not both:
            assert theirs is None and ratio is None, label
            continue
        assert theirs is not None and math.isfinite(theirs) and theirs > 0, label
    assert [r["name"] for r in data["rows"]] == list(rows)
    for (start, both, lower_is_better), r, (ours, theirs, ratio) in zip(ROWS, data["rows"],
                                                                         rows.values()):
        assert r["minipixtral"] == pytest.approx(ours, rel=0.01, abs=1e-3)
        if both:  # the ratio from the unrounded numbers (the table shows 3 significant digits)
            a, b = r["minipixtral"], r["transformers"]
            assert r["ratio"] == pytest.approx(b / a if lower_is_better else a / b, rel=1e-6)
            assert f"{r['ratio']:.2f}" == f"{ratio:.2f}"


def test_cache_is_faster_and_counts_are_right(quick):
    stdout, data = quick
    rows = {r["name"]: r["minipixtral"] for r in data["rows"]}
    with_cache = rows["generation with cache, 64-token prompt, 4 new (tokens/s)"]
    without = rows["generation without cache, same (tokens/s)"]
    assert rows["cache speed-up (×)"] == pytest.approx(with_cache / without, rel=1e-6)
    bound = rows["decode bound: one token through every weight matrix (tokens/s)"]
    for label in ("eager", "compile=True"):
        decode = rows["decode, 8 new tokens (tokens/s)" if label == "eager" else
                      "decode, compile=True (tokens/s)"]
        assert rows[f"decode {label} / bound (%)"] == pytest.approx(100 * decode / bound)
    prompt = re.search(r"prefill, (\d+)-token prompt with an image", stdout)
    assert prompt and int(prompt.group(1)) > 16            # the image's tokens are counted


def test_tokens_agree(quick):
    stdout, data = quick
    assert "greedy tokens, minipixtral vs transformers: identical (8 tokens)" in stdout
    assert "tokens with vs without the cache: identical (4 tokens)" in stdout
    assert data["checks"]["greedy_tokens"] == "identical (8 tokens)"
    assert data["checks"]["cache_tokens"] == "identical (4 tokens)"
    assert "tokens compiled vs eager: identical (8 tokens)" in stdout
    assert data["checks"]["compiled_tokens"] == "identical (8 tokens)"
    assert data["checks"]["vision_relative_difference"] < 1e-4


def test_header_names_the_machine(quick):
    stdout, data = quick
    header = stdout.splitlines()[0]
    info = data["machine"]
    assert header.startswith("**Machine:** ")
    for value in (info["cpu"], f"{info['cores']} cores", "1 torch threads", "GiB RAM",
                  f"torch {torch.__version__}", "transformers ", "device cpu", "float32",
                  "load average"):
        assert value in header, value
    assert info["threads"] == 1 and info["device"] == "cpu" and info["dtype"] == "float32"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_cuda_is_a_clear_error(capsys):
    """In-process: argparse's error, exit status 2."""
    with pytest.raises(SystemExit) as stop:
        _benchmark("run").main(["--quick", "--device", "cuda"])
    assert stop.value.code == 2
    assert "CUDA is not available" in capsys.readouterr().err


# benchmarks/full_size.py: a random checkpoint, quantized to int8 and int4, each format loaded
# and answering a prompt in its own process. --tiny keeps it to seconds of work (most of the
# time is the six processes' imports).
FULL_SIZE = ROOT / "benchmarks" / "full_size.py"
FULL_SIZE_NUMBERS = ["file_bytes", "load_s", "load_peak_rss", "peak_rss", "prefill_tok_s",
                     "first_step_s", "decode_tok_s", "bytes_per_token", "bound_tok_s",
                     "bound_share"]


def test_full_size_tiny_run(tmp_path):
    work, out = tmp_path / "work", tmp_path / "full_size.json"
    work.mkdir()
    result = subprocess.run([sys.executable, str(FULL_SIZE), "--tiny", "--layers", "1",
                             "--vision-layers", "1", "--dir", str(work), "--json", str(out)],
                            cwd=ROOT, env=dict(os.environ, TQDM_DISABLE="1"),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    rows = {row["format"]: row for row in data["rows"]}
    assert list(rows) == ["bf16", "int8", "int4"]
    for name, row in rows.items():
        assert isinstance(row["status"], str) and row["status"], name   # what happened
        if not row["status"].startswith("ok"):
            continue
        numbers = FULL_SIZE_NUMBERS + (["quantize_s", "quantize_peak_rss"]
                                       if name != "bf16" else [])
        for key in numbers:
            value = row[key]
            assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, \
                (name, key, value)
        assert row["prompt_tokens"] > 1024                 # the 512 × 512 image's tokens
        assert row["decode_steps"] == 15 and len(row["tokens"]) == 16
        assert row["peak_rss"] >= row["load_peak_rss"]
    assert all(row["status"] == "ok" for row in rows.values()), rows   # tiny: all fit
    sizes = {name: row["file_bytes"] for name, row in rows.items()}
    assert sizes["int4"] < sizes["int8"] < sizes["bf16"], sizes
    for name, size in sizes.items():       # the disk check's estimate, the header aside
        assert 0 < size - data["expected_file_bytes"][name] < 100_000, name
    assert rows["int4"]["bytes_per_token"] < rows["int8"]["bytes_per_token"] \
        < rows["bf16"]["bytes_per_token"]
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| format | file GB |") and len(table) == 1 + 3
    assert [line.split("|")[1].strip() for line in table[1:]] == ["bf16", "int8", "int4"]
    assert "Copy bandwidth" in result.stdout and "**Machine:**" in result.stdout
    assert list(work.iterdir()) == []                  # every file it wrote is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full_size.json", "work"]


def test_full_size_checks_the_disk_first(tmp_path, monkeypatch, capsys):
    import shutil
    full_size = _benchmark("full_size")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(
        10**12, 10**12 - 10**9, 10**9))                # 1 GB free
    assert full_size.main(["--dir", str(tmp_path / "work")]) == 2
    err = capsys.readouterr().err
    needed = re.search(r"this run needs ([\d.]+) GB", err)
    assert needed and 39 < float(needed.group(1)) < 42, err   # 25.4 + 13.x (int8) + margin
    assert "1.0 GB are free" in err and "--dir" in err
    assert list(tmp_path.iterdir()) == []               # nothing written, not even the folder


# benchmarks/sampling.py: imported (no subprocess); one draw per timing, one round.
def test_sampling_benchmark_rows_and_tokens():
    sampling = _benchmark("sampling")
    rows = sampling.measure(top_p=0.9, draws=1, repeats=1)
    assert [row["logits"] for row in rows] == list(sampling.SPREADS)
    for row in rows:
        assert row["same_tokens"] is True
        assert all(math.isfinite(row[k]) and row[k] > 0 for k in ("sort_ms", "minipixtral_ms"))
        assert row["speedup"] == pytest.approx(row["sort_ms"] / row["minipixtral_ms"])
    sizes = [row["nucleus"] for row in rows]
    assert sizes[0] > 10_000 > sizes[1] > 100 > sizes[2] >= 1   # flat, spread, peaked


# benchmarks/gpu_check.py: written for a GPU machine (none here); its arithmetic and its refusal
# are checked on the CPU, and `--device cpu --quick` is its dry run (not in the suite: a minute).
def test_gpu_check_counts_the_bytes_a_decode_step_reads():
    from minipixtral.reference import tiny_config
    gpu_check, config = _benchmark("gpu_check"), tiny_config()
    model = mp.Pixtral(config)
    decoder = sum(p.numel() for n, p in model.named_parameters()
                  if not n.startswith(("vision_encoder", "vision_language_adapter",
                                       "tok_embeddings")))
    assert gpu_check.decoder_bytes_per_token(config, 2) == 2 * (decoder + config.dim)
    bench = {"rows": [{"name": "decode, 8 new tokens (tokens/s)", "minipixtral": 100.0},
                      {"name": "decode bound: one token (tokens/s)", "minipixtral": 300.0},
                      {"name": "prefill (tokens/s)", "minipixtral": 9.0}]}
    (share,) = gpu_check.decode_shares(bench, bytes_per_token=10**6, bandwidth=10**9)
    assert share["bytes_per_s"] == 10**8 and share["share"] == pytest.approx(0.1)


def test_gpu_check_measures_a_copy_and_refuses_without_cuda(capsys):
    gpu_check = _benchmark("gpu_check")
    assert gpu_check.copy_bandwidth(torch.device("cpu"), size_bytes=2**20, repeats=2) > 0
    if torch.cuda.is_available():
        return
    with pytest.raises(SystemExit) as stop:     # in-process: argparse's error, exit status 2
        gpu_check.main([])
    assert stop.value.code == 2
    assert "no CUDA GPU is visible" in capsys.readouterr().err
