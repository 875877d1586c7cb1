"""Lesson 06: the decoder and the whole Pixtral model against transformers' Mistral and Llava.

Tiny random models (float32, seeded) with n_heads·head_dim ≠ dim and GQA, as in the real
model; relative max error ≤ 1e-5 on logits. Negative controls show that the comparison would
catch a missing q/k permutation or a sliding window. run_layers with the causal mask is what
forward computes before the norm (and another mask changes it); the options after the images
are keyword-only, and ids outside the vocabulary are refused on every prefill. The real
configuration is checked on the meta device: parameter count, tensor names and shapes of
consolidated.safetensors.
"""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import minipixtral as mp
from minipixtral.reference import (decoder_state_dict_to_hf, hf_llava_model, hf_mistral_model,
                                   hf_pixel_inputs, hf_text_config, randomize, relative_error,
                                   tiny_config)

# tiny_config with heads of 24: n_heads · head_dim = 96 ≠ dim = 64, as 4096 ≠ 5120 in Pixtral
CONFIG = dataclasses.replace(tiny_config(), head_dim=24)


@pytest.fixture(scope="module")
def decoder():
    assert CONFIG.n_heads * CONFIG.head_dim != CONFIG.dim and CONFIG.n_kv_heads < CONFIG.n_heads
    return randomize(mp.Decoder(CONFIG))


@pytest.fixture(scope="module")
def prompt(tokenizer):
    ids, _ = tokenizer.encode_chat("The capital of France is Paris. What is the capital of Italy?")
    return torch.tensor(ids)


@pytest.fixture(scope="module")
def decoder_logits(decoder, prompt):
    with torch.no_grad():
        return decoder(prompt)


@pytest.fixture(scope="module")
def pixtral():
    return randomize(mp.Pixtral(CONFIG), seed=1)


# --- against transformers -----------------------------------------------------------------
@pytest.fixture(scope="module")
def hf_decoder(decoder):
    return hf_mistral_model(decoder)


def test_decoder_matches_hf_mistral(hf_decoder, prompt, decoder_logits):
    with torch.no_grad():
        ref = hf_decoder(prompt[None]).logits[0]
    assert decoder_logits.shape == ref.shape == (len(prompt), 131072)
    assert relative_error(decoder_logits, ref) <= 1e-5
    assert torch.equal(decoder_logits.argmax(-1), ref.argmax(-1))


def test_without_qk_permutation_logits_differ(decoder, prompt, decoder_logits):
    from transformers import MistralForCausalLM
    state = decoder_state_dict_to_hf(decoder.state_dict(), decoder.config, "model.")
    for i in range(decoder.config.n_layers):
        for ours, theirs in [("wq", "q_proj"), ("wk", "k_proj")]:
            state[f"model.layers.{i}.self_attn.{theirs}.weight"] = \
                decoder.state_dict()[f"layers.{i}.attention.{ours}.weight"]
    model = MistralForCausalLM(hf_text_config(decoder.config)).eval()
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        ref = model(prompt[None]).logits[0]
    assert relative_error(decoder_logits[:1], ref[:1]) <= 1e-5  # position 0: no rotation
    assert relative_error(decoder_logits, ref) > 0.1


def test_sliding_window_makes_logits_differ(decoder, hf_decoder, prompt, decoder_logits):
    from transformers import MistralForCausalLM
    config = hf_text_config(decoder.config)
    config.sliding_window = 4
    model = MistralForCausalLM(config).eval()
    model.load_state_dict(hf_decoder.state_dict(), strict=True)
    assert len(prompt) > 4
    with torch.no_grad():
        ref = model(prompt[None]).logits[0]
    assert relative_error(decoder_logits[:4], ref[:4]) <= 1e-5  # the window covers them
    assert relative_error(decoder_logits, ref) > 0.1


@pytest.fixture(scope="module")
def llava(pixtral):
    return hf_llava_model(pixtral)


