"""Lesson 07: generation with a KV cache, against no-cache generation and transformers' generate.

A tiny random Pixtral (float32, seeded, the real tokenizer and vocabulary). Greedy tokens must
be identical token for token: with and without the cache, and against transformers'
LlavaForConditionalGeneration.generate on the same weights, with 0, 1 and 2 images. Sampling is
checked for reproducibility and, statistically, against softmax(z / T) and the nucleus rule.
"""
from __future__ import annotations

import dataclasses
import math
import shutil

import numpy as np
import pytest
import torch

import minipixtral as mp
from minipixtral import Pixtral, PixtralConfig
from minipixtral.reference import hf_pixel_inputs, randomize, tiny_config

NEW = 12  # new tokens per generation


@pytest.fixture(scope="module")
def model() -> Pixtral:
    """tiny_config, seeded random weights; conftest.py's hf_model is its transformers twin."""
    return randomize(Pixtral(tiny_config()), seed=5)


@pytest.fixture(scope="module")
def prompts(tokenizer) -> dict[int, tuple[list[int], list[torch.Tensor]]]:
    """n → (ids, images) of a chat prompt with n images (32×48 and 48×48 pixels)."""
    rng = np.random.default_rng(0)
    pictures = [(rng.random(shape) * 255).astype(np.uint8) for shape in [(32, 48, 3), (48, 48, 3)]]
    return {n: tokenizer.encode_chat("Describe the image.", images=pictures[:n]) for n in range(3)}


@pytest.fixture(scope="module")
def greedy(model, prompts) -> dict[int, list[int]]:
    return {n: mp.generate(model, ids, images, max_new_tokens=NEW)
            for n, (ids, images) in prompts.items()}


class CallCounter:
    """Counts the model's forward calls and records how many tokens each one received."""

    def __init__(self, module: torch.nn.Module):
        self.lengths: list[int] = []
        self.handle = module.register_forward_pre_hook(
            lambda _, args: self.lengths.append(len(args[0])))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


# --- greedy: cached == uncached == transformers ------------------------------------------------

@pytest.mark.parametrize("n_images", [0, 1, 2])
def test_cached_equals_uncached(model, prompts, greedy, n_images):
    ids, images = prompts[n_images]
    uncached = mp.generate(model, ids, images, max_new_tokens=NEW, use_cache=False)
    assert greedy[n_images] == uncached
    assert len(greedy[n_images]) == NEW and len(set(greedy[n_images])) > 3  # not trivial


def test_cache_prefills_once_then_one_token_per_step(model, prompts):
    ids, images = prompts[1]
    with CallCounter(model) as calls:
        mp.generate(model, ids, images, max_new_tokens=NEW)
    assert calls.lengths == [len(ids)] + [1] * (NEW - 1)   # the last token is not fed back
    with CallCounter(model.vision_encoder) as vision:
        mp.generate(model, ids, images, max_new_tokens=NEW)
    assert len(vision.lengths) == 1                         # images encoded once
    with CallCounter(model) as calls:
        mp.generate(model, ids, images, max_new_tokens=4, use_cache=False)
    assert calls.lengths == [len(ids) + i for i in range(4)]


@pytest.mark.parametrize("n_images", [0, 1, 2])
def test_greedy_equals_transformers_generate(hf_model, prompts, greedy, n_images):
    ids, images = prompts[n_images]
    inputs = {"input_ids": torch.tensor([ids])}
    if images:
        inputs["pixel_values"], inputs["image_sizes"] = hf_pixel_inputs(images)
    with torch.inference_mode():  # always max_new_tokens: transformers' default length differs
        out = hf_model.generate(**inputs, do_sample=False, max_new_tokens=NEW)
    assert out[0, len(ids):].tolist() == greedy[n_images]


