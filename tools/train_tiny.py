"""Train the tiny Pixtral of lesson 09 from scratch and write the checkpoint the package ships.

    python tools/train_tiny.py                   # the full run: writes minipixtral/data/tiny_pixtral/
    python tools/train_tiny.py --steps 300 --out /tmp/tiny --threads 1   # a quick try

The model is `minipixtral.reference.trained_config()` (Pixtral's structure and its 131 072-token
vocabulary, small widths, patches of 8 pixels: the tokenizer follows), trained with
`minipixtral.train` on fresh synthetic samples (lesson 09) with the centre hint (a probe of the
patches, dropped after training), then evaluated by exact match (greedy decoding over the full
vocabulary), kind by kind, on three sets it never trained on:
200 samples of the training generator (seed 1234), 100 of each kind from
tools/independent_pictures.py (a second drawing routine, written apart from the first; seed
4321) and the hand-made gallery (tests/gallery/). The folder gets params.json and
consolidated.safetensors in bfloat16; the tokenizer is Pixtral-12B's own, inside
mistral_common (`minipixtral.shipped_tokenizer_file()`), so tekken.json is not kept
(`minipixtral.shipped_tokenizer()` gives it with the checkpoint's patch size).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bar when loading the result back

import torch

import minipixtral as mp
from independent_pictures import independent_samples
from make_gallery import gallery_samples
from minipixtral.reference import trained_config

ROOT = Path(__file__).resolve().parent.parent
HELD_OUT_SEED = 1234
INDEPENDENT_SEED = 4321


def accuracy_by_kind(model: mp.Pixtral, tokenizer: mp.Tokenizer, samples: list[mp.Sample]
                     ) -> tuple[dict[str, float], list[tuple]]:
    """({kind: exact match}, [(kind, expected, answer, picture size) of every wrong answer])."""
    _, answers = mp.exact_match(model, tokenizer, samples)
    by_kind: dict[str, list[bool]] = {}
    wrong = []
    for sample, answer in zip(samples, answers):
        by_kind.setdefault(sample.kind, []).append(answer == sample.answer)
        if answer != sample.answer:
            wrong.append((sample.kind, sample.answer, answer, sample.image.size))
    return {kind: sum(v) / len(v) for kind, v in by_kind.items()}, wrong


def per_kind(model: mp.Pixtral, tokenizer: mp.Tokenizer, samples: list[mp.Sample]) -> str:
    """Exact match over the samples, then per question kind, as one line."""
    accuracy, wrong = accuracy_by_kind(model, tokenizer, samples)
    overall = 1 - len(wrong) / len(samples)
    return (f"{overall:.1%} of {len(samples)} (" + ", ".join(
        f"{kind} {value:.1%}" for kind, value in accuracy.items()) + ")")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=7000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--centre-weight", type=float, default=mp.CENTRE_WEIGHT,
                        help="the centre hint's weight in the loss (0: none; lesson 09)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=mp.shipped_checkpoint())
    parser.add_argument("--held-out", type=int, default=200, help="samples, the kinds in turn")
    parser.add_argument("--independent", type=int, default=100, help="samples of each kind")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    config = trained_config()
    tokenizer = mp.tokenizer_for(mp.shipped_tokenizer_file(), config.vision_encoder)  # patch 8
    model = mp.Pixtral(config)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters; {args.steps} steps of "
          f"{args.batch_size} samples, centre weight {args.centre_weight:g}, on {args.threads} "
          f"thread(s), {platform.processor() or 'cpu'}; load average before: "
          f"{os.getloadavg()[0]:.2f}", flush=True)

    start, loads = time.perf_counter(), []

    def report(step: int, loss: float) -> None:
        if (step + 1) % 250 == 0:
            loads.append(os.getloadavg()[0])
            print(f"step {step + 1:5d}  {time.perf_counter() - start:6.0f} s  loss {loss:.4f}"
                  f"  load {loads[-1]:.2f}", flush=True)

    losses = mp.train(model, tokenizer, args.steps, args.batch_size, args.lr, seed=args.seed,
                      centre_weight=args.centre_weight, callback=report)
    seconds = time.perf_counter() - start
    print(f"trained in {seconds:.0f} s ({seconds / 60:.1f} min), "
          f"mean load average during training {sum(loads) / max(len(loads), 1):.2f}", flush=True)

    folder = mp.save_folder(model, args.out, mp.shipped_tokenizer_file(), dtype=torch.bfloat16)
    (folder / "tekken.json").unlink()  # the package uses mistral_common's copy
    for path in folder.iterdir():
        path.chmod(0o644)  # readable by everyone once installed
    loaded = mp.Pixtral.from_folder(folder, device="cpu")
    size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
    print(f"checkpoint {size:.1f} MB in {folder}", flush=True)
    for name, samples in [
            (f"held-out, the training generator (seed {HELD_OUT_SEED})",
             mp.make_samples(args.held_out, HELD_OUT_SEED)),
            (f"held-out, tools/independent_pictures.py (seed {INDEPENDENT_SEED})",
             independent_samples(args.independent, INDEPENDENT_SEED)),
            ("the gallery, tests/gallery/", gallery_samples())]:
        print(f"exact match on {name}: {per_kind(loaded, tokenizer, samples)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
