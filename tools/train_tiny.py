"""Train the tiny Pixtral of lesson 09 from scratch and write the checkpoint the package ships.

    python tools/train_tiny.py                   # the full run: writes minipixtral/data/tiny_pixtral/
    python tools/train_tiny.py --steps 300 --out /tmp/tiny --threads 1   # a quick try

The model is `minipixtral.reference.trained_config()` (Pixtral's structure and its 131 072-token
vocabulary, small widths), trained with `minipixtral.train` on fresh synthetic samples
(lesson 09), then evaluated by exact match on 200 held-out samples (seed 1234, greedy
decoding over the full vocabulary). The folder gets params.json and
consolidated.safetensors in bfloat16; the tokenizer is Pixtral-12B's own, inside
mistral_common (`minipixtral.shipped_tokenizer_file()`), so tekken.json is not kept.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bar when loading the result back

import torch

import minipixtral as mp
from minipixtral.reference import trained_config

ROOT = Path(__file__).resolve().parent.parent
HELD_OUT_SEED = 1234


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=mp.shipped_checkpoint())
    parser.add_argument("--held-out", type=int, default=200)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tokenizer = mp.Tokenizer.from_file(mp.shipped_tokenizer_file())
    model = mp.Pixtral(trained_config())
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters; {args.steps} steps of "
          f"{args.batch_size} samples on {args.threads} thread(s), {platform.processor() or 'cpu'}"
          f"; load average before: {os.getloadavg()[0]:.2f}", flush=True)

    start, loads = time.perf_counter(), []

    def report(step: int, loss: float) -> None:
        if (step + 1) % 250 == 0:
            loads.append(os.getloadavg()[0])
            print(f"step {step + 1:5d}  {time.perf_counter() - start:6.0f} s  loss {loss:.4f}"
                  f"  load {loads[-1]:.2f}", flush=True)

    losses = mp.train(model, tokenizer, args.steps, args.batch_size, args.lr, seed=args.seed,
                      callback=report)
    seconds = time.perf_counter() - start
    print(f"trained in {seconds:.0f} s ({seconds / 60:.1f} min), "
          f"mean load average during training {sum(loads) / max(len(loads), 1):.2f}", flush=True)

    folder = mp.save_folder(model, args.out, mp.shipped_tokenizer_file(), dtype=torch.bfloat16)
    (folder / "tekken.json").unlink()  # the package uses mistral_common's copy
    for path in folder.iterdir():
        path.chmod(0o644)  # readable by everyone once installed
    loaded = mp.Pixtral.from_folder(folder, device="cpu")
    samples = mp.make_samples(args.held_out, HELD_OUT_SEED)
    accuracy, answers = mp.exact_match(loaded, tokenizer, samples)
    by_kind: dict[str, list[bool]] = {}
    for sample, answer in zip(samples, answers):
        by_kind.setdefault(sample.kind, []).append(answer == sample.answer)
    size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
    print(f"exact match on {len(samples)} held-out samples: {accuracy:.1%} ("
          + ", ".join(f"{k} {sum(v) / len(v):.0%}" for k, v in by_kind.items())
          + f"); checkpoint {size:.1f} MB in {folder}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