@pytest.mark.parametrize("n_images", [0, 1, 2])
def test_pixtral_matches_hf_llava(pixtral, llava, tokenizer, n_images):
    rng = np.random.default_rng(n_images)
    images = [rng.integers(0, 256, (40, 70, 3), dtype=np.uint8),
              rng.integers(0, 256, (100, 60, 3), dtype=np.uint8)][:n_images]
    ids, pixels = tokenizer.encode_chat("Describe the image.", images=images)
    ids = torch.tensor(ids)
    assert int((ids == 10).sum()) == [0, 15, 43][n_images]
    extra = {}
    if pixels:
        pixel_values, image_sizes = hf_pixel_inputs(pixels)
        extra = {"pixel_values": pixel_values, "image_sizes": image_sizes}
    with torch.no_grad():
        ours = pixtral(ids, pixels)
        ref = llava(input_ids=ids[None], **extra).logits[0]
    assert ours.shape == ref.shape == (len(ids), 131072)
    assert relative_error(ours, ref) <= 1e-5
    assert torch.equal(ours.argmax(-1), ref.argmax(-1))
    with torch.no_grad():  # last_only: the last row only, the same numbers
        last = pixtral(ids, pixels, last_only=True)
    assert last.shape == (1, 131072)
    assert (last[0] - ours[-1]).abs().max() <= 1e-5 * ours[-1].abs().max()
    assert relative_error(last[0], ref[-1]) <= 1e-5


# --- GQA ----------------------------------------------------------------------------------
def test_gqa_equals_mha_with_repeated_kv_weights():
    torch.manual_seed(0)
    dim, n_heads, n_kv_heads, head_dim = 64, 8, 2, 16
    gqa = mp.Attention(dim, n_heads, head_dim, n_kv_heads)
    mha = mp.Attention(dim, n_heads, head_dim, n_heads)
    x = torch.randn(6, dim)
    angles = mp.rope_angles_1d(torch.arange(6), head_dim, 1e9)
    mask = mp.causal_mask(6, 6)

    def mha_output(expand):
        with torch.no_grad():
            mha.wq.weight.copy_(gqa.wq.weight)
            mha.wo.weight.copy_(gqa.wo.weight)
            for name in ("wk", "wv"):
                per_head = getattr(gqa, name).weight.view(n_kv_heads, head_dim, dim)
                getattr(mha, name).weight.copy_(expand(per_head).reshape(-1, dim))
            return mha(x, angles, mask)

    with torch.no_grad():
        expected = gqa(x, angles, mask)
    group = n_heads // n_kv_heads
    assert torch.allclose(mha_output(lambda w: w.repeat_interleave(group, 0)), expected, atol=1e-6)
    assert not torch.allclose(mha_output(lambda w: w.repeat(group, 1, 1)), expected, atol=1e-3)


# --- the real configuration, on the meta device --------------------------------------------
CHECKPOINT = [  # (name pattern, count, shape): PIXTRAL.md §2.1
    (r"tok_embeddings\.weight", 1, (131072, 5120)),
    (r"layers\.\d+\.attention\.wq\.weight", 40, (4096, 5120)),
    (r"layers\.\d+\.attention\.w[kv]\.weight", 80, (1024, 5120)),
    (r"layers\.\d+\.attention\.wo\.weight", 40, (5120, 4096)),
    (r"layers\.\d+\.(attention_norm|ffn_norm)\.weight", 80, (5120,)),
    (r"layers\.\d+\.feed_forward\.w[13]\.weight", 80, (14336, 5120)),
    (r"layers\.\d+\.feed_forward\.w2\.weight", 40, (5120, 14336)),
    (r"norm\.weight", 1, (5120,)),
    (r"output\.weight", 1, (131072, 5120)),
    (r"vision_encoder\.patch_conv\.weight", 1, (1024, 3, 16, 16)),
    (r"vision_encoder\.ln_pre\.weight", 1, (1024,)),
    (r"vision_encoder\.transformer\.layers\.\d+\.attention\.w[qkvo]\.weight", 96, (1024, 1024)),
    (r"vision_encoder\.transformer\.layers\.\d+\.(attention_norm|ffn_norm)\.weight", 48, (1024,)),
    (r"vision_encoder\.transformer\.layers\.\d+\.feed_forward\.w[13]\.weight", 48, (4096, 1024)),
    (r"vision_encoder\.transformer\.layers\.\d+\.feed_forward\.w2\.weight", 24, (1024, 4096)),
    (r"vision_language_adapter\.w_in\.weight", 1, (5120, 1024)),
    (r"vision_language_adapter\.w_in\.bias", 1, (5120,)),
    (r"vision_language_adapter\.w_out\.weight", 1, (5120, 5120)),
    (r"vision_language_adapter\.w_out\.bias", 1, (5120,)),
]


