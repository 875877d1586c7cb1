"""Pixtral-12B at full size on a CPU machine: bfloat16, int8 and int4 (lesson 10).

Writes a checkpoint with random bfloat16 weights and Pixtral-12B-2409's exact params.json
(12.7 B parameters, 25.4 GB: the size of the real consolidated.safetensors), quantizes it to
int8 and int4 with `python -m minipixtral quantize`, then loads each format with
`Pixtral.from_folder(folder, device="cpu", dtype=torch.bfloat16)` in a fresh process and
answers one prompt with a 512 × 512 image (16 new tokens, greedy). Per format it reports:

- the file size; the quantize command's wall time and peak resident memory (RSS);
- the load time, the peak RSS after loading and over the whole run (the process's high-water
  mark, which counts the pages of the memory-mapped file it touched), its major page faults
  (pages read back from disk: thrashing shows here);
- prefill: prompt tokens (image included) per second; the first decode step's time (int4
  repacks its weights for torch's kernel then); decode: tokens per second over the others;
- decode as a share of the machine's memory-bandwidth bound: bandwidth ÷ bytes of weights one
  decode step reads (every decoder weight matrix with its scales, the output head, the norms,
  one row of the embedding table; not the vision encoder, which decoding does not use).

bfloat16 is measured too, last: 25.4 GB does not fit in a 24 GB machine's memory, and the
table says what happened (slow, re-reading the file from disk; killed; timed out) instead of
leaving the row out. Each measurement runs in its own process (the peak RSS is its VmHWM,
see run_measured), one after the other; every file is deleted at the end (unless --keep).

    python benchmarks/full_size.py             # the real thing: ~40 GB of free disk, an hour+
    python benchmarks/full_size.py --layers 1 --vision-layers 1   # 12B widths, 3.5 GB: minutes
    python benchmarks/full_size.py --tiny --layers 1 --vision-layers 1      # a test: seconds
    python benchmarks/full_size.py --dir /data --keep --json out.json

The files are in the page cache when they are loaded (they have just been written or read):
from a cold disk, loading and the first forward pass take as long as reading the file.
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import dataclasses
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

import minipixtral as mp  # noqa: E402
from minipixtral.layers import RMSNorm  # noqa: E402
from minipixtral.quantize import SafetensorsWriter, quantize_model  # noqa: E402
from minipixtral.reference import tiny_config  # noqa: E402
from minipixtral.weights import params_dict, read_params  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))  # imported by the tests, too
from run import _first_line  # noqa: E402  (benchmarks/run.py, this file's sibling)

# Pixtral-12B-2409's params.json as released (docs/PIXTRAL.md, section 1.1: the 9 decoder and
# 9 vision fields of the 453-byte file; json.dumps(..., indent=2) + "\n" is 453 bytes too).
REAL_PARAMS = {
    "dim": 5120, "n_layers": 40, "head_dim": 128, "hidden_dim": 14336, "n_heads": 32,
    "n_kv_heads": 8, "rope_theta": 1000000000.0, "norm_eps": 1e-05, "vocab_size": 131072,
    "vision_encoder": {"hidden_size": 1024, "num_channels": 3, "image_size": 1024,
                       "patch_size": 16, "rope_theta": 10000.0, "intermediate_size": 4096,
                       "num_hidden_layers": 24, "num_attention_heads": 16,
                       "image_token_id": 10}}
FORMATS = {"bf16": None, "int8": 8, "int4": 4}   # name → bits (None: the bfloat16 source)
STD = 0.02                                        # the random weights: N(0, STD²), norm gains 1
CHUNK = 1 << 24                                   # values drawn and written at a time
MARGIN = 1e9                                      # bytes of disk kept free beyond the files

CHILD = textwrap.dedent("""
    import json, os, sys, time
    os.environ["TQDM_DISABLE"] = "1"
    T0 = time.perf_counter()
    import numpy as np, torch
    import minipixtral as mp
    from minipixtral.generate import new_cache

    def status(key):
        with open("/proc/self/status") as file:       # Linux; elsewhere: None
            for line in file:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        return None

    def say(event, **fields):                          # a progress marker the parent reads
        print(json.dumps(dict(event=event, t=time.perf_counter() - T0,
                              hwm=status("VmHWM:"), **fields)), flush=True)

    def decode_bytes(model):
        # bytes of the weights one decode step reads: the decoder's modules (the int4 kernel's
        # own copy where the first step made one), one row of the embedding table
        total = 0
        for name, module in model.named_modules():
            if name.startswith(("vision_encoder", "vision_language_adapter")):
                continue
            tensors = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
            if name == "tok_embeddings":
                total += module.weight[0].numel() * module.weight.element_size()
                continue
            layout = getattr(module, "_int4_layout", None)
            if layout is not None:
                tensors = [*layout[1]] + ([module.bias] if module.bias is not None else [])
            total += sum(t.numel() * t.element_size() for t in tensors)
        return total

    folder, new_tokens, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    tokenizer = mp.Tokenizer.from_file(os.path.join(folder, "tekken.json"))
    image = np.random.default_rng(seed).integers(0, 256, (512, 512, 3), np.uint8)
    ids, images = tokenizer.encode_chat("Describe the image.", images=[image])
    torch.zeros(1) @ torch.zeros(1)
    say("imported", threads=torch.get_num_threads())
    start = time.perf_counter()
    model = mp.Pixtral.from_folder(folder, device="cpu", dtype=torch.bfloat16)
    say("loaded", load_s=time.perf_counter() - start)
    with torch.inference_mode():
        cache = new_cache(model, len(ids) + new_tokens)
        start = time.perf_counter()
        logits = model(torch.tensor(ids), images, cache=cache, last_only=True)[-1]
        token = int(logits.argmax())
        say("prefilled", prefill_s=time.perf_counter() - start, prompt_tokens=len(ids),
            finite=bool(torch.isfinite(logits).all()))
        tokens = [token]
        for step in range(1, new_tokens):
            start = time.perf_counter()
            logits = model(torch.tensor([token]), start=cache[0].length, cache=cache)[-1]
            token = int(logits.argmax())
            seconds = time.perf_counter() - start
            say("step", step=step, s=seconds,    # the first step made int4's kernel copies
                **({"bytes_per_token": decode_bytes(model)} if step == 1 else {}))
            tokens.append(token)
    say("done", tokens=tokens,
        finite=bool(torch.isfinite(logits).all()))
