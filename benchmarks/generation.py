"""How fast minipixtral generates, against transformers and against itself without a cache
(lesson 07).

A Pixtral-shaped model with random weights (minipixtral.reference.benchmark_config(): decoder
512 wide, 8 blocks, 8 query heads and 2 key/value heads of 64, SwiGLU 1536, the real
131 072-token vocabulary; vision encoder 256 wide, 4 blocks), one 512×512 image (1056 image
tokens) and a short question. Two measurements:

1. **minipixtral vs transformers**, the same weights in the same process:
   `minipixtral.generate_ids(..., eos_id=None)` and transformers'
   `LlavaForConditionalGeneration.generate(do_sample=False, max_new_tokens=N, min_new_tokens=N)`
   (so that neither can stop early). Reported: the prefill (time to the first new token) and
   the decode speed (tokens per second after the first one), their ratios, and whether the
   tokens agree. For scale, a bound: one token through every weight matrix of the decoder and
   nothing else (a decode step reads them all; the 131 072 × 512 output head alone is 268 MB
   in float32).
2. **with vs without the cache** at a ~1000-token context (a text prompt), 16 new tokens:
   tokens/s of the whole generation (prefill included) and of the decode steps alone, and
   their ratios. With N new tokens the whole generation gains at most about N × (without the
   cache, each of the N tokens costs a prefill of the context; with it, one prefill and N − 1
   decode steps), so 16 new tokens bound it at 16 ×; the decode steps alone gain more.

Every number is the median of --repeats runs after a short warm-up run; the contenders run in
turn in each round, so that a change of load on the machine affects them alike. The bound runs
in the same rounds as a contender (as many tokens as the decodes).

    python benchmarks/generation.py                 # CPU, float32: about 5 minutes on 2 cores
    python benchmarks/generation.py --device cuda   # on a GPU (float32 too)
    python benchmarks/generation.py --new-tokens 32 --repeats 1   # a quick look

benchmarks/run.py uses these measurements (and loading.py's) for its one table.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import minipixtral as mp  # noqa: E402
from minipixtral.reference import (benchmark_config, hf_llava_model,  # noqa: E402
                                   hf_pixel_inputs, randomize)


def build_model(device: torch.device, seed: int = 0, config: mp.PixtralConfig | None = None,
                dtype: torch.dtype = torch.float32) -> mp.Pixtral:
    """A Pixtral of config (default: benchmark_config()) with seeded random weights,
    N(0, 0.02²) and the norm gains at 1 (minipixtral.reference.randomize), drawn in float32,
    then cast to dtype; eval mode."""
    model = randomize(mp.Pixtral(config or benchmark_config()), seed=seed, std=0.02,
                      gain_std=0.0)
    return model.to(device, dtype)


def transformers_twin(model: mp.Pixtral, attention: str = "sdpa"):
    """transformers' LlavaForConditionalGeneration with model's weights, on its device and in
    its dtype, with the given attention implementation."""
    weight = model.output.weight
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf_model = hf_llava_model(model.cpu()).to(weight.device, weight.dtype)
        model.to(weight.device)
        hf_model.set_attn_implementation(attention)
    return hf_model


def long_prompt(tokenizer: mp.Tokenizer, n_tokens: int) -> list[int]:
    """A text-only chat prompt of n_tokens ids (for the with/without cache comparison)."""
    words = tokenizer.encode(" the cat sat on the mat and looked at the picture"
                             * (n_tokens // 10 + 1))
    return [tokenizer.bos_id, tokenizer.inst_id] + words[:n_tokens - 3] + [tokenizer.inst_end_id]


def test_image():
    """512×512 pixels: matplotlib's sample photo, cropped; random noise if it is missing."""
    try:
        from matplotlib import cbook
        from PIL import Image
        with cbook.get_sample_data("grace_hopper.jpg") as file:
            photo = Image.open(file).convert("RGB")
        return photo.crop((0, 0, 512, 512))
    except Exception:  # an old or trimmed matplotlib: the content does not matter for timing
        return (np.random.default_rng(0).random((512, 512, 3)) * 255).astype(np.uint8)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ours(model, ids, images, new_tokens, use_cache, device, compile=False):
    """(seconds to the first new token, seconds for the remaining ones, the tokens);
    compile: generate_ids(..., compile=True), the decode steps through torch.compile."""
    synchronize(device)
    start = time.perf_counter()
    stamps, tokens = [], []
    for token in mp.generate_ids(model, ids, images, max_new_tokens=new_tokens, eos_id=None,
                                 use_cache=use_cache, compile=compile):
        synchronize(device)
        stamps.append(time.perf_counter())
        tokens.append(token)
    return stamps[0] - start, stamps[-1] - stamps[0], tokens


