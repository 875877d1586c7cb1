"""How much memory and time loading a checkpoint takes (lesson 08).

Writes a Pixtral-shaped checkpoint with random weights (minipixtral.reference's
loading_config(): 396 M parameters, about 1.6 GB in float32) and the same weights in bfloat16
to a temporary folder, then, for each case, starts a fresh Python process that loads it, runs
one forward pass over a short prompt with an image, then reads every weight once, and reports
the load time and the peak resident memory (the process's high-water mark, minus what
the imports alone used), divided by the size of the file:

- `from_folder`, dtype kept (float32 file → float32, bfloat16 file → bfloat16): the parameters
  are the memory-mapped file itself. Goal: ≤ 1.25 × the file.
- `from_folder`, bfloat16 file → float32: a conversion, so a copy (expect about 3 ×: the file's
  pages, plus float32 parameters twice its size).
- for comparison, the usual way: `Pixtral(config)` (random weights) then
  `load_state_dict(safetensors.torch.load_file(...))`, which copies into the parameters.

    python benchmarks/loading.py            # about a minute; needs ~5 GB of free disk
    python benchmarks/loading.py --keep DIR # write the checkpoints to DIR and keep them

The times are with the file in the operating system's page cache (it has just been written);
from a cold disk, loading takes as long as reading the file. benchmarks/run.py uses `measure`
(also for transformers' from_pretrained) for the load rows of its table.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch

import minipixtral as mp
from minipixtral.reference import loading_config, write_random_checkpoint


CHILD = textwrap.dedent("""
    import json, os, resource, sys, time
    os.environ["TQDM_DISABLE"] = "1"
    import numpy as np, torch
    from PIL import Image
    import minipixtral as mp
    from safetensors.torch import load_file

    def peak_bytes():
        with open("/proc/self/status") as status:   # Linux: the high-water mark, VmHWM
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        scale = 1 if sys.platform == "darwin" else 1024   # ru_maxrss: bytes on macOS
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale

    folder, how, device = sys.argv[1:4]

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    tokenizer = mp.Tokenizer.from_file(mp.shipped_tokenizer_file())
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 96, 3), np.uint8))
    ids, images = tokenizer.encode_chat("Describe the image.", images=[image])
    if how == "transformers":             # imported before the baseline, like minipixtral
        from minipixtral.reference import hf_pixel_inputs
        from transformers import LlavaForConditionalGeneration
    import torch._dynamo  # torch imports it lazily the first time a model is built on the meta
    #                       device (~1.5 s); transformers' import includes it: an import for both
    torch.zeros(1) @ torch.zeros(1)       # warm up torch's allocator before the baseline
    baseline = peak_bytes()
    start = time.perf_counter()
    if how == "naive":
        model = mp.Pixtral(mp.weights.read_params(os.path.join(folder, "params.json")))
        model.load_state_dict(load_file(os.path.join(folder, "consolidated.safetensors")))
        model.eval()
    elif how == "transformers":           # a folder written by save_pretrained
        model = LlavaForConditionalGeneration.from_pretrained(folder, dtype="auto")
        model = model.to(device).eval()   # device_map would need accelerate
    else:
        dtype = {"keep": None, "float32": torch.float32, "bfloat16": torch.bfloat16}[how]
        model = mp.Pixtral.from_folder(folder, device=device, dtype=dtype)
    sync()
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    with torch.inference_mode():
        if how == "transformers":
            pixels, sizes = hf_pixel_inputs(images)
            logits = model(input_ids=torch.tensor([ids], device=device),
                           pixel_values=pixels.to(device, model.dtype),
                           image_sizes=sizes.to(device)).logits
        else:
            logits = model(torch.tensor(ids), images)
    assert torch.isfinite(logits).all()
    sync()
    forward = time.perf_counter() - start
    after_forward = peak_bytes()
    with torch.inference_mode():           # read every byte of every weight once
        total = sum(float(p.sum()) for p in model.parameters())
    assert total == total
    print(json.dumps(dict(load_s=loaded, forward_s=forward, baseline=baseline,
                          after_forward=after_forward, peak=peak_bytes(),
                          dtype=str(next(model.parameters()).dtype), tokens=len(ids))))
""")


def write_checkpoint(folder: Path, dtype: torch.dtype, seed: int = 0) -> Path:
    """loading_config()'s tensors, N(0, 0.02²) with the norm gains at 1, as params.json +
    consolidated.safetensors (in dtype) + tekken.json: minipixtral.reference's
    write_random_checkpoint."""
    return write_random_checkpoint(folder, loading_config(), seed=seed, dtype=dtype)


def measure(folder: Path, how: str, device: str = "cpu") -> dict:
    """Load the checkpoint in `folder` in a fresh process, run one forward pass, read every
    weight. how: keep / float32 / bfloat16 (from_folder with that dtype), naive
    (load_state_dict), transformers (a save_pretrained folder, with from_pretrained).
    Returns load_s, forward_s, dtype, tokens and the process's resident high-water marks in
    bytes: baseline (after the imports), after_forward, peak (after reading every weight)."""
    result = subprocess.run([sys.executable, "-c", CHILD, str(folder), how, device],
                            capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"the loading process failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="write the checkpoints here and keep them")
    args = parser.parse_args(argv)
    root = args.keep or Path(tempfile.mkdtemp(prefix="minipixtral-bench-"))
    try:
        start = time.perf_counter()
        f32 = write_checkpoint(root / "float32", torch.float32)
        bf16 = write_checkpoint(root / "bfloat16", torch.bfloat16)
        with torch.device("meta"):
            n_params = sum(p.numel() for p in mp.Pixtral(loading_config()).parameters())
        print(f"wrote {n_params / 1e6:.0f} M parameters as float32 and bfloat16 checkpoints "
              f"in {time.perf_counter() - start:.0f} s ({root})\n")
        cases = [("from_folder, float32 file, dtype kept", f32, "keep"),
                 ("from_folder, bfloat16 file, dtype kept", bf16, "bfloat16"),
                 ("from_folder, bfloat16 file → float32", bf16, "float32"),
                 ("Pixtral(config) + load_file, float32", f32, "naive")]
        header = (f"{'case':40s} {'file GB':>7s} {'load s':>6s} {'forward s':>9s} "
                  f"{'peak after forward':>18s} {'peak, all weights read':>22s}")
        print(header)
        print("-" * len(header))
        rows = []
        for label, folder, how in cases:
            size = (folder / "consolidated.safetensors").stat().st_size
            m = measure(folder, how)
            forward = m["after_forward"] - m["baseline"]
            used = m["peak"] - m["baseline"]
            rows.append((label, used / size))
            print(f"{label:40s} {size / 1e9:7.2f} {m['load_s']:6.2f} {m['forward_s']:9.2f} "
                  f"{forward / 1e9:7.2f} GB {forward / size:5.2f} × "
                  f"{used / 1e9:11.2f} GB {used / size:5.2f} ×")
        print(f"\npeak: the process's resident high-water mark minus that after the imports, "
              f"in GB and × the file size.\nforward: one pass over a {m['tokens']}-token "
              f"prompt with a 96×64 image; it reads only the embedding rows it needs, so pages\n"
              f"of the mapped file that nothing touched are never read. 'all weights read' "
              f"then sums every parameter once.")
        kept = max(ratio for label, ratio in rows if "kept" in label)
        verdict = "met" if kept <= 1.25 else "NOT met"
        print(f"goal ≤ 1.25 × the file with the dtype kept: {verdict} ({kept:.2f} ×)")
        return 0 if kept <= 1.25 else 1
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