@pytest.fixture(scope="module")
def real_on_meta():
    with torch.device("meta"):
        return mp.Pixtral(mp.PixtralConfig())


def test_real_config_size(real_on_meta):
    assert all(p.is_meta for p in real_on_meta.parameters())
    assert sum(p.numel() for p in real_on_meta.parameters()) == 12_682_739_712
    assert len(real_on_meta.state_dict()) == 585
    parts = {}
    for name, parameter in real_on_meta.named_parameters():
        parts[name.split(".")[0]] = parts.get(name.split(".")[0], 0) + parameter.numel()
    assert parts == {"tok_embeddings": 671_088_640, "layers": 10_905_600_000, "norm": 5120,
                     "output": 671_088_640, "vision_encoder": 403_489_792,
                     "vision_language_adapter": 31_467_520}


def test_real_config_names_and_shapes(real_on_meta):
    state = real_on_meta.state_dict()
    found = [0] * len(CHECKPOINT)
    for key, tensor in state.items():
        rows = [i for i, (pattern, _, _) in enumerate(CHECKPOINT) if re.fullmatch(pattern, key)]
        assert len(rows) == 1, f"{key} matches {len(rows)} checkpoint patterns"
        assert tuple(tensor.shape) == CHECKPOINT[rows[0]][2], key
        found[rows[0]] += 1
    assert found == [count for _, count, _ in CHECKPOINT]
    assert tuple(state["layers.39.attention.wq.weight"].shape) == (4096, 5120)
    assert tuple(state["layers.0.attention.wo.weight"].shape) == (5120, 4096)
    assert "layers.40.attention.wq.weight" not in state
    assert not any("bias" in k for k in state if not k.startswith("vision_language_adapter."))


# --- run_layers: the blocks that forward and the packed training loss share ---------------
def test_run_layers_is_forward_before_the_norm(decoder, prompt, decoder_logits):
    T = len(prompt)
    with torch.no_grad():
        h = decoder.tok_embeddings(prompt)
        hidden = decoder.run_layers(h, torch.arange(T), mp.causal_mask(T, T))
        assert hidden.shape == (T, decoder.config.dim)
        by_parts = decoder.output(decoder.norm(hidden))
        assert torch.equal(decoder.forward_embeddings(h), decoder_logits)
    assert torch.equal(by_parts, decoder_logits)


def test_run_layers_follows_its_mask(decoder, prompt, decoder_logits):
    """Negative controls: with every key visible (mask None), or with the block-causal mask
    of two packed halves, the logits of the rows that now see other keys change."""
    T = len(prompt)
    half = T // 2
    with torch.no_grad():
        h = decoder.tok_embeddings(prompt)
        unmasked = decoder.output(decoder.norm(decoder.run_layers(h, torch.arange(T))))
        halves = decoder.output(decoder.norm(decoder.run_layers(
            h, torch.arange(T), mp.block_causal_mask([half, T - half]))))
    scale = decoder_logits.abs().max()
    assert (unmasked - decoder_logits).abs().max() > 1e-2 * scale
    assert (halves[:half] - decoder_logits[:half]).abs().max() <= 1e-5 * scale  # same keys
    assert (halves[half:] - decoder_logits[half:]).abs().max() > 1e-2 * scale