def time_transformers(hf_model, ids, images, new_tokens, device):
    """The same measurement for transformers' generate, timed by a streamer: generate hands it
    the prompt first, then each new token as soon as it is chosen."""
    from transformers.generation.streamers import BaseStreamer

    class Clock(BaseStreamer):
        def __init__(self):
            self.stamps, self.values = [], []

        def put(self, value):
            synchronize(device)
            self.stamps.append(time.perf_counter())
            self.values.append(value)

        def end(self):
            pass

    inputs = {"input_ids": torch.tensor([ids], device=device)}
    if images:
        pixels, sizes = hf_pixel_inputs(images)
        inputs["pixel_values"] = pixels.to(device, hf_model.dtype)
        inputs["image_sizes"] = sizes.to(device)
    clock = Clock()
    synchronize(device)
    start = time.perf_counter()
    with torch.inference_mode():
        hf_model.generate(**inputs, do_sample=False, max_new_tokens=new_tokens,
                          min_new_tokens=new_tokens, streamer=clock)
    stamps = clock.stamps[1:]                           # stamps[0]: the prompt, before prefill
    tokens = [int(v.flatten()[0]) for v in clock.values[1:]]
    return stamps[0] - start, stamps[-1] - stamps[0], tokens


def interleaved_medians(runs: dict, repeats: int, warm_ups: dict) -> dict:
    """Warm each contender up (a short run), then run them in turn, `repeats` rounds, so that
    a change of load on the machine hits all of them alike. For each: the medians of
    (first-token time, decode time) and the tokens of its last run."""
    for warm_up in warm_ups.values():
        warm_up()
    results = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            results[name].append(run())
    return {name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs),
                   rs[-1][2]) for name, rs in results.items()}


def time_bound(model, device, new_tokens: int) -> tuple[float, float, list[int]]:
    """The decode bound, timed like a contender: new_tokens − 1 tokens, one at a time, through
    every weight matrix of the decoder (the linear layers and the output head) and nothing
    else (eager `Linear` calls), a floor for new_tokens − 1 eager decode steps (a compiled step
    with packed weights can beat it). Returns (0, their seconds, no tokens), time_ours' shape,
    so that interleaved_medians runs it in the same rounds as the decodes it bounds: the same
    statistic under the same load."""
    linears = [m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)
               and not name.startswith(mp.Pixtral.VISION_SIDE)]
    inputs = [torch.randn(1, m.in_features, device=device, dtype=m.weight.dtype)
              for m in linears]
    with torch.inference_mode():
        synchronize(device)
        start = time.perf_counter()
        for _ in range(new_tokens - 1):
            for m, x in zip(linears, inputs):
                m(x)
        synchronize(device)
    return 0.0, time.perf_counter() - start, []


def cache_comparison(model, ids, new_tokens, repeats, device) -> dict:
    """{True: with the cache, False: without} → (first-token s, decode s, tokens), medians
    of interleaved runs of minipixtral's generation of new_tokens tokens after ids."""
    def runs(n):
        return {use_cache: (lambda use_cache=use_cache: time_ours(
            model, ids, [], n, use_cache, device)) for use_cache in [True, False]}
    with torch.inference_mode():
        return interleaved_medians(runs(new_tokens), repeats, runs(2))


