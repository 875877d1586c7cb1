"""Lesson 03: the vision encoder equals transformers' PixtralVisionModel on the same weights.

A vision encoder 64 wide (4 heads of 16, 2 blocks: tiny_config's, widened), random
weights large enough to matter, float32, eager attention. Errors are measured relative to the
output scale.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import minipixtral as mp
from minipixtral.reference import (hf_pixel_inputs, hf_vision_config, hf_vision_model,
                                   randomize, relative_error, tiny_config,
                                   vision_state_dict_to_hf)
from minipixtral.layers import _attend
from minipixtral.rope import permute_qk_for_rotate_half

TOLERANCE = 1e-5  # max abs error / max abs output
# 64 wide, 4 heads of 16, 2 blocks; Pixtral-12B's 16-pixel patches
TINY = dataclasses.replace(tiny_config().vision_encoder, hidden_size=64, intermediate_size=128,
                           num_attention_heads=4)
STD = 0.1  # matrices N(0, 0.1²), gains 1 + N(0, 0.1²): features of order 1-5, every gain ≠ 1


def noise_image(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def encoder():
    return randomize(mp.VisionEncoder(TINY), std=STD)


@pytest.fixture(scope="module")
def reference(encoder):
    return hf_vision_model(encoder)


@pytest.fixture(scope="module")
def images():
    """Three images of different sizes, through load_image: 48×80, 32×48, 64×64 pixels."""
    return [mp.load_image(noise_image(w, h, seed)) for seed, (w, h)
            in enumerate([(70, 40), (33, 17), (64, 64)])]


def run_reference(model, images):
    pixels, sizes = hf_pixel_inputs(images)
    with torch.no_grad():
        return model(pixels, image_sizes=sizes).last_hidden_state[0]


# --- against transformers -----------------------------------------------------------------
def test_one_image(encoder, reference):
    image = mp.load_image(noise_image(70, 40, seed=10))
    assert image.shape == (3, 48, 80)
    with torch.no_grad():
        got = encoder([image])
    expected = run_reference(reference, [image])
    assert got.shape == (15, 64)
    assert expected.abs().max() > 1  # the weights give a real signal, not ~0
    assert relative_error(got, expected) <= TOLERANCE


def test_oversize_image(encoder, reference):
    image = mp.load_image(noise_image(1500, 600, seed=11))
    assert image.shape == (3, 416, 1024)
    with torch.no_grad():
        got = encoder([image])
    assert got.shape == (26 * 64, 64)
    assert relative_error(got, run_reference(reference, [image])) <= TOLERANCE


def test_three_images_in_one_call(encoder, reference, images):
    with torch.no_grad():
        got = encoder(images)
    assert got.shape == (15 + 6 + 16, 64)
    assert relative_error(got, run_reference(reference, images)) <= TOLERANCE


def test_images_do_not_see_each_other(encoder, images):
    with torch.no_grad():
        together = encoder(images)
        alone = [encoder([image]) for image in images]
    scale = together.abs().max()
    for part, single in zip(together.split([len(a) for a in alone]), alone):
        assert (part - single).abs().max() <= TOLERANCE * scale


def test_without_the_mask_images_would_see_each_other(encoder, images):
    """Negative control for the test above: the same sequence with mask=None differs."""
    c = encoder.config
    with torch.no_grad():
        x = torch.cat([encoder.patch_conv(i[None])[0].flatten(1).T for i in images])
        angles = torch.cat([mp.rope_angles_2d(*encoder.patch_grid(i), c.head_dim, c.rope_theta)
                            for i in images])
        unmasked = encoder.transformer(encoder.ln_pre(x), angles, mask=None)
        masked = encoder.transformer(encoder.ln_pre(x), angles,
                                     mp.block_diagonal_mask([15, 6, 16]))
        first_alone = encoder([images[0]])
    assert (masked - encoder(images)).abs().max() <= TOLERANCE * masked.abs().max()
    assert (unmasked[:15] - first_alone).abs().max() > 0.05 * first_alone.abs().max()


def test_without_the_qk_permutation_transformers_differs(encoder, images):
    """Negative control: our wq/wk loaded into transformers as they are (wrong RoPE layout)."""
    from transformers import PixtralVisionModel
    n_heads = encoder.config.num_attention_heads
    state = vision_state_dict_to_hf(encoder.state_dict(), n_heads)
    for name, tensor in encoder.state_dict().items():
        if name.endswith(("attention.wq.weight", "attention.wk.weight")):
            hf_name = name.replace(".wq.", ".q_proj.").replace(".wk.", ".k_proj.")
            assert torch.equal(state[hf_name], permute_qk_for_rotate_half(tensor, n_heads))
            state[hf_name] = tensor
    wrong = PixtralVisionModel(hf_vision_config(encoder.config)).eval()
    wrong.load_state_dict(state, strict=True)
    with torch.no_grad():
        got = encoder(images)
    assert relative_error(got, run_reference(wrong, images)) > 0.01


def test_with_gelu_transformers_differs(encoder, images):
    """Negative control: transformers' default hidden_act="gelu" is not Pixtral's SiLU."""
    from transformers import PixtralVisionModel
    config = hf_vision_config(encoder.config)
    config.hidden_act = "gelu"
    wrong = PixtralVisionModel(config).eval()
    wrong.load_state_dict(hf_vision_model(encoder).state_dict(), strict=True)
    with torch.no_grad():
        got = encoder(images)
    assert relative_error(got, run_reference(wrong, images)) > 0.01


# --- the building blocks ------------------------------------------------------------------
def test_rms_norm_equals_torch_and_keeps_float16_finite():
    norm = randomize(mp.RMSNorm(32), std=STD)
    x = 50 * torch.randn(3, 7, 32, generator=torch.Generator().manual_seed(0)) + 20
    with torch.no_grad():
        assert torch.allclose(norm(x), F.rms_norm(x, (32,), norm.weight, 1e-5), atol=1e-5)
        x16 = (300 * torch.randn(4, 32, generator=torch.Generator().manual_seed(1))).half()
        y16 = mp.RMSNorm(32).half()(x16)
        assert y16.dtype == torch.float16 and torch.isfinite(y16).all()
        assert torch.allclose(y16.float(), F.rms_norm(x16.float(), (32,), eps=1e-5),
                              atol=2e-3, rtol=2e-3)


def test_attention_equals_explicit_softmax_with_mask():
    attn = randomize(mp.Attention(64, n_heads=4, head_dim=16), std=STD)
    grids = [(3, 4), (2, 5), (1, 3)]
    angles = torch.cat([mp.rope_angles_2d(r, c, 16, 1e4) for r, c in grids])
    mask = mp.block_diagonal_mask([r * c for r, c in grids])
    x = torch.randn(len(angles), 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        q = mp.apply_rope(attn.wq(x).view(-1, 4, 16), angles).transpose(0, 1)
        k = mp.apply_rope(attn.wk(x).view(-1, 4, 16), angles).transpose(0, 1)
        v = attn.wv(x).view(-1, 4, 16).transpose(0, 1)
        weights = (q @ k.transpose(1, 2) / 4).masked_fill(~mask, float("-inf")).softmax(-1)
        explicit = attn.wo((weights @ v).transpose(0, 1).reshape(-1, 64))
        assert torch.allclose(attn(x, angles, mask), explicit, atol=1e-5)
        assert not torch.allclose(attn(x, angles), explicit, atol=1e-2)  # the mask matters


def test_feed_forward_equals_transformers_mlp():
    from transformers import PixtralVisionConfig
    from transformers.models.pixtral.modeling_pixtral import PixtralMLP
    ffn = randomize(mp.FeedForward(64, 128), std=STD)
    theirs = PixtralMLP(PixtralVisionConfig(hidden_size=64, intermediate_size=128,
                                            hidden_act="silu"))
    theirs.load_state_dict({"gate_proj.weight": ffn.w1.weight, "up_proj.weight": ffn.w3.weight,
                            "down_proj.weight": ffn.w2.weight})
    x = torch.randn(10, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(ffn(x), theirs(x), atol=1e-5)


def test_block_diagonal_mask_equals_transformers():
    from transformers.models.pixtral.modeling_pixtral import generate_block_attention_mask
    lengths = [36, 15, 1, 4]
    additive = generate_block_attention_mask(lengths, torch.zeros(1, sum(lengths), 1))[0, 0]
    mask = mp.block_diagonal_mask(lengths)
    assert mask.dtype == torch.bool and torch.equal(mask, additive == 0)


def test_attention_rejects_bad_head_counts():
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        mp.Attention(64, n_heads=4, head_dim=16, n_kv_heads=3)


# --- names, sizes, loading ----------------------------------------------------------------
def checkpoint_shapes(c: mp.VisionConfig) -> dict[str, tuple[int, ...]]:
    """The vision encoder's tensors in consolidated.safetensors (PIXTRAL.md §2.1), without
    the full model's prefix `vision_encoder.`."""
    d, f = c.hidden_size, c.intermediate_size
    shapes = {"patch_conv.weight": (d, c.num_channels, c.patch_size, c.patch_size),
              "ln_pre.weight": (d,)}
    for i in range(c.num_hidden_layers):
        layer = f"transformer.layers.{i}."
        shapes |= {layer + f"attention.w{x}.weight": (d, d) for x in "qkvo"}
        shapes |= {layer + "attention_norm.weight": (d,), layer + "ffn_norm.weight": (d,),
                   layer + "feed_forward.w1.weight": (f, d),
                   layer + "feed_forward.w2.weight": (d, f),
                   layer + "feed_forward.w3.weight": (f, d)}
    return shapes