@pytest.mark.parametrize("n_images", [0, 2])
def test_prefill_in_chunks_gives_the_same_tokens(model, prompts, greedy, n_images):
    ids, images = prompts[n_images]
    for chunk in (1, 3, len(ids) - 1, len(ids) + 5):
        assert mp.generate(model, ids, images, max_new_tokens=NEW,
                           prefill_chunk=chunk) == greedy[n_images], chunk
    with pytest.raises(ValueError, match="with a cache; got 4 and no cache"):
        mp.generate(model, ids, images, max_new_tokens=2, prefill_chunk=4, use_cache=False)


# --- sampling ------------------------------------------------------------------------------------

def test_sampling_is_reproducible_with_a_seed(model, prompts):
    ids, images = prompts[1]
    options = dict(max_new_tokens=6, temperature=1.0)
    first = mp.generate(model, ids, images, seed=0, **options)
    assert first == mp.generate(model, ids, images, seed=0, **options)
    assert first != mp.generate(model, ids, images, seed=1, **options)   # negative control
    nucleus = mp.generate(model, ids, images, seed=0, top_p=0.9, **options)
    assert nucleus == mp.generate(model, ids, images, seed=0, top_p=0.9, use_cache=False,
                                  **options)


def test_tiny_top_p_is_greedy(model, prompts, greedy):
    ids, images = prompts[1]
    for seed in range(2):
        assert mp.generate(model, ids, images, max_new_tokens=6, temperature=1.0, top_p=1e-9,
                           seed=seed) == greedy[1][:6]


TOY = torch.tensor([3.0, 2.4, 2.0, 1.5, 1.0, 0.6, 0.2, -0.3, -0.8, -1.5])


def frequencies(temperature: float, top_p: float, draws: int = 6000) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    samples = [mp.sample_next(TOY, temperature, top_p, generator) for _ in range(draws)]
    return torch.bincount(torch.tensor(samples), minlength=len(TOY)) / draws


def test_temperature_sampling_follows_softmax():
    for temperature in [0.7, 1.5]:
        got = frequencies(temperature, 1.0)
        assert (got - torch.softmax(TOY / temperature, 0)).abs().max() < 0.03   # σ ≤ 0.0065
    # negative control: the same draws are far from the softmax at another temperature
    assert (frequencies(0.7, 1.0) - torch.softmax(TOY / 1.5, 0)).abs().max() > 0.1


def test_top_p_keeps_the_nucleus_like_transformers():
    from transformers.generation.logits_process import TopPLogitsWarper
    for top_p in [0.3, 0.8, 0.95]:
        got = frequencies(1.0, top_p)
        kept = torch.isfinite(TopPLogitsWarper(top_p)(None, TOY[None].clone())[0])
        p = torch.softmax(TOY, 0)
        before = p.cumsum(0) - p
        assert torch.equal(kept, before < top_p)          # the token crossing top_p is kept
        assert torch.equal(got > 0, kept), (top_p, got)
        assert (got - torch.where(kept, p, 0.0) / p[kept].sum()).abs().max() < 0.03


def sorted_nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """The definition, by a full sort (float64 sums): keep while the mass ranked above < top_p."""
    sorted_probs, order = probs.double().sort(descending=True)
    kept = sorted_probs.cumsum(0) - sorted_probs < top_p
    return torch.zeros_like(probs, dtype=torch.bool).scatter_(0, order, kept)