def agreement(a: list[int], b: list[int]) -> str:
    if a == b:
        return f"identical ({len(a)} tokens)"
    k = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y) if any(
        x != y for x, y in zip(a, b)) else min(len(a), len(b))
    return f"equal for the first {k} of {len(a)} tokens"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu",
                        help="cpu (default), cuda, mps; 'auto' picks one")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--context", type=int, default=1000,
                        help="prompt length for the with/without cache comparison")
    parser.add_argument("--context-new-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (CPU)")
    parser.add_argument("--hf-attention", default="sdpa", choices=["sdpa", "eager"],
                        help="transformers' attention implementation (default: its fast one)")
    parser.add_argument("--skip-transformers", action="store_true")
    parser.add_argument("--skip-no-cache", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = mp.pick_device(None if args.device == "auto" else args.device)

    model = build_model(device)
    tokenizer = mp.Tokenizer.from_file(mp.shipped_tokenizer_file())
    ids, images = tokenizer.encode_chat("Describe the image in detail.", images=[test_image()])
    images = [image.to(device) for image in images]
    n_params = sum(p.numel() for p in model.parameters())
    print(f"device {device} ({platform.processor() or platform.machine()}), torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, float32")
    print(f"model: {n_params / 1e6:.0f} M parameters; prompt: {len(ids)} tokens with one "
          f"{tuple(images[0].shape[1:])} image; {args.new_tokens} new tokens; median of "
          f"{args.repeats} runs after a warm-up\n")

    runs = {"ours": lambda: time_ours(model, ids, images, args.new_tokens, True, device),
            "bound": lambda: time_bound(model, device, args.new_tokens)}
    warm_ups = {"ours": lambda: time_ours(model, ids, images, 4, True, device),
                "bound": lambda: time_bound(model, device, 4)}
    names = {"ours": "minipixtral"}
    if not args.skip_transformers:
        import transformers
        hf_model = transformers_twin(model, args.hf_attention)
        runs["hf"] = lambda: time_transformers(hf_model, ids, images, args.new_tokens, device)
        warm_ups["hf"] = lambda: time_transformers(hf_model, ids, images, 4, device)
        names["hf"] = f"transformers {transformers.__version__} ({args.hf_attention})"
    with torch.inference_mode():
        results = interleaved_medians(runs, args.repeats, warm_ups)
    bound = (args.new_tokens - 1) / results.pop("bound")[1]
    print(f"{'':34s} {'prefill (s)':>12s} {'decode tok/s':>13s}")
    for name, (first_s, decode_s, _) in results.items():
        print(f"{names[name]:34s} {first_s:12.3f} {(args.new_tokens - 1) / decode_s:13.1f}")
    print(f"{'bound: the weight matrices only':34s} {'':12s} {bound:13.1f}")
    if "hf" in results:
        (first, decode, ours_tokens), (first_hf, decode_hf, hf_tokens) = \
            results["ours"], results["hf"]
        ratio = decode_hf / decode
        print(f"{'ratio minipixtral / transformers':34s} {first_hf / first:11.2f}× "
              f"{ratio:12.2f}×   (prefill: their time / ours)")
        print(f"greedy tokens: {agreement(ours_tokens, hf_tokens)}\n")
        del hf_model

    if not args.skip_no_cache:
        long_ids = long_prompt(tokenizer, args.context)
        n = args.context_new_tokens
        results = cache_comparison(model, long_ids, n, args.repeats, device)
        print(f"context {len(long_ids)} tokens (text), {n} new tokens")
        print(f"{'':20s} {'total tok/s':>12s} {'decode tok/s':>13s}")
        for use_cache, (first, decode, _) in results.items():
            name = "with cache" if use_cache else "without cache"
            print(f"{name:20s} {n / (first + decode):12.2f} {(n - 1) / decode:13.2f}")
        (f1, d1, t1), (f0, d0, t0) = results[True], results[False]
        total_ratio, decode_ratio = (f0 + d0) / (f1 + d1), d0 / d1
        print(f"{'ratio':20s} {total_ratio:11.1f}× {decode_ratio:12.1f}×")
        print(f"tokens with and without the cache: {agreement(t1, t0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
