"""Peak memory of a long prefill: linear in the prompt (lessons 06 and 07).

A Pixtral of tiny widths (minipixtral.reference.tiny_config(): decoder 64 wide, 2 blocks, the
real 131 072-token vocabulary) prefills a text prompt of T random tokens into a KV cache, each
length in a fresh process, and reports how much the peak resident memory (VmHWM) grew during
the prefill, and its time. Three ways:

- **square mask**: the causal mask built as a [T, T] tensor and handed to attention (what
  the decoder did before it asked SDPA for its causal mode); only up to --square-max tokens;
- **one pass**: `model(ids, cache=cache, last_only=True)`: SDPA's causal mode, no mask;
- **chunks**: `model(..., chunk=--chunk)`: [chunk, S] masks against the cache.

What the memory must hold for itself: the KV cache (T × 2 layers × 2 × 2 heads × 16 × 4 bytes
= 512 bytes a token) and the activations of one pass.

    python benchmarks/long_context.py                 # 16k … 128k: about 8 minutes on 2 cores
    python benchmarks/long_context.py --lengths 4096 8192 --square-max 8192   # a quick look
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import torch

import minipixtral as mp
from minipixtral.reference import tiny_config

LENGTHS = [16_384, 32_768, 65_536, 128_000]   # 128 000: the whole context


def _peak_kb() -> int:
    """This process's peak resident memory so far (VmHWM), in kB."""
    with open("/proc/self/status") as status:
        return int(status.read().split("VmHWM:")[1].split()[0])


def prefill(length: int, way: str, chunk: int) -> dict:
    """One prefill of `length` tokens, the `way` given; run in a fresh process by main."""
    model = mp.Pixtral(tiny_config()).eval()
    ids = torch.randint(1000, 100_000, (length,), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        model(ids[:64], last_only=True)                    # warm-up: kernels, allocator
        cache = mp.new_cache(model, length)
        before, start = _peak_kb(), time.perf_counter()
        if way == "square mask":
            h = model.run_layers(model.tok_embeddings(ids), torch.arange(length),
                                 mp.causal_mask(length, length), cache)
            model.output(model.norm(h[-1:]))
        else:
            model(ids, cache=cache, last_only=True, chunk=chunk if way == "chunks" else None)
        seconds = time.perf_counter() - start
    return {"tokens": length, "way": way, "growth_gb": (_peak_kb() - before) / 1e6,
            "seconds": seconds, "cache_gb": sum(c.k.nbytes + c.v.nbytes for c in cache) / 1e9}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=LENGTHS)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--square-max", type=int, default=32_768,
                        help="the longest prompt tried with a [T, T] mask")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--one", nargs=2, metavar=("LENGTH", "WAY"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.one:                                          # the child process
        print(json.dumps(prefill(int(args.one[0]), args.one[1], args.chunk)))
        return 0
    print(f"prefill of T tokens, tiny widths, float32, {args.threads} thread(s), "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}")
    print("| tokens | way | peak memory growth, GB | of which KV cache, GB | seconds |")
    print("|---:|---|---:|---:|---:|")
    rows = []
    for length in args.lengths:
        for way in ("square mask", "one pass", "chunks"):
            if way == "square mask" and length > args.square_max:
                continue
            child = subprocess.run(
                [sys.executable, __file__, "--one", str(length), way, "--chunk", str(args.chunk),
                 "--threads", str(args.threads)], capture_output=True, text=True,
                env=dict(os.environ, TQDM_DISABLE="1"))
            if child.returncode:
                print(child.stderr[-2000:], file=sys.stderr)
                return 1
            row = json.loads(child.stdout.splitlines()[-1])
            rows.append(row)
            name = f"chunks of {args.chunk}" if way == "chunks" else way
            print(f"| {length:,} | {name} | {row['growth_gb']:.2f} | {row['cache_gb']:.3f} | "
                  f"{row['seconds']:.1f} |", flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
