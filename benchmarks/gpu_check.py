"""The GPU check (issue 18): on a CUDA machine, every lesson notebook, the benchmark in bfloat16
with a compiled decode step, and decode as a share of the GPU's measured copy bandwidth.

    bash benchmarks/gpu_check.sh              # on the GPU machine (installs the wheels first)
    python benchmarks/gpu_check.py --device cpu --quick --lessons 00_overview   # a dry run

Steps, in this order (the numbers first, in case the machine's time runs out):
1. copy bandwidth: a 1 GiB device-to-device copy, bytes read + written per second (the
   median of 10 copies after 3 warm-ups);
2. benchmarks/run.py --device cuda --compile (bfloat16), in a subprocess, its table printed;
3. decode as a share of that bandwidth: each decode step reads every decoder weight once
   (bfloat16, the output head included, one embedding row), so weight bytes × tokens/s is
   the bandwidth decode uses;
4. every numbered lesson, run top to bottom by nbclient in a fresh kernel (the lessons that
   call `pick_device()` compute on the GPU; the ones that check against a CPU reference keep
   the CPU), each with the GPU memory it used. Outputs are not compared with the stored ones:
   a GPU's arithmetic differs in the last bits; an error in any cell fails the lesson.
Everything goes to --out as gpu_check.json too. Exit status 1 if a lesson or the benchmark
failed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402
from generation import synchronize  # noqa: E402  (benchmarks/ is sys.path[0] for a script)

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PROBE = ("import torch\n"
         "print('GPU memory peak (bytes):', torch.cuda.max_memory_allocated() "
         "if torch.cuda.is_available() else 0)")


def copy_bandwidth(device: torch.device, size_bytes: int = 2**30, repeats: int = 10) -> float:
    """Bytes read plus bytes written per second by `dst.copy_(src)` of size_bytes, on device
    (the median of `repeats` copies after three warm-ups)."""
    src = torch.ones(size_bytes // 2, dtype=torch.bfloat16, device=device)
    dst = torch.empty_like(src)
    times = []
    for k in range(repeats + 3):
        synchronize(device)
        start = time.perf_counter()
        dst.copy_(src)
        synchronize(device)
        if k >= 3:
            times.append(time.perf_counter() - start)
    return 2 * size_bytes / statistics.median(times)


def decoder_bytes_per_token(config, bytes_per_weight: int) -> int:
    """Bytes of weights one decode step reads: every decoder matrix and norm, the output
    head, and one row of the embedding (built on the meta device: nothing is allocated)."""
    import minipixtral as mp
    with torch.device("meta"):
        model = mp.Pixtral(config)
    skip = (*mp.Pixtral.VISION_SIDE, "tok_embeddings.")
    n = sum(p.numel() for name, p in model.named_parameters() if not name.startswith(skip))
    return (n + config.dim) * bytes_per_weight


def run_benchmark(device: str, quick: bool, compile_: bool, out: Path) -> dict:
    """benchmarks/run.py in a subprocess; its JSON (rows, checks, machine)."""
    target = out / "benchmark.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--device", device,
               "--json", str(target)] + ["--quick"] * quick + ["--compile"] * compile_
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)
    return json.loads(target.read_text())


def decode_shares(bench: dict, bytes_per_token: int, bandwidth: float) -> list[dict]:
    """For each decode row of the benchmark: tokens/s, weight bytes/s, share of bandwidth."""
    rows = []
    for row in bench["rows"]:
        if row["name"].startswith("decode") and "bound" not in row["name"]:
            rate = row["minipixtral"] * bytes_per_token
            rows.append(dict(name=row["name"], tokens_per_s=row["minipixtral"],
                             bytes_per_s=rate, share=rate / bandwidth))
    return rows


def run_lesson(path: Path, timeout: int) -> dict:
    """Run the lesson top to bottom in a fresh kernel; its time, error and GPU memory peak."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start, error = time.perf_counter(), None
    try:
        client.execute()
    except CellExecutionError as err:
        error = str(err).strip().splitlines()[-1][:300]
    except Exception as err:  # a dead kernel, a timeout: the lesson failed, go on
        error = f"{type(err).__name__}: {err}"[:300]
    peak = None
    if error is None:
        text = "".join(o.get("text", "") for o in notebook.cells[-1].outputs)
        peak = int(text.rsplit(":", 1)[1]) if ":" in text else None
    return dict(lesson=path.stem, seconds=time.perf_counter() - start, error=error,
                gpu_peak_bytes=peak)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                        help="cpu: a dry run of this script's steps on a machine without GPU")
    parser.add_argument("--quick", action="store_true", help="the benchmark's tiny model")
    parser.add_argument("--no-compile", action="store_true", help="leave --compile out")
    parser.add_argument("--lessons", nargs="*", help="lesson names or numbers (default: all; "
                        "--lessons alone: none)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds a cell may take")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "gpu_check")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA GPU is visible to torch: this check is for a GPU machine "
                     "(--device cpu for a dry run)")
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    lessons = LESSONS if args.lessons is None else [
        p for p in LESSONS if p.stem in args.lessons or p.stem[:2] in args.lessons]
    if args.lessons and len(lessons) != len(args.lessons):
        parser.error(f"unknown lesson in {args.lessons}: the lessons are "
                     f"{[p.stem for p in LESSONS]}")
    import transformers
    report = dict(device=torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                  torch=torch.__version__, transformers=transformers.__version__)
    print(f"{report['device']}, torch {report['torch']}, transformers "
          f"{report['transformers']}", flush=True)

    report["copy_bandwidth"] = bandwidth = copy_bandwidth(device)
    print(f"copy bandwidth: {bandwidth / 1e9:.0f} GB/s (read + written)", flush=True)

    from minipixtral.reference import benchmark_config, tiny_config
    config = tiny_config() if args.quick else benchmark_config()
    report["decode_bytes_per_token"] = per_token = decoder_bytes_per_token(  # bf16 on cuda
        config, 2 if device.type == "cuda" else 4)
    failed = []
    try:
        report["benchmark"] = bench = run_benchmark(args.device, args.quick,
                                                    not args.no_compile, args.out)
        report["decode"] = decode_shares(bench, per_token, bandwidth)
        for row in report["decode"]:
            print(f"{row['name']}: {row['tokens_per_s']:.0f} tokens/s × "
                  f"{per_token / 1e6:.0f} MB of weights = {row['bytes_per_s'] / 1e9:.1f} GB/s, "
                  f"{100 * row['share']:.1f} % of the copy bandwidth", flush=True)
    except subprocess.CalledProcessError as err:
        failed.append(f"benchmark (exit {err.returncode})")

    report["lessons"] = []
    for path in lessons:
        result = run_lesson(path, args.timeout)
        report["lessons"].append(result)
        peak = result["gpu_peak_bytes"]
        print(f"{result['lesson']:24s} {result['seconds']:6.0f} s  "
              + (f"GPU memory peak {peak / 2**20:.0f} MiB" if peak else "CPU only"
                 if result["error"] is None else f"FAILED: {result['error']}"), flush=True)
        if result["error"]:
            failed.append(result["lesson"])
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print("failed: " + ", ".join(failed) if failed else "every step ran", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