def test_real_config_on_meta_device():
    with torch.device("meta"):
        real = mp.VisionEncoder(mp.VisionConfig())
    assert all(p.is_meta for p in real.parameters())
    assert sum(p.numel() for p in real.parameters()) == 403_489_792
    assert {k: tuple(v.shape) for k, v in real.state_dict().items()} == \
        checkpoint_shapes(mp.VisionConfig())
    assert len(real.state_dict()) == 2 + 24 * 9


def test_strict_state_dict_round_trip(encoder, images):
    state = encoder.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == checkpoint_shapes(encoder.config)
    with torch.device("meta"):
        fresh = mp.VisionEncoder(TINY)
    fresh.load_state_dict(state, strict=True, assign=True)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(images), encoder(images))
    renamed = {k.replace("feed_forward.w1.", "feed_forward.gate_proj."): v
               for k, v in state.items()}
    with pytest.raises(RuntimeError, match="gate_proj"):
        mp.VisionEncoder(TINY).load_state_dict(renamed, strict=True)


# --- bad inputs ---------------------------------------------------------------------------
@pytest.mark.parametrize("images, message", [
    ([torch.zeros(1, 32, 32)], r"must be a \[3, H, W\] tensor"),
    ([torch.zeros(32, 32)], r"must be a \[3, H, W\] tensor"),
    ([torch.zeros(3, 40, 32)], "not a positive multiple of the patch size 16"),
    ([torch.zeros(3, 0, 32)], "not a positive multiple of the patch size 16"),
    ([torch.zeros(3, 16, 1040)], "exceeds the model's maximum side of 1024"),
    ([torch.zeros(3, 32, 32), torch.zeros(3, 32, 24)], "not a positive multiple"),
    ([], "no image given"),
], ids=["grayscale", "no channel dim", "not multiple of 16", "zero height", "too large",
        "second image bad", "empty list"])