@pytest.mark.parametrize("spread", [0.3, 1.0, 3.0, 10.0, 30.0])
def test_nucleus_floor_keeps_what_sorting_the_vocabulary_keeps(spread):
    """131 072 tokens, flat (the histogram stage) to peaked (the likely-tokens stage): the same set as
    the sort; transformers' TopPLogitsWarper (a float32 cumulative sum over 131 072 tokens,
    whose rounding depends on the CPU's kernels) differs only at the boundary: at most a few
    tokens, each within 1e-3 of the floor (on an AMD EPYC host, 2 tokens 8e-5 below it at
    top_p 0.95 and spread 3; on an Intel Xeon, at most 1)."""
    from transformers.generation.logits_process import TopPLogitsWarper
    for top_p in [0.1, 0.5, 0.8, 0.95]:
        for seed in range(2):
            logits = torch.randn(131_072, generator=torch.Generator().manual_seed(seed)) * spread
            probs = torch.softmax(logits, 0)
            floor = mp.nucleus_floor(probs, top_p)
            ours = probs >= floor
            assert torch.equal(ours, sorted_nucleus(probs, top_p)), (spread, top_p, seed)
            theirs = torch.isfinite(TopPLogitsWarper(top_p)(None, logits[None].clone())[0])
            differ = (ours ^ theirs).nonzero().flatten()
            assert len(differ) <= 3 and all(abs(probs[i] - floor) <= 1e-3 * floor or
                                            probs[i] == probs[~ours].max() for i in differ)
    # negative control: a floor one token lower keeps one token more than the definition
    probs = torch.softmax(torch.randn(131_072, generator=torch.Generator().manual_seed(0)), 0)
    lower = probs[probs < mp.nucleus_floor(probs, 0.8)].max()
    assert not torch.equal(probs >= lower, sorted_nucleus(probs, 0.8))


def test_nucleus_floor_edges():
    uniform = torch.full((1000,), 1e-3)
    assert bool((uniform >= mp.nucleus_floor(uniform, 0.5)).all())     # ties at the floor: all
    two = torch.zeros(131_072)
    two[[5, 7]] = torch.tensor([0.6, 0.4])
    assert (two >= mp.nucleus_floor(two, 0.5)).nonzero().flatten().tolist() == [5]
    assert (two >= mp.nucleus_floor(two, 0.7)).nonzero().flatten().tolist() == [5, 7]
    flat = torch.softmax(torch.randn(131_072, generator=torch.Generator().manual_seed(3)), 0)
    short = flat * 0.999                                                # top_p > Σ p: all
    assert bool((short >= mp.nucleus_floor(short, 0.9995)).all())
    flat[:1000] = 0                                                     # zeros (log p = -inf)
    assert torch.equal(flat >= mp.nucleus_floor(flat, 0.9), sorted_nucleus(flat, 0.9))


def test_nucleus_bounds_bracket_the_floor():
    """Stage 1 gives the floor itself; stage 2 the edges of the bin that crosses, with the mass
    above it."""
    peaked = torch.softmax(torch.randn(131_072, generator=torch.Generator().manual_seed(0)) * 10, 0)
    low, high, above = mp.nucleus_bounds(peaked, 0.8)
    assert low == high == float(mp.nucleus_floor(peaked, 0.8))
    assert above == pytest.approx(float(peaked[peaked >= high].double().sum()), rel=1e-12)
    flat = torch.softmax(torch.randn(131_072, generator=torch.Generator().manual_seed(0)), 0)
    low, high, above = mp.nucleus_bounds(flat, 0.8)
    floor = float(mp.nucleus_floor(flat, 0.8))
    assert low <= floor < high and high - low == 2.0 ** math.floor(math.log2(low)) / 32  # 32 a doubling
    assert above == pytest.approx(float(flat[flat >= high].double().sum()), rel=1e-12)
    assert above < 0.8 <= above + float(flat[(flat >= low) & (flat < high)].double().sum())


