"""One command, one table: how fast minipixtral is on this machine, against transformers on the
same weights, in the same run.

    python benchmarks/run.py                  # CPU float32: minutes (~10 on 2 busy cores)
    python benchmarks/run.py --quick          # a tiny model, every row, in seconds (CI)
    python benchmarks/run.py --device cuda --compile   # a GPU: bfloat16, compiled decode step
    python benchmarks/run.py --json out.json  # the numbers as JSON too

The model is Pixtral-shaped with random weights (minipixtral.reference.benchmark_config():
decoder 512 wide, 8 blocks, the real 131 072-token vocabulary; vision encoder 256 wide,
4 blocks; 163 M parameters; --quick: tiny_config() with one vision block). transformers' twin
(LlavaForConditionalGeneration with PixtralVisionModel) gets exactly these weights
(minipixtral.reference.hf_llava_model). Rows:

- load time, load peak RSS / checkpoint: the checkpoint written by minipixtral.save_folder and
  by transformers' save_pretrained (same tensors, same dtype), loaded in a fresh process by
  `Pixtral.from_folder` and by `from_pretrained`, then one forward pass and every weight read
  once (benchmarks/loading.py). The file is in the page cache (it has just been written).
  The peak is the process's resident high-water mark minus that after the imports (host memory:
  on a GPU the weights live elsewhere).
- vision encoder: patches per second of minipixtral's VisionEncoder and transformers'
  PixtralVisionModel over the same two images (the prompt's and a smaller crop).
- prefill: prompt tokens (one image included) per second of time to the first new token;
  decode: new tokens per second after the first (benchmarks/generation.py's measurement).
  With --compile, a third contender in the same rounds: `generate_ids(..., compile=True)`
  (lesson 07: the decode step with fixed shapes, through torch.compile, one graph, the
  weights frozen into it); the first round compiles it (about a minute on a CPU, which needs
  a C++ compiler).
- decode bound: one token through every weight matrix of the decoder and nothing else, as
  many tokens as a decode, as a contender in the same rounds.
- with / without cache: minipixtral's whole generation (prefill included) over a text prompt.

Every time is the median of --repeats runs after a warm-up, the contenders in turn in each
round. The ratio column is minipixtral / transformers as a speed ratio: > 1 means minipixtral
is faster (or, for memory, smaller).

Run it as a script (python benchmarks/run.py): Python then puts this file's folder first on
sys.path, which is how it imports its siblings generation.py and loading.py.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

import minipixtral as mp  # noqa: E402
from minipixtral.reference import (benchmark_config, hf_pixel_inputs,  # noqa: E402
                                   relative_error, tiny_config)

try:  # benchmarks/ is sys.path[0] when this file runs as a script
    import generation  # noqa: E402
    import loading  # noqa: E402
except ModuleNotFoundError as err:
    if err.name not in ("generation", "loading"):
        raise
    raise SystemExit("benchmarks/run.py imports generation.py and loading.py from its own "
                     "folder: run it as a script (python benchmarks/run.py), without python -P "
                     "or PYTHONSAFEPATH") from err

# --quick: tiny_config() with a single vision block.
QUICK_CONFIG = dataclasses.replace(tiny_config(), vision_encoder=dataclasses.replace(
    tiny_config().vision_encoder, num_hidden_layers=1))
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}  # what from_folder takes


START = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - START:5.0f} s] {message}", file=sys.stderr, flush=True)


def _first_line(path: str, key: str) -> str | None:
    try:
        with open(path) as file:
            for line in file:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine(device: torch.device, dtype: torch.dtype) -> dict:
    """What the table was measured on."""
    import transformers
    memory = _first_line("/proc/meminfo", "MemTotal")
    if memory:
        ram = int(memory.split()[0]) * 1024
    else:
        try:
            ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            ram = 0
    info = dict(cpu=_first_line("/proc/cpuinfo", "model name")
                or platform.processor() or platform.machine(),
                cores=os.cpu_count(), threads=torch.get_num_threads(), ram_gb=ram / 2**30,
                os=platform.platform(terse=True), python=platform.python_version(),
                torch=torch.__version__, transformers=transformers.__version__,
                device=str(device), dtype=str(dtype).removeprefix("torch."))
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def time_vision(encode, images, device):
    """(seconds, 0, features) of one call of encode(images); the shape of a generation.py
    measurement, so that interleaved_medians takes it."""
    generation.synchronize(device)
    start = time.perf_counter()
    features = encode(images)
    generation.synchronize(device)
    return time.perf_counter() - start, 0.0, features


def measure_load(model, hf_model, root: Path, device: torch.device) -> dict:
    """Both checkpoints written, each loaded in a fresh process (loading.measure)."""
    dtype = model.output.weight.dtype
    ours = mp.weights.save_folder(model, root / "minipixtral", mp.shipped_tokenizer_file(),
                                  dtype=dtype)
    hf_model.save_pretrained(root / "transformers")
    files = {"ours": ours / "consolidated.safetensors",
             "hf": root / "transformers" / "model.safetensors"}
    results = {}
    keep = str(dtype).removeprefix("torch.")            # float32 or bfloat16, as written
    for name, folder, how in [("ours", ours, keep), ("hf", root / "transformers",
                                                     "transformers")]:
        m = loading.measure(folder, how, str(device))
        size = files[name].stat().st_size
        results[name] = dict(load_s=m["load_s"], peak_ratio=(m["peak"] - m["baseline"]) / size,
                             file_bytes=size, dtype=m["dtype"])
    return results


def fmt(x: float | None) -> str:
    if x is None:
        return ""
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}" if x >= 1 else f"{x:.3f}"


def table(rows: list[dict]) -> str:
    lines = ["| measurement | minipixtral | transformers | minipixtral / transformers |",
             "|---|---:|---:|---:|"]
    for row in rows:
        ratio = f"{row['ratio']:.2f}×" if row.get("ratio") is not None else ""
        lines.append(f"| {row['name']} | {fmt(row['minipixtral'])} | "
                     f"{fmt(row.get('transformers'))} | {ratio} |")
    return "\n".join(lines)


def row(name: str, ours: float, theirs: float | None = None, lower_is_better=False) -> dict:
    ratio = None
    if theirs is not None:
        ratio = theirs / ours if lower_is_better else ours / theirs
    return dict(name=name, minipixtral=ours, transformers=theirs, ratio=ratio)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--dtype", choices=sorted(DTYPES),
                        help="default: bfloat16 on cuda, float32 elsewhere")
    parser.add_argument("--compile", action="store_true",
                        help="also time generate(..., compile=True), the decode step compiled")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny model and short runs: every row in seconds (for CI)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (CPU)")
    parser.add_argument("--new-tokens", type=int, help="decode length (default 64; quick 8)")
    parser.add_argument("--repeats", type=int, help="runs per median (default 3; quick 1)")
    parser.add_argument("--context", type=int,
                        help="prompt tokens of the cache comparison (default 512; quick 64)")
    parser.add_argument("--context-new-tokens", type=int, default=None,
                        help="new tokens of the cache comparison (default 16; quick 4)")
    parser.add_argument("--hf-attention", default="sdpa", choices=["sdpa", "eager"],
                        help="transformers' attention implementation (default: its fast one)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    defaults = (dict(new_tokens=8, repeats=1, context=64, context_new_tokens=4) if args.quick
                else dict(new_tokens=64, repeats=3, context=512, context_new_tokens=16))
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = mp.pick_device(None if args.device == "auto" else args.device)
    except (RuntimeError, ValueError) as err:
        parser.error(str(err))
    dtype = DTYPES[args.dtype] if args.dtype else (
        torch.bfloat16 if device.type == "cuda" else torch.float32)
    load_before = load_average()
    started = time.perf_counter()

    config = QUICK_CONFIG if args.quick else benchmark_config()
    model = generation.build_model(device, config=config, dtype=dtype)
    hf_model = generation.transformers_twin(model, args.hf_attention)
    tokenizer = mp.Tokenizer.from_file(mp.shipped_tokenizer_file())
    photo = generation.test_image()
    if args.quick:
        photo = photo.crop((0, 0, 96, 64)) if hasattr(photo, "crop") else photo[:64, :96]
    ids, images = tokenizer.encode_chat("Describe the image in detail.", images=[photo])
    images = [image.to(device) for image in images]
    n_params = sum(p.numel() for p in model.parameters())
    rows, checks = [], {}

    log(f"{n_params / 1e6:.0f} M parameters, {device}, {dtype}: load")
    root = Path(tempfile.mkdtemp(prefix="minipixtral-bench-"))
    try:
        load = measure_load(model, hf_model, root, device)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows.append(row("load time (s)", load["ours"]["load_s"], load["hf"]["load_s"], True))
    rows.append(row("load peak RSS / checkpoint size", load["ours"]["peak_ratio"],
                    load["hf"]["peak_ratio"], True))

    log("vision encoder")
    p = config.vision_encoder.patch_size
    height, width = images[0].shape[1:]
    second = images[0][:, :max(p, height // 2 // p * p), :max(p, width * 3 // 4 // p * p)]
    vision_images = [images[0], second]
    pixels, sizes = hf_pixel_inputs(vision_images)
    pixels, sizes = pixels.to(device, dtype), sizes.to(device)
    n_patches = sum(i.shape[1] * i.shape[2] for i in vision_images) // p ** 2
    tower = hf_model.model.vision_tower

    def hf_encode(_):
        return tower(pixels, image_sizes=sizes).last_hidden_state[0]

    runs = {"ours": lambda: time_vision(model.vision_encoder, vision_images, device),
            "hf": lambda: time_vision(hf_encode, vision_images, device)}
    with torch.inference_mode():
        vision = generation.interleaved_medians(runs, args.repeats + 2, runs)
    rows.append(row("vision encoder (patches/s)", n_patches / vision["ours"][0],
                    n_patches / vision["hf"][0]))
    checks["vision_relative_difference"] = relative_error(vision["ours"][2].float(),
                                                          vision["hf"][2].float())

    log("prefill and decode")
    n = args.new_tokens
    runs = {"ours": lambda: generation.time_ours(model, ids, images, n, True, device),
            "hf": lambda: generation.time_transformers(hf_model, ids, images, n, device)}
    warm_ups = {"ours": lambda: generation.time_ours(model, ids, images, 4, True, device),
                "hf": lambda: generation.time_transformers(hf_model, ids, images, 4, device)}
    runs["bound"] = lambda: generation.time_bound(model, device, n)   # in the same rounds
    warm_ups["bound"] = lambda: generation.time_bound(model, device, 4)
    if args.compile:  # the warm-up compiles: a minute on a CPU
        log("decode with compile=True: compiling first")
        runs["compiled"] = lambda: generation.time_ours(model, ids, images, n, True, device,
                                                        compile=True)
        warm_ups["compiled"] = lambda: generation.time_ours(model, ids, images, 4, True, device,
                                                            compile=True)
    try:
        with torch.inference_mode():
            gen = generation.interleaved_medians(runs, args.repeats, warm_ups)
    except Exception as err:  # inductor needs a working compiler (and on CPU, a C++ one)
        if not args.compile:
            raise
        raise SystemExit(f"torch.compile failed on {device} ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}); run without "
                         f"--compile") from err
    rows.append(row(f"prefill, {len(ids)}-token prompt with an image (tokens/s)",
                    len(ids) / gen["ours"][0], len(ids) / gen["hf"][0]))
    rows.append(row(f"decode, {n} new tokens (tokens/s)", (n - 1) / gen["ours"][1],
                    (n - 1) / gen["hf"][1]))
    checks["greedy_tokens"] = generation.agreement(gen["ours"][2], gen["hf"][2])
    if args.compile:
        rows.append(row("decode, compile=True (tokens/s)", (n - 1) / gen["compiled"][1],
                        (n - 1) / gen["hf"][1]))
        checks["compiled_tokens"] = generation.agreement(gen["compiled"][2], gen["ours"][2])
    del hf_model, tower
    bound = (n - 1) / gen["bound"][1]
    rows.append(row("decode bound: one token through every weight matrix (tokens/s)", bound))
    for name in ("ours", "compiled") if args.compile else ("ours",):
        label = "compile=True" if name == "compiled" else "eager"
        rows.append(row(f"decode {label} / bound (%)", 100 * (n - 1) / gen[name][1] / bound))

    log("with and without the cache")
    m = args.context_new_tokens
    cache = generation.cache_comparison(model, generation.long_prompt(tokenizer, args.context),
                                        m, args.repeats, device)
    (f1, d1, t1), (f0, d0, t0) = cache[True], cache[False]
    rows.append(row(f"generation with cache, {args.context}-token prompt, {m} new (tokens/s)",
                    m / (f1 + d1)))
    rows.append(row("generation without cache, same (tokens/s)", m / (f0 + d0)))
    rows.append(row("cache speed-up (×)", (f0 + d0) / (f1 + d1)))
    checks["cache_tokens"] = generation.agreement(t1, t0)

    log("done")
    info = machine(device, dtype)
    info.update(load_average_before=load_before, load_average_after=load_average(),
                params_m=n_params / 1e6, seconds=time.perf_counter() - started)
    gpu = f", {info['gpu']}" if "gpu" in info else ""
    loads = "n/a" if load_before is None else (
        f"{info['load_average_before']:.2f} before, {info['load_average_after']:.2f} after "
        f"(1 min; this run's own threads count in the second)")
    print(f"**Machine:** {info['cpu']}, {info['cores']} cores, {info['threads']} torch threads, "
          f"{info['ram_gb']:.0f} GiB RAM, {info['os']}; torch {info['torch']}, transformers "
          f"{info['transformers']}; device {info['device']}{gpu}, {info['dtype']}; "
          f"load average {loads}.\n")
    if load_before is not None and load_before > 1:
        print(f"**Busy machine:** the load average was {load_before:.2f} before the run started: "
              f"other processes shared the CPU, so the times are slower and noisier than on an "
              f"idle machine.\n")
    print(f"**Model:** {info['params_m']:.0f} M parameters, random weights; median of "
          f"{args.repeats} runs; transformers' attention: {args.hf_attention}"
          f"{'; quick mode' if args.quick else ''}; {info['seconds']:.0f} s in all.\n")
    print(table(rows))
    print(f"\n- greedy tokens, minipixtral vs transformers: {checks['greedy_tokens']}")
    print(f"- tokens with vs without the cache: {checks['cache_tokens']}")
    if "compiled_tokens" in checks:
        print(f"- tokens compiled vs eager: {checks['compiled_tokens']}")
    print(f"- vision features, max relative difference: "
          f"{checks['vision_relative_difference']:.1e}")
    print(f"- checkpoints: {load['ours']['file_bytes'] / 1e6:.0f} MB (minipixtral), "
          f"{load['hf']['file_bytes'] / 1e6:.0f} MB (transformers), "
          f"{load['ours']['dtype'].removeprefix('torch.')}")
    if args.json:
        args.json.write_text(json.dumps(dict(machine=info, settings=vars(args) | dict(
            json=str(args.json)), rows=rows, checks=checks), indent=2, default=str) + "\n")
    bad = [r["name"] for r in rows for v in (r["minipixtral"], r["transformers"], r["ratio"])
           if v is not None and not (math.isfinite(v) and v > 0)]
    if bad:
        log(f"not a finite positive number: {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    warnings.filterwarnings("ignore", module="transformers")
    sys.exit(main())