""")

# `python -m minipixtral ARGS`, run the way -m runs it (runpy), that prints its own peak RSS
# (VmHWM) last on stderr as it exits: see run_measured for why not os.wait4's.
MODULE = textwrap.dedent("""
    import atexit, runpy, sys

    def peak():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    print(f"\\nVmHWM {int(line.split()[1]) * 1024}", file=sys.stderr, flush=True)

    atexit.register(peak)
    sys.argv = ["minipixtral", *sys.argv[1:]]
    runpy.run_module("minipixtral", run_name="__main__", alter_sys=True)
""")

START = time.perf_counter()
_child: subprocess.Popen | None = None      # the measured process running now, if any


def log(message: str) -> None:
    print(f"[{time.perf_counter() - START:5.0f} s] {message}", file=sys.stderr, flush=True)


def gb(n: float | None) -> str:
    """Bytes as GB (10⁹), three significant digits."""
    return "" if n is None else f"{n / 1e9:.0f}" if n >= 1e11 else f"{n / 1e9:#.3g}"


# ---------------------------------------------------------------- the machine

def ram_bytes() -> int:
    memory = _first_line("/proc/meminfo", "MemTotal")
    if memory:
        return int(memory.split()[0]) * 1024
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def machine() -> dict:
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        load = None
    return dict(cpu=_first_line("/proc/cpuinfo", "model name")
                or platform.processor() or platform.machine(),
                cores=os.cpu_count(), threads=torch.get_num_threads(), ram_bytes=ram_bytes(),
                os=platform.platform(terse=True), python=platform.python_version(),
                torch=torch.__version__, load_average=load)


def copy_bandwidth(nbytes: int, repeats: int = 5) -> float:
    """Bytes per second of dst.copy_(src) over nbytes (uint8, both touched first), the best of
    `repeats`, counting each byte twice: read once and written once."""
    src = torch.ones(nbytes, dtype=torch.uint8)
    dst = torch.zeros_like(src)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    del src, dst
    return 2 * nbytes / best


# ---------------------------------------------------------------- the checkpoint

def configure(tiny: bool, layers: int | None, vision_layers: int | None
              ) -> tuple[mp.PixtralConfig, dict]:
    """(config, the params.json dict): Pixtral-12B-2409's file (tiny: tiny_config()'s),
    with n_layers and the vision encoder's num_hidden_layers replaced where given."""
    if tiny:
        params = params_dict(tiny_config())
    else:
        params = json.loads(json.dumps(REAL_PARAMS))
    if layers is not None:
        params["n_layers"] = layers
    if vision_layers is not None:
        params["vision_encoder"]["num_hidden_layers"] = vision_layers
    with tempfile.TemporaryDirectory() as scratch:   # read_params is the reference reader
        path = Path(scratch) / "params.json"
        path.write_text(json.dumps(params, indent=2) + "\n")
        config = read_params(path)
    return config, params