def test_top_p_draw_is_exact_when_it_lands_in_the_crossing_bin():
    """One token of p = 0.305 and 32 767 within 0.5 % of each other, all in one histogram bin:
    at top_p = 0.6 most first draws land in that bin, and the second draw must keep the
    nucleus's distribution: the big token with probability 0.305 / N, no token outside."""
    rest = 1 + 0.01 * (torch.rand(32_767, generator=torch.Generator().manual_seed(0)) - 0.5)
    probs = torch.cat([torch.tensor([0.305]), rest / rest.sum() * 0.695])
    low, high, _ = mp.nucleus_bounds(probs, 0.6)
    assert float(probs[(probs >= low) & (probs < high)].sum()) > 0.69     # the crossing bin
    kept = sorted_nucleus(probs, 0.6)
    expected = 0.305 / float(probs[kept].double().sum())                  # 0.508

    def big_share(draw) -> tuple[float, torch.Tensor]:
        generator = torch.Generator().manual_seed(0)
        drawn = torch.tensor([draw(generator) for _ in range(1000)])
        return float((drawn == 0).float().mean()), drawn

    share, drawn = big_share(lambda g: mp.sample_next(probs.log(), 1.0, 0.6, g))
    assert bool(kept[drawn].all()) and abs(share - expected) < 0.06         # σ ≈ 0.016
    # negative controls: keeping every first draw (≈ 0.305), or redrawing from the nucleus
    # whenever the first draw lands in the crossing bin (≈ 0.305 + 0.695 × 0.508 = 0.66)
    first, nucleus = torch.where(probs >= low, probs, 0.0), torch.where(kept, probs, 0.0)
    keep_all = lambda g: mp.draw_index(first, g)
    redraw = lambda g: (i if probs[i := mp.draw_index(first, g)] >= high
                        else mp.draw_index(nucleus, g))
    for wrong in (keep_all, redraw):
        assert abs(big_share(wrong)[0] - expected) > 0.1


def test_draw_index_follows_the_probabilities_and_skips_zeros(monkeypatch):
    probs = torch.tensor([0.0, 0.5, 0.0, 0.3, 0.2, 0.0])
    generator = torch.Generator().manual_seed(0)
    counts = torch.bincount(torch.tensor([mp.draw_index(probs, generator) for _ in range(6000)]),
                            minlength=len(probs))
    assert (counts / 6000 - probs).abs().max() < 0.03 and counts[[0, 2, 5]].sum() == 0
    assert (counts / 6000 - torch.tensor([0, 0.2, 0, 0.3, 0.5, 0])).abs().max() > 0.2  # control
    half = torch.tensor([1.0, 1.0, 0.0])            # unnormalised: u is drawn in [0, Σ p)
    assert {mp.draw_index(half, torch.Generator().manual_seed(s)) for s in range(40)} == {0, 1}
    monkeypatch.setattr(torch, "rand", lambda *args, **kwargs: torch.tensor(1.0, dtype=torch.float64))
    assert mp.draw_index(probs) == 4                # u rounded up to Σ p: the last kept token


def test_greedy_is_argmax():
    assert mp.sample_next(TOY) == 0
    assert mp.sample_next(-TOY) == len(TOY) - 1


# --- stopping ------------------------------------------------------------------------------------

def test_eos_and_stop_ids_stop_before_the_token(model, prompts, greedy):
    ids, images = prompts[1]
    answer = greedy[1]
    assert mp.generate(model, ids, images, NEW, eos_id=answer[0]) == []
    k = next(i for i in range(3, NEW) if answer[i] not in answer[:i])
    assert mp.generate(model, ids, images, NEW, eos_id=answer[k]) == answer[:k]
    assert mp.generate(model, ids, images, NEW, stop_ids=[answer[k], 7]) == answer[:k]
    assert mp.generate(model, ids, images, NEW, eos_id=None) == answer
    assert mp.generate(model, ids, images, 0) == []


def test_ids_as_list_or_tensor(model, prompts, greedy):
    ids, images = prompts[1]
    assert mp.generate(model, torch.tensor(ids), images, max_new_tokens=NEW) == greedy[1]
    assert list(mp.generate_ids(model, ids, images, max_new_tokens=NEW)) == greedy[1]


# --- the cache -----------------------------------------------------------------------------------

def test_kv_cache_update_writes_the_next_slots():
    cache = mp.KVCache(6, 2, 4)
    address = cache.k.data_ptr()
    k1, v1 = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    k2, v2 = torch.randn(1, 2, 4), torch.randn(1, 2, 4)
    cache.update(k1, v1)
    keys, values = cache.update(k2, v2)
    assert cache.length == 4 and keys.shape == (4, 2, 4)
    assert torch.equal(keys, torch.cat([k1, k2])) and torch.equal(values, torch.cat([v1, v2]))
    assert torch.equal(cache.k[4:], torch.zeros(2, 2, 4))
    assert keys.data_ptr() == address and cache.k.data_ptr() == address   # views, no realloc
    assert values.data_ptr() == cache.v.data_ptr()
    with pytest.raises(ValueError, match="holds 6 tokens; 7 do not fit"):
        cache.update(torch.zeros(3, 2, 4), torch.zeros(3, 2, 4))
    assert cache.length == 4