# --- the causal mask ------------------------------------------------------------------------
def test_causal_mask_values():
    expected = torch.tensor([[1, 1, 1, 1, 0, 0],
                             [1, 1, 1, 1, 1, 0],
                             [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(mp.causal_mask(3, 6), expected)
    assert torch.equal(mp.causal_mask(5, 5), torch.ones(5, 5, dtype=torch.bool).tril())
    assert torch.equal(mp.causal_mask(1, 4), torch.ones(1, 4, dtype=torch.bool))
    assert mp.causal_mask(3, 6).dtype == torch.bool


# --- bad input ------------------------------------------------------------------------------
def test_start_without_cache_is_refused(decoder, pixtral, prompt):
    with pytest.raises(ValueError, match="start > 0 needs the cache"):
        decoder(prompt[-1:], start=3)
    with pytest.raises(ValueError, match="start > 0 needs the cache"):
        pixtral(prompt[-1:], start=3)


def test_options_after_the_images_are_keyword_only(decoder, pixtral, prompt):
    cache = mp.new_cache(pixtral, len(prompt))
    with pytest.raises(TypeError):
        pixtral(prompt, [], 0, cache)
    with pytest.raises(TypeError):
        decoder(prompt, 3)
    with pytest.raises(TypeError):
        decoder.forward_embeddings(decoder.tok_embeddings(prompt), 0)
    assert cache[0].length == 0  # refused before any work
    with torch.no_grad():
        assert torch.equal(pixtral(prompt, [], start=0, cache=cache), pixtral(prompt))
    assert cache[0].length == len(prompt)


@pytest.mark.parametrize("ids", [torch.tensor([1, 3, 131072, 4]), torch.tensor([1, -2, 4])],
                         ids=["too-large", "negative"])
def test_bad_ids_are_refused_on_a_prefill_with_a_cache(pixtral, ids):
    cache = mp.new_cache(pixtral, 8)
    with pytest.raises(ValueError, match=r"must lie in \[0, 131072\)"):
        pixtral(ids, cache=cache)
    assert cache[0].length == 0


@pytest.mark.parametrize("what, ids, message", [
    ("2-D", torch.tensor([[1, 3, 1000, 4]]), r"1-D LongTensor.*shape \(1, 4\)"),
    ("float", torch.tensor([1.0, 3.0, 4.0]), r"1-D LongTensor.*float32"),
    ("too large", torch.tensor([1, 3, 131072, 4]), r"must lie in \[0, 131072\)"),
    ("negative", torch.tensor([1, -2, 4]), r"must lie in \[0, 131072\)"),
], ids=["2-D", "float", "too-large", "negative"])
def test_bad_input_ids(pixtral, what, ids, message):
    with pytest.raises(ValueError, match=message):
        pixtral(ids)


def test_too_long_for_the_context():
    model = mp.Pixtral(dataclasses.replace(CONFIG, vocab_size=100, max_seq_len=16)).eval()
    with torch.no_grad():
        assert model(torch.ones(16, dtype=torch.long)).shape == (16, 100)
        with pytest.raises(ValueError, match="17 tokens do not fit the context of 16"):
            model(torch.ones(17, dtype=torch.long))


# --- memory linear in the prompt: no [T, T] mask; a prefill in chunks ------------------------

@pytest.mark.parametrize("chunk", [1, 4, 9, 64])
def test_chunked_prefill_equals_one_pass_and_llava(pixtral, llava, tokenizer, chunk):
    """Chunks of 4 and 9 cut through the [IMG] blocks of two images; the images are encoded
    once, before the first chunk. Logits equal the one-pass prefill and transformers."""
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, (40, 70, 3), dtype=np.uint8),
              rng.integers(0, 256, (33, 20, 3), dtype=np.uint8)]
    ids, pixels = tokenizer.encode_chat("Compare them.", images=images)
    with torch.no_grad():
        whole = pixtral(torch.tensor(ids), pixels)
        cache = mp.new_cache(pixtral, len(ids))
        chunked = pixtral(torch.tensor(ids), pixels, cache=cache, chunk=chunk)
        last = pixtral(torch.tensor(ids), pixels, cache=mp.new_cache(pixtral, len(ids)),
                       chunk=chunk, last_only=True)
        pixel_values, image_sizes = hf_pixel_inputs(pixels)
        ref = llava(input_ids=torch.tensor([ids]), pixel_values=pixel_values,
                    image_sizes=image_sizes).logits[0]
    assert cache[0].length == len(ids)
    assert relative_error(chunked, whole) <= 1e-5 and relative_error(chunked, ref) <= 1e-5
    assert relative_error(last, chunked[-1:]) <= 1e-6


def test_chunk_needs_a_cache_and_a_positive_size(pixtral):
    ids = torch.arange(100, 120)
    with pytest.raises(ValueError, match="chunk must be an integer ≥ 1, with a cache; got 4 "
                                         "and no cache"):
        pixtral(ids, chunk=4)
    for bad in (0, -2, 2.5):
        with pytest.raises(ValueError, match=f"chunk must be an integer ≥ 1, with a cache; got {bad}"):
            pixtral(ids, cache=mp.new_cache(pixtral, 20), chunk=bad)


def test_a_chunked_prefill_too_long_for_the_context_fails_before_any_work(pixtral):
    short = dataclasses.replace(pixtral.config, max_seq_len=16)
    model = mp.Pixtral(short).eval()
    cache = mp.new_cache(model, 24)
    with pytest.raises(ValueError, match="20 tokens do not fit the context of 16"):
        model(torch.arange(100, 120), cache=cache, chunk=4)
    assert cache[0].length == 0                      # not a single chunk went through


def test_a_fresh_prefill_builds_no_square_mask(monkeypatch, decoder, prompt, decoder_logits):
    """From position 0 the decoder asks SDPA for its causal mode (no mask tensor); after
    cached tokens, a [chunk, S] mask. Negative control: the explicit mask gives the same
    logits, so only the memory differs."""
    built = []
    original = mp.decoder.causal_mask
    monkeypatch.setattr(mp.decoder, "causal_mask",
                        lambda *args, **kw: built.append(args[:2]) or original(*args, **kw))
    T = len(prompt)
    with torch.no_grad():
        assert torch.equal(decoder(prompt), decoder_logits) and built == []
        decoder(prompt, cache=mp.new_cache(decoder, T), chunk=5)
        explicit = decoder.output(decoder.norm(decoder.run_layers(
            decoder.tok_embeddings(prompt), torch.arange(T), original(T, T))))
    assert built == [(5, S) for S in range(10, T + 1, 5)] + ([(T % 5, T)] if T % 5 else [])
    assert relative_error(explicit, decoder_logits) <= 1e-6


def test_memory_grows_linearly_with_the_prompt(tmp_path):
    """A 16 384-token prefill of a tiny-width model in a fresh process: the peak resident
    memory grows by less than 0.3 GB (a [T, T] boolean mask alone would be 0.27 GB, and SDPA
    turns it into 1.07 GB of floats; before this change the prefill took +1.38 GB)."""
    script = tmp_path / "prefill.py"
    script.write_text(
        "import torch, minipixtral as mp\n"
        "from minipixtral.reference import tiny_config\n"
        "torch.set_num_threads(1)\n"
        "hwm = lambda: int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n"
        "model = mp.Pixtral(tiny_config()).eval()\n"
        "ids = torch.randint(1000, 100000, (16384,), generator=torch.Generator().manual_seed(0))\n"
        "with torch.inference_mode():\n"
        "    model(ids[:64], last_only=True)\n"
        "    before = hwm()\n"
        "    model(ids, cache=mp.new_cache(model, len(ids)), last_only=True)\n"
        "print((hwm() - before) / 1e6)\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.split()[-1]) < 0.3