def test_bad_inputs(encoder, images, message):
    with pytest.raises(ValueError, match=message):
        encoder(images)


def test_segments_equal_the_block_diagonal_mask():
    torch.manual_seed(0)
    lengths = [36, 15, 4]
    q = torch.randn(sum(lengths), 4, 8)
    k, v = torch.randn(2, sum(lengths), 2, 8).unbind(0)            # GQA: 4 query, 2 kv heads
    with_mask = _attend(q, k, v, mp.block_diagonal_mask(lengths))
    assert torch.allclose(_attend(q, k, v, segments=lengths), with_mask, atol=1e-6)
    assert not torch.allclose(_attend(q, k, v), with_mask, atol=1e-3)  # negative control
    causal = mp.causal_mask(sum(lengths), sum(lengths))
    assert torch.allclose(_attend(q, k, v, causal=True), _attend(q, k, v, causal), atol=1e-6)
    with pytest.raises(ValueError, match="segments is a pattern of its own"):
        _attend(q, k, v, with_mask, segments=lengths)


def test_causal_segments_equal_the_block_causal_mask():
    torch.manual_seed(0)
    lengths = [7, 12, 5]
    q = torch.randn(sum(lengths), 4, 8)
    k, v = torch.randn(2, sum(lengths), 2, 8).unbind(0)
    block_causal = mp.block_diagonal_mask(lengths) & mp.causal_mask(sum(lengths), sum(lengths))
    expected = _attend(q, k, v, block_causal)
    assert torch.allclose(_attend(q, k, v, causal=True, segments=lengths), expected, atol=1e-6)
    assert not torch.allclose(_attend(q, k, v, segments=lengths), expected, atol=1e-3)  # control


def test_encoder_attends_one_image_at_a_time(monkeypatch):
    """Several images: no SDPA call sees more keys than the largest image has patches, and
    no mask is passed (memory N × one image, not (Σ patches)²)."""
    import minipixtral.layers as layers

    calls = []
    sdpa = layers.F.scaled_dot_product_attention
    monkeypatch.setattr(layers.F, "scaled_dot_product_attention", lambda q, k, v, **kw:
                        calls.append((k.shape[2], kw.get("attn_mask"))) or sdpa(q, k, v, **kw))
    config = mp.VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=2)
    encoder = mp.VisionEncoder(config).eval()
    images = [torch.rand(3, 96, 64), torch.rand(3, 48, 80), torch.rand(3, 16, 16)]
    with torch.no_grad():
        together = encoder(images)
        alone = [encoder([image]) for image in images]
    assert sorted({n for n, _ in calls}) == [1, 15, 24] and all(m is None for _, m in calls)
    assert torch.allclose(together, torch.cat(alone), atol=1e-5)