def test_model_cache_never_reallocates_and_matches_a_fresh_prefill(model, prompts, greedy):
    ids, images = prompts[1]
    cache = mp.new_cache(model, len(ids) + 3)
    assert len(cache) == model.config.n_layers
    assert cache[0].k.shape == (len(ids) + 3, model.config.n_kv_heads, model.config.head_dim)
    addresses = [(c.k.data_ptr(), c.v.data_ptr()) for c in cache]
    with torch.inference_mode():
        model(torch.tensor(ids), images, cache=cache)
        for token in greedy[1][:2]:
            last = model(torch.tensor([token]), start=cache[0].length, cache=cache)[-1]
        assert [(c.k.data_ptr(), c.v.data_ptr()) for c in cache] == addresses
        assert cache[0].length == len(ids) + 2
        full = ids + greedy[1][:2]
        fresh = mp.new_cache(model, len(full))
        reference = model(torch.tensor(full), images, cache=fresh)[-1]
        for ours, theirs in zip(cache, fresh):
            assert torch.allclose(ours.k[:len(full)], theirs.k, atol=1e-5)
            assert torch.allclose(ours.v[:len(full)], theirs.v, atol=1e-5)
        assert torch.allclose(last, reference, atol=1e-4)
        # negative control: the same token fed at a wrong position gives other logits
        cache_wrong = mp.new_cache(model, len(full))
        model(torch.tensor(full[:-1]), images, cache=cache_wrong)
        wrong = model(torch.tensor(full[-1:]), cache=cache_wrong)[-1]
        assert (wrong - reference).abs().max() > 1e-2


# --- errors before any work ----------------------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    (dict(max_new_tokens=-1), "max_new_tokens must be an integer ≥ 0, got -1"),
    (dict(max_new_tokens=2.5), "max_new_tokens must be an integer"),
    (dict(temperature=-0.1), "temperature must be ≥ 0"),
    (dict(temperature=float("nan")), "temperature must be ≥ 0"),
    (dict(temperature=1.0, top_p=0.0), r"top_p must be in \(0, 1\], got 0.0"),
    (dict(temperature=1.0, top_p=1.5), r"top_p must be in \(0, 1\], got 1.5"),
    (dict(compile=True, use_cache=False), "compile=True .* needs use_cache=True"),
])
def test_bad_arguments_fail_before_any_model_call(model, tokenizer, prompts, options, message):
    ids, images = prompts[1]
    with CallCounter(model) as calls:
        with pytest.raises(ValueError, match=message):
            mp.generate(model, ids, images, **options)
        with pytest.raises(ValueError, match=message):
            next(mp.generate_ids(model, ids, images, **options))
        with pytest.raises(ValueError, match=message):
            next(mp.stream_text(model, tokenizer, ids, images, **options))
    assert calls.lengths == []


def test_prompt_that_does_not_fit_the_context(model, prompts):
    ids, images = prompts[1]
    short = Pixtral(dataclasses.replace(tiny_config(), max_seq_len=24)).eval()
    short.load_state_dict(model.state_dict())
    with CallCounter(short) as calls:
        with pytest.raises(ValueError, match=r"prompt \(16 tokens\) plus max_new_tokens \(9\) is "
                                             r"25 tokens, more than the context of 24"):
            mp.generate(short, ids, images, max_new_tokens=9)
        with pytest.raises(ValueError, match="the prompt is empty"):
            mp.generate(short, [], max_new_tokens=1)
    assert calls.lengths == []
    assert len(mp.generate(short, ids, images, max_new_tokens=8)) == 8   # exactly full: fine


# --- streaming -----------------------------------------------------------------------------------

