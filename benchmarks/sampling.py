"""How long one top-p draw takes over Pixtral's 131 072-token vocabulary (lesson 07).

Two ways to draw the next token from softmax(logits) restricted to the nucleus at top_p:

- **sort**: the definition, as lesson 07 first wrote it: sort the vocabulary, zero the tokens
  whose mass ranked above reaches top_p, scatter back, `torch.multinomial`;
- **minipixtral**: `minipixtral.sample_next` (lesson 07): `nucleus_bounds` (the likely tokens,
  else a histogram of the float bits) brackets the nucleus's floor; `draw_index` (one uniform
  number, the inverse of the cumulative sum) draws among the tokens above the lower bound; the
  draw is kept when its token is in the nucleus (`nucleus_floor` decides in the crossing bin),
  else drawn again from the nucleus.

Three kinds of logits, as a decode step meets them: flat (a random model: the nucleus holds
most of the vocabulary), spread (thousands of tokens in the nucleus) and peaked (a trained
model: a handful). Each cell is the median over --repeats rounds of the mean time of --draws
draws; the two ways run in turn in each round, so a change of load affects them alike. Both
are checked to keep the same tokens (the nucleus of the sort equals the tokens ≥ the floor).

    python benchmarks/sampling.py                     # CPU, one thread: about 30 seconds
    python benchmarks/sampling.py --threads 2 --top-p 0.95
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

import minipixtral as mp

VOCAB = 131_072
SPREADS = {"flat": 1.0, "spread": 3.0, "peaked": 12.0}   # logits = spread × N(0, 1)


def sort_draw(logits: torch.Tensor, top_p: float, generator: torch.Generator) -> int:
    """The definition: a full sort of the vocabulary, then torch.multinomial."""
    probs = torch.softmax(logits, dim=-1)
    sorted_probs, order = probs.sort(descending=True)
    sorted_probs[sorted_probs.cumsum(0) - sorted_probs >= top_p] = 0
    return int(torch.multinomial(torch.zeros_like(probs).scatter_(0, order, sorted_probs), 1,
                                 generator=generator))


def mean_ms(draw, logits: torch.Tensor, top_p: float, draws: int) -> float:
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(draws):
        draw(logits, top_p, generator)
    return (time.perf_counter() - start) / draws * 1e3


def measure(top_p: float = 0.9, draws: int = 20, repeats: int = 5) -> list[dict]:
    """One row per kind of logits: ms per draw of both ways, the ratio, the nucleus size."""
    ours = lambda logits, p, g: mp.sample_next(logits, 1.0, p, g)
    rows = []
    for name, spread in SPREADS.items():
        logits = torch.randn(VOCAB, generator=torch.Generator().manual_seed(1)) * spread
        probs = torch.softmax(logits, dim=-1)
        sorted_probs, order = probs.sort(descending=True)
        kept = torch.zeros(VOCAB, dtype=torch.bool).scatter_(
            0, order, sorted_probs.cumsum(0) - sorted_probs < top_p)
        same = torch.equal(kept, probs >= mp.nucleus_floor(probs, top_p))
        for draw in (sort_draw, ours):                                # warm-up
            draw(logits, top_p, torch.Generator().manual_seed(0))
        times = {"sort": [], "minipixtral": []}
        for _ in range(repeats):
            times["sort"].append(mean_ms(sort_draw, logits, top_p, draws))
            times["minipixtral"].append(mean_ms(ours, logits, top_p, draws))
        sort_ms, our_ms = (statistics.median(times[k]) for k in ("sort", "minipixtral"))
        rows.append({"logits": name, "nucleus": int(kept.sum()), "same_tokens": same,
                     "sort_ms": sort_ms, "minipixtral_ms": our_ms, "speedup": sort_ms / our_ms})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--draws", type=int, default=20, help="draws per timing")
    parser.add_argument("--repeats", type=int, default=5, help="rounds; the median is kept")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"top-p draw over {VOCAB:,} tokens, top_p {args.top_p}, {args.threads} thread(s), "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}")
    print("| logits | tokens in the nucleus | same tokens | sort, ms | minipixtral, ms | speed-up |")
    print("|---|---:|---|---:|---:|---:|")
    for row in measure(args.top_p, args.draws, args.repeats):
        print(f"| {row['logits']} | {row['nucleus']:,} | {row['same_tokens']} | "
              f"{row['sort_ms']:.2f} | {row['minipixtral_ms']:.2f} | {row['speedup']:.1f} × |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