def meta_model(config: mp.PixtralConfig, bits: int | None = None, group_size: int = 128
               ) -> torch.nn.Module:
    """Pixtral(config) on the meta device (names and shapes, no memory), quantized as
    quantize_folder writes it when bits is given."""
    with torch.device("meta"):
        model = mp.Pixtral(config)
        return model if bits is None else quantize_model(model, bits=bits,
                                                         group_size=group_size)


def file_bytes(config: mp.PixtralConfig, bits: int | None, group_size: int) -> int:
    """The size of consolidated.safetensors as quantize_folder writes it (header aside):
    integer weights and float32 scales; every other tensor in bfloat16, as in the source."""
    state = meta_model(config, bits, group_size).state_dict()
    floats = set(meta_model(config).state_dict())
    return sum(t.numel() * (2 if name in floats and t.is_floating_point() else t.element_size())
               for name, t in state.items())


def _random_chunk(shape: tuple, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator).mul_(STD).to(torch.bfloat16)


def write_checkpoint(folder: Path, config: mp.PixtralConfig, params: dict,
                     seed: int = 0) -> Path:
    """params.json, tekken.json (Pixtral-12B's) and consolidated.safetensors: every tensor of
    Pixtral(config) in bfloat16, N(0, STD²), the RMSNorm gains 1, drawn and written CHUNK
    values at a time by two threads (each chunk has its own seed: the file does not depend on
    the threads), so memory stays at a few chunks."""
    folder.mkdir(parents=True)
    model = meta_model(config)
    gains = {f"{name}.weight" for name, module in model.named_modules()
             if isinstance(module, RMSNorm)}
    state = model.state_dict()
    entries = {name: (torch.bfloat16, tuple(t.shape)) for name, t in state.items()}
    jobs = []                                  # (name, shape of the chunk, seed or None)
    for name, t in state.items():
        shape = tuple(t.shape)
        if name in gains:
            jobs.append((name, shape, None))
            continue
        per_row = math.prod(shape[1:])
        step = max(1, CHUNK // max(per_row, 1))
        for first in range(0, shape[0], step):
            jobs.append((name, (min(step, shape[0] - first), *shape[1:]),
                         seed * 1_000_003 + len(jobs)))
    with SafetensorsWriter(folder / "consolidated.safetensors", entries) as out, \
            concurrent.futures.ThreadPoolExecutor(2) as pool:
        pending = collections.deque()
        for job in jobs:
            name, shape, chunk_seed = job
            pending.append((name, pool.submit(torch.ones, shape, dtype=torch.bfloat16)
                            if chunk_seed is None else
                            pool.submit(_random_chunk, shape, chunk_seed)))
            if len(pending) > 3:
                done_name, future = pending.popleft()
                out.write(done_name, future.result())
        while pending:
            done_name, future = pending.popleft()
            out.write(done_name, future.result())
    (folder / "params.json").write_text(json.dumps(params, indent=2) + "\n")
    shutil.copyfile(mp.shipped_tokenizer_file(), folder / "tekken.json")
    return folder


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


# ---------------------------------------------------------------- measured processes

def _hwm(pid: int) -> int | None:
    """VmHWM of a running process, in bytes (Linux); None once it has exited, or elsewhere."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def run_measured(command: list[str], timeout: float, logs: Path) -> dict:
    """Run command with stdout and stderr in logs.out / logs.err; wait for it with os.wait4,
    killing it after timeout seconds. Returns seconds, returncode (negative: the signal),
    timed_out, major_faults (os.wait4), peak_rss_polled (bytes: the largest VmHWM read every
    50 ms while it ran), stdout, stderr.

    Not os.wait4's ru_maxrss for the peak: Linux starts a child's ru_maxrss at the RSS of the
    process it was forked from (here the parent, torch imported, ~1 GB), so it never reads
    lower than that. A process's VmHWM starts afresh at exec: the measured commands print
    their own at exit; the polled one stands in when a process is killed."""
    global _child
    out, err = logs.with_suffix(".out"), logs.with_suffix(".err")
    env = dict(os.environ, TQDM_DISABLE="1")
    with open(out, "w") as stdout, open(err, "w") as stderr:
        start = time.perf_counter()
        _child = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env)
    timed_out, polled = False, None
    try:
        while True:
            pid, wait_status, usage = os.wait4(_child.pid, os.WNOHANG)
            if pid:
                break
            polled = max(polled or 0, _hwm(_child.pid) or 0) or None
            if not timed_out and time.perf_counter() - start > timeout:
                os.kill(_child.pid, signal.SIGKILL)
                timed_out = True
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        _child.returncode = os.waitstatus_to_exitcode(wait_status)
    finally:
        if _child.returncode is None:            # interrupted: take the child down too
            _child.kill()
            _child.wait()
        returncode, _child = _child.returncode, None
    return dict(seconds=seconds, returncode=returncode, timed_out=timed_out,
                peak_rss_polled=polled, major_faults=usage.ru_majflt,
                stdout=out.read_text(errors="replace"), stderr=err.read_text(errors="replace"))


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def ended(run: dict, timeout: float) -> str:
    """How a process that did not succeed ended, in words."""
    if run["timed_out"]:
        return f"timed out: stopped after {run['seconds']:.0f} s (--timeout {timeout:.0f})"
    if run["returncode"] == -signal.SIGKILL:
        return (f"killed by the OS after {run['seconds']:.0f} s (SIGKILL: most likely the "
                f"out-of-memory killer)")
    if run["returncode"] < 0:
        return (f"killed by signal {signal.Signals(-run['returncode']).name} after "
                f"{run['seconds']:.0f} s")
    return (f"failed after {run['seconds']:.0f} s (exit {run['returncode']}: "
            f"{_last_line(run['stderr'])[:200]})")


def quantize(source: Path, target: Path, bits: int, group_size: int, timeout: float,
             logs: Path) -> dict:
    """`python -m minipixtral quantize source target --bits B [--group-size G]` in its own
    process: its wall time (start-up and imports included) and peak RSS."""
    command = [sys.executable, "-c", MODULE, "quantize", str(source), str(target),
               "--bits", str(bits)] + (["--group-size", str(group_size)] if bits == 4 else [])
    run = run_measured(command, timeout, logs)
    reported = [line.split()[1] for line in run["stderr"].splitlines()
                if line.startswith("VmHWM ")]
    peak = int(reported[-1]) if reported else run["peak_rss_polled"]
    if run["returncode"] == 0:
        return dict(quantize_s=run["seconds"], quantize_peak_rss=peak)
    return dict(quantize_s=None, quantize_peak_rss=peak, status=f"quantize {ended(run, timeout)}")


def generate(folder: Path, new_tokens: int, timeout: float, logs: Path) -> dict:
    """Load folder in a fresh process (CHILD), prefill, decode; the numbers it reached."""
    run = run_measured([sys.executable, "-c", CHILD, str(folder), str(new_tokens), "0"],
                       timeout, logs)
    events, steps, bytes_per_token = {}, [], None
    for line in run["stdout"].splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") == "step":
            steps.append(event["s"])
        if "bytes_per_token" in event:
            bytes_per_token = event["bytes_per_token"]
        events[event.get("event")] = event
    peak = events["done"]["hwm"] if "done" in events else run["peak_rss_polled"]
    result = dict(peak_rss=peak, major_faults=run["major_faults"],
                  run_s=run["seconds"], load_s=None, load_peak_rss=None, prompt_tokens=None,
                  prefill_s=None, prefill_tok_s=None, first_step_s=None, decode_tok_s=None,
                  decode_steps=len(steps), bytes_per_token=bytes_per_token, tokens=None)
    if "imported" in events:
        result["imports_rss"] = events["imported"]["hwm"]
    if "loaded" in events:
        result.update(load_s=events["loaded"]["load_s"], load_peak_rss=events["loaded"]["hwm"])
    if "prefilled" in events:
        p = events["prefilled"]
        result.update(prompt_tokens=p["prompt_tokens"], prefill_s=p["prefill_s"],
                      prefill_tok_s=p["prompt_tokens"] / p["prefill_s"])
    if steps:
        result["first_step_s"] = steps[0]
        rest = steps[1:] or steps                 # the first step aside, where there are more
        result["decode_tok_s"] = len(rest) / sum(rest)
    if "done" in events:
        result["tokens"] = events["done"]["tokens"]
    if run["returncode"] == 0 and "done" in events:
        finite = events["done"]["finite"] and events["prefilled"]["finite"]
        result["status"] = "ok" if finite else "ok, but the logits are not finite"
        return result
    phase = ("importing" if "imported" not in events else
             "loading" if "loaded" not in events else
             "the prefill" if "prefilled" not in events else
             f"decoding ({len(steps)} of {new_tokens - 1} steps done)" if "done" not in events
             else "exiting")
    reached = ", ".join(f"{name} after {events[name]['t']:.0f} s"
                        for name in ("loaded", "prefilled") if name in events)
    result["status"] = f"{ended(run, timeout)}, during {phase}" + (
        f" ({reached})" if reached else "")
    return result


# ---------------------------------------------------------------- the table

COLUMNS = [("format", None), ("file GB", "file_bytes"), ("quantize s", "quantize_s"),
           ("quantize peak RSS GB", "quantize_peak_rss"), ("load s", "load_s"),
           ("load peak RSS GB", "load_peak_rss"), ("run peak RSS GB", "peak_rss"),
           ("major faults", "major_faults"), ("prefill tok/s", "prefill_tok_s"),
           ("1st decode step s", "first_step_s"), ("decode tok/s", "decode_tok_s"),
           ("bound tok/s", "bound_tok_s"), ("% of bound", "bound_share"),
           ("what happened", "status")]
BYTES = {"file_bytes", "quantize_peak_rss", "load_peak_rss", "peak_rss"}


def cell(key: str, value) -> str:
    if value is None:
        return ""
    if key in BYTES:
        return gb(value)
    if key == "bound_share":
        return f"{100 * value:.0f} %" if value >= 0.01 else f"{100 * value:.2f} %"
    if key == "major_faults":
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 100 else f"{value:.3g}" if value >= 1 \
            else f"{value:.3f}"
    return str(value)


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(name for name, _ in COLUMNS) + " |",
             "|---|" + "---:|" * (len(COLUMNS) - 2) + "---|"]
    for row in rows:
        cells = [row["format"]] + [
            "–" if key.startswith("quantize") and row["format"] == "bf16" else
            cell(key, row.get(key)) for _, key in COLUMNS[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- main

def default_root() -> Path:
    """The system's temporary folder, unless it lives in memory (tmpfs): then the current
    folder, so that 25 GB of checkpoint do not take the RAM the benchmark measures."""
    base = Path(tempfile.gettempdir())
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
        best = max((m for m in mounts if str(base.resolve()).startswith(m[1])),
                   key=lambda m: len(m[1]))
        if best[2] in ("tmpfs", "ramfs"):
            base = Path.cwd()
    except (OSError, ValueError, IndexError):
        pass
    return base


def _terminate(signum, frame):
    raise SystemExit(128 + signum)            # so that the finally blocks clean up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int,
                        help="decoder blocks (default: the config's, 40 for Pixtral-12B)")
    parser.add_argument("--vision-layers", type=int,
                        help="vision encoder blocks (default: the config's, 24)")
    parser.add_argument("--tiny", action="store_true",
                        help="for tests only: minipixtral.reference.tiny_config()'s widths "
                             "(decoder 64, vision 32, the real vocabulary) instead of the "
                             "12B's, so that a run takes seconds; its numbers say nothing "
                             "about Pixtral-12B")
    parser.add_argument("--formats", default="bf16,int8,int4",
                        help="comma-separated, of bf16, int8, int4 (default: all three)")
    parser.add_argument("--group-size", type=int, default=128, choices=(32, 64, 128),
                        help="int4: inputs sharing one scale (default 128)")
    parser.add_argument("--new-tokens", type=int, default=16,
                        help="new tokens per answer (default 16: the prefill's, then 15 "
                             "decode steps)")
    parser.add_argument("--dir", type=Path,
                        help="write the files in a new folder in DIR (default: the system's "
                             "temporary folder, or the current one if that is in memory)")
    parser.add_argument("--keep", action="store_true", help="do not delete the files")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds each quantize or generate process may take (default "
                             "1800); it is killed after that and the table says so")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        parser.error(f"--formats takes bf16, int8 and int4, got {args.formats!r}")
    for name in ("layers", "vision_layers"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.new_tokens < 2:
        parser.error("--new-tokens must be at least 2 (the prefill's token and one step)")

    config, params = configure(args.tiny, args.layers, args.vision_layers)
    n_params = sum(t.numel() for t in meta_model(config).state_dict().values())
    quantized = [f for f in formats if FORMATS[f]]
    sizes = {f: file_bytes(config, FORMATS[f], args.group_size) for f in FORMATS}
    tokenizer_bytes = mp.shipped_tokenizer_file().stat().st_size
    extra = [sizes[f] + tokenizer_bytes for f in quantized]
    needed = sizes["bf16"] + tokenizer_bytes + (sum(extra) if args.keep else max(extra,
                                                                                 default=0))
    needed += MARGIN
    base = args.dir or default_root()
    made_base = not base.exists()
    base.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(base).free
    if free < needed:
        if made_base:
            base.rmdir()
        print(f"error: not enough free disk in {base}: this run needs {needed / 1e9:.1f} GB "
              f"(the bfloat16 checkpoint {sizes['bf16'] / 1e9:.1f} GB"
              + (f" + the int8/int4 copies {', '.join(gb(sizes[f]) for f in quantized)} GB, "
                 f"{'all kept' if args.keep else 'one at a time'}" if quantized else "")
              + f" + {MARGIN / 1e9:.0f} GB margin), {free / 1e9:.1f} GB are free. Free some, "
              f"or choose another disk with --dir (or fewer --layers).", file=sys.stderr)
        return 2

    signal.signal(signal.SIGTERM, _terminate)
    info = machine()
    info.update(disk_free_bytes=free)
    bandwidth_bytes = (256 if args.tiny else 1024) << 20
    log(f"copy bandwidth: {bandwidth_bytes >> 20} MiB")
    bandwidth = copy_bandwidth(bandwidth_bytes)
    root = Path(tempfile.mkdtemp(prefix="minipixtral-full-size-", dir=base))
    source = root / "bf16"
    results = {f: dict(format=f, file_bytes=None, status=None) for f in formats}
    try:
        log(f"writing {n_params / 1e9:.2f} B random parameters, {sizes['bf16'] / 1e9:.2f} GB "
            f"of bfloat16, to {source}")
        start = time.perf_counter()
        write_checkpoint(source, config, params)
        write_s = time.perf_counter() - start
        bf16_bytes = (source / "consolidated.safetensors").stat().st_size
        log(f"written in {write_s:.0f} s")
        order = quantized + (["bf16"] if "bf16" in formats else [])   # bf16 last: it may thrash
        for f in order:
            row = results[f]
            folder = source if f == "bf16" else root / f
            if f != "bf16":
                log(f"{f}: python -m minipixtral quantize")
                row.update(quantize(source, folder, FORMATS[f], args.group_size, args.timeout,
                                    root / f"quantize-{f}"))
                if row.get("status"):
                    log(f"{f}: {row['status']}")
                    shutil.rmtree(folder, ignore_errors=True)
                    continue
            row["file_bytes"] = (folder / "consolidated.safetensors").stat().st_size
            log(f"{f}: load and answer ({gb(row['file_bytes'])} GB)")
            row.update(generate(folder, args.new_tokens, args.timeout, root / f"generate-{f}"))
            if row["bytes_per_token"]:
                row["bound_tok_s"] = bandwidth / row["bytes_per_token"]
                if row["decode_tok_s"]:
                    row["bound_share"] = row["decode_tok_s"] / row["bound_tok_s"]
            if row["file_bytes"] > info["ram_bytes"]:
                row["status"] += (f"; the file ({gb(row['file_bytes'])} GB) is larger than the "
                                  f"RAM ({gb(info['ram_bytes'])} GB): {row['major_faults']:,} "
                                  f"major page faults")
            log(f"{f}: {row['status']}")
            if f != "bf16" and not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
            if made_base:
                shutil.rmtree(base, ignore_errors=True)
        else:
            log(f"kept {root}")

    rows = [results[f] for f in formats]
    prompt = next((r["prompt_tokens"] for r in rows if r.get("prompt_tokens")), None)
    imports = next((r["imports_rss"] for r in rows if r.get("imports_rss")), None)
    load = info["load_average"]
    label = ("tiny_config() widths (a test)" if args.tiny else "Pixtral-12B-2409's widths")
    print(f"**Machine:** {info['cpu']}, {info['cores']} cores, {info['threads']} torch threads, "
          f"{gb(info['ram_bytes'])} GB ({info['ram_bytes'] / 2**30:.1f} GiB) RAM, {info['os']}; "
          f"Python {info['python']}, torch {info['torch']}; load average "
          f"{'n/a' if load is None else f'{load:.2f}'} at the start (1 min).\n")
    print(f"**Model:** random bfloat16 weights, {label}: decoder blocks {config.n_layers}, "
          f"vision blocks {config.vision_encoder.num_hidden_layers}, "
          f"{n_params / 1e9:.2f} B parameters; checkpoint written in {write_s:.0f} s "
          f"({bf16_bytes / 1e9 / write_s:.2f} GB/s, into the page cache). Prompt: "
          f"{prompt or '?'} tokens with a 512 × 512 image; {args.new_tokens} new tokens, "
          f"greedy"
          f"{f'; int4 groups of {args.group_size}' if 'int4' in formats else ''}. Copy bandwidth "
          f"{bandwidth / 1e9:.1f} GB/s (torch dst.copy_(src) of {bandwidth_bytes >> 20} MiB, "
          f"best of 5, {info['threads']} threads, 2 × bytes / s: read + write); "
          f"{time.perf_counter() - START:.0f} s in all.\n")
    print(table(rows))
    print("\n- quantize: the wall time and peak RSS of the `python -m minipixtral quantize` "
          "process (its start-up and imports included).\n"
          "- load: Pixtral.from_folder(..., dtype=torch.bfloat16), memory-mapped; load peak "
          "RSS: the process's high-water mark right after it; run peak RSS: over the whole "
          "process (imports, load, prefill, decode), mapped file pages included; the imports "
          f"alone: {gb(imports) or '?'} GB.\n"
          "- major faults: pages the process had to wait for the disk to read; many more than "
          "the file's size in pages means it was read again and again.\n"
          f"- decode: tokens/s over the decode steps after the first; bound: copy bandwidth ÷ "
          f"the bytes of weights one decode step reads ("
          + ", ".join(f"{r['format']} {gb(r['bytes_per_token'])} GB" for r in rows
                      if r.get("bytes_per_token"))
          + "; the key/value cache it also reads is left out).")
    if args.json:
        args.json.write_text(json.dumps(dict(
            machine=info, bandwidth_bytes_per_s=bandwidth, n_params=n_params,
            config=dataclasses.asdict(config), write_s=write_s, expected_file_bytes=sizes,
            settings={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            rows=rows), indent=2) + "\n")
    return 0 if all(r["status"] and r["status"].startswith("ok") for r in rows
                    if r["format"] != "bf16") else 1


if __name__ == "__main__":
    sys.exit(main())