def test_stream_text_pieces_join_to_the_answer(model, tokenizer, prompts, greedy):
    ids, images = prompts[1]
    pieces = list(mp.stream_text(model, tokenizer, ids, images, max_new_tokens=NEW))
    assert "".join(pieces) == tokenizer.decode(greedy[1])
    assert len(pieces) == NEW


class Parrot(torch.nn.Module):
    """The model's interface, predicting the tokens of a script after the prompt, then EOS."""

    def __init__(self, script: list[int], prompt_length: int, eos_id: int):
        super().__init__()
        self.script, self.prompt_length, self.eos_id = script, prompt_length, eos_id
        self.config = PixtralConfig(n_layers=1, n_kv_heads=1, head_dim=2)
        self.output = torch.nn.Linear(1, 1, bias=False)

    def forward(self, ids, images=(), *, start=0, cache=None, last_only=False):
        T = len(ids)
        if cache is not None:
            for layer in cache:
                layer.update(torch.zeros(T, 1, 2), torch.zeros(T, 1, 2))
        said = start + T - self.prompt_length
        logits = torch.zeros(T, self.config.vocab_size)
        logits[-1, self.script[said] if said < len(self.script) else self.eos_id] = 1.0
        return logits[-1:] if last_only else logits


def test_stream_text_holds_back_split_characters(tokenizer):
    text = "naïve café 🦙 ok"
    script = tokenizer.encode(text)
    assert "\ufffd" in tokenizer.decode(script[:5])           # the emoji spans several tokens
    parrot = Parrot(script, 3, tokenizer.eos_id)
    pieces = list(mp.stream_text(parrot, tokenizer, [1, 3, 4], max_new_tokens=40))
    assert "".join(pieces) == text
    assert not any("\ufffd" in piece for piece in pieces)
    assert len(pieces) < len(script)
    assert mp.generate(parrot, [1, 3, 4], max_new_tokens=40, eos_id=tokenizer.eos_id) == script


def test_stream_text_holds_back_partial_characters_and_flushes_the_tail(tokenizer):
    script = tokenizer.encode("naïve café 🦙")          # the llama spans several byte tokens
    parrot = Parrot(script, 3, tokenizer.eos_id)
    pieces = list(mp.stream_text(parrot, tokenizer, [1, 3, 4], max_new_tokens=len(script)))
    assert "".join(pieces) == "naïve café 🦙" and not any("\ufffd" in p for p in pieces)
    cut = list(mp.stream_text(parrot, tokenizer, [1, 3, 4], max_new_tokens=len(script) - 1))
    assert "".join(cut) == tokenizer.decode(script[:-1])  # the tail is not lost


# --- compile=True: the static decode step through torch.compile (lesson 07, "Going deeper") -----
# On a CPU, torch.compile's inductor writes C++ and needs a compiler.
needs_compiler = pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                                    reason="torch.compile on a CPU needs a C++ compiler")


@needs_compiler
@pytest.mark.parametrize("n_images", [0, 1, 2])
def test_compiled_decode_gives_the_eager_tokens(model, prompts, greedy, n_images):
    ids, images = prompts[n_images]
    assert mp.generate(model, ids, images, max_new_tokens=NEW, compile=True) == greedy[n_images]


@needs_compiler
def test_compiled_decode_samples_as_eager_with_a_seed(model, prompts):
    ids, images = prompts[1]
    options = dict(max_new_tokens=8, temperature=1.0, top_p=0.9, seed=3)
    assert (mp.generate(model, ids, images, compile=True, **options)
            == mp.generate(model, ids, images, **options))


@needs_compiler
def test_compiled_step_is_one_graph_without_breaks(model, prompts):
    ids, images = prompts[1]
    cache = mp.new_cache(model, 256)
    with torch.inference_mode():
        model(torch.tensor(ids), images, cache=cache, last_only=True)
        report = torch._dynamo.explain(mp.static_decode_step)(
            model, torch.tensor([7]), torch.tensor([len(ids)]), cache)
    assert (report.graph_count, report.graph_break_count) == (1, 0)


@needs_compiler
def test_compiled_step_does_not_recompile(model, prompts, greedy):
    """After one compiled generation: 30 more steps and another prompt length reuse the graph
    (dynamo's count of the graphs it made stays put); another model of the same shapes makes
    one more (its weights are frozen into it), and gives its own eager tokens."""
    from torch._dynamo.utils import counters
    ids, images = prompts[1]
    mp.generate(model, ids, images, max_new_tokens=3, compile=True)      # compiles, if needed
    graphs = counters["stats"]["unique_graphs"]
    assert graphs >= 1
    mp.generate(model, ids, images, max_new_tokens=30, compile=True)
    assert mp.generate(model, *prompts[0], max_new_tokens=NEW, compile=True) == greedy[0]
    twin = randomize(Pixtral(tiny_config()), seed=6)
    assert (mp.generate(twin, ids, images, max_new_tokens=6, compile=True)
            == mp.generate(twin, ids, images, max_new_tokens=6))
    assert counters["stats"]["unique_graphs"] == graphs + 1
    mp.generate(model, ids, images, max_new_tokens=300, compile=True)    # negative control:
    assert counters["stats"]["unique_graphs"] == graphs + 2               # a longer cache


@needs_compiler
def test_compiled_decode_follows_weights_changed_in_place(prompts, monkeypatch):
    """The compiled step freezes the weights (constants of the compiled code): after an
    in-place change, the weights' version counters make it compile anew, so its tokens follow
    eager's. Negative control: without the reset, it keeps computing with the frozen weights."""
    model = randomize(Pixtral(tiny_config()), seed=8)
    ids, images = prompts[1]
    before = mp.generate(model, ids, images, max_new_tokens=6, compile=True)
    with torch.no_grad():
        model.output.weight.neg_()
    flipped = mp.generate(model, ids, images, max_new_tokens=6)
    assert flipped != before
    assert mp.generate(model, ids, images, max_new_tokens=6, compile=True) == flipped
    monkeypatch.setattr(torch._dynamo, "reset", lambda: None)
    with torch.no_grad():
        model.output.weight.neg_()                                   # back to `before`
    assert mp.generate(model, ids, images, max_new_tokens=6) == before
    assert mp.generate(model, ids, images, max_new_tokens=6, compile=True) != before  # stale


@needs_compiler
def test_compiled_cache_matches_the_eager_cache(model, prompts):
    """The static step writes slot pos in place: the filled slots equal eager's, the rest stay
    zero, and each layer's length counts the tokens."""
    ids, images = prompts[1]
    eager, padded = mp.new_cache(model, 64), mp.new_cache(model, 256)
    answer = mp.generate(model, ids, images, max_new_tokens=5)
    with torch.inference_mode():
        for cache in (eager, padded):
            model(torch.tensor(ids), images, cache=cache, last_only=True)
        step = torch.compile(mp.static_decode_step, fullgraph=True, dynamic=False)
        for k, token in enumerate(answer[:4]):
            model(torch.tensor([token]), start=eager[0].length, cache=eager)
            step(model, torch.tensor([token]), torch.tensor([len(ids) + k]), padded)
            for layer in padded:
                layer.length += 1
    n = len(ids) + 4
    for a, b in zip(eager, padded):
        assert b.length == a.length == n
        assert torch.allclose(a.k[:n], b.k[:n], atol=1e-6) and torch.allclose(a.v[:n], b.v[:n],
                                                                                 atol=1e-6)
        assert not b.k[n:].any() and not b.v[n:].any()


def test_compile_refuses_a_model_it_cannot_compile(prompts):
    class Echo(torch.nn.Module):
        config = tiny_config()

        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def forward(self, ids, images=(), *, start=0, cache=None, last_only=False, **_):
            return torch.zeros(1, 10)

    with pytest.raises(ValueError, match="compile=True needs a minipixtral Decoder or Pixtral"):
        mp.generate(Echo(), [1, 2, 3], max_new_tokens=3, compile=True)
