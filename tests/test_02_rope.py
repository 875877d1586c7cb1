"""Lesson 02: rotary position embeddings, against transformers and against their definitions.

- `rope_frequencies` is θ^(−2j/D) correctly rounded to float32, and within one ulp of
  transformers' tables (Mistral's and Pixtral's, which compute the power in float32);
- `rope_angles_1d` / `rope_angles_2d` equal the formulas written as loops;
- `apply_rope` equals multiplication by e^{iφ} of each pair seen as a complex number (the form
  of Mistral's reference code), keeps norms, works in float32 for bfloat16 inputs;
- the score after RoPE depends only on the position difference (1-D) or (Δrow, Δcol) (2-D);
  negative controls: another difference, or the flat 1-D index over a grid, changes it;
- `permute_qk_for_rotate_half` / `_from_` are inverse permutations with the documented formula;
- our RoPE in Mistral's layout, moved to the HF layout, equals transformers'
  `PixtralVisionRotaryEmbedding` and `MistralRotaryEmbedding` (+ `apply_rotary_pos_emb`):
  bit-for-bit up to float noise with the same frequency table, within p·ulp with transformers'
  own table; and the attention scores from permuted weights equal ours. Negative control:
  without the permutation the results are off by the size of the values.
"""
from __future__ import annotations

import pytest
import torch
from transformers import MistralConfig, PixtralVisionConfig
from transformers.models.mistral.modeling_mistral import MistralRotaryEmbedding
from transformers.models.mistral.modeling_mistral import apply_rotary_pos_emb as mistral_apply
from transformers.models.pixtral.modeling_pixtral import PixtralVisionRotaryEmbedding
from transformers.models.pixtral.modeling_pixtral import apply_rotary_pos_emb as pixtral_apply

from minipixtral.rope import (apply_rope, permute_qk_for_rotate_half, permute_qk_from_rotate_half,
                              rope_angles_1d, rope_angles_2d, rope_frequencies)

ULP = 2.0 ** -23          # float32 relative spacing at 1


def to_hf_layout(x: torch.Tensor) -> torch.Tensor:
    """Head vectors [..., D]: channel 2j + s → s·D/2 + j (what the weight permutation does to q, k)."""
    return x.unflatten(-1, (-1, 2)).transpose(-1, -2).flatten(-2)


def own_table_tolerance(max_position: int, scale: float) -> float:
    """Two float32 tables of f_j may differ by one ulp; at position p that moves an angle by
    ≤ p·f·(ulp + rounding of the product), hence an output by ≤ √2·|x|·p·2 ulp (+ cos/sin noise)."""
    return (2.9 * ULP * max_position + 1e-6) * scale


def vision_rotary(head_dim: int = 64, n_heads: int = 16, theta: float = 1e4,
                  our_table: bool = False) -> PixtralVisionRotaryEmbedding:
    rotary = PixtralVisionRotaryEmbedding(PixtralVisionConfig(
        hidden_size=n_heads * head_dim, num_attention_heads=n_heads, rope_theta=theta))
    if our_table:  # Pixtral's rotary keeps the row (even) frequencies first, then the odd ones
        f = rope_frequencies(head_dim, theta)
        rotary.inv_freq = torch.cat([f[0::2], f[1::2]])
    return rotary


def text_rotary(head_dim: int = 128, n_heads: int = 4, n_kv_heads: int = 2, theta: float = 1e9,
                our_table: bool = False) -> MistralRotaryEmbedding:
    config = MistralConfig(hidden_size=n_heads * head_dim, num_attention_heads=n_heads,
                           num_key_value_heads=n_kv_heads, head_dim=head_dim,
                           rope_parameters={"rope_type": "default", "rope_theta": theta},
                           max_position_embeddings=4096)
    rotary = MistralRotaryEmbedding(config)
    if our_table:
        rotary.inv_freq = rope_frequencies(head_dim, theta)
    return rotary


def grid_positions(height: int, width: int) -> torch.Tensor:
    """(row, col) of each patch, row-major: [h·w, 2], as transformers' Pixtral builds them."""
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([rows.flatten(), cols.flatten()], dim=-1)


def hf_rotate_2d(x: torch.Tensor, height: int, width: int, rotary) -> torch.Tensor:
    """transformers' Pixtral RoPE on HF-layout x [N, H, D] → [N, H, D]."""
    xh = x.transpose(0, 1)                                                    # [H, N, D]
    cos, sin = rotary(xh, grid_positions(height, width))
    out, _ = pixtral_apply(xh, xh, cos, sin, unsqueeze_dim=0)
    return out.transpose(0, 1)


def hf_rotate_1d(x: torch.Tensor, positions: torch.Tensor, rotary) -> torch.Tensor:
    """transformers' Mistral RoPE on HF-layout x [T, H, D] → [T, H, D]."""
    xh = x.transpose(0, 1)[None]                                              # [1, H, T, D]
    cos, sin = rotary(xh, positions[None])
    out, _ = mistral_apply(xh, xh, cos, sin)
    return out[0].transpose(0, 1)


# --- frequencies and angles -------------------------------------------------------------------
@pytest.mark.parametrize("head_dim,theta", [(64, 1e4), (128, 1e9), (16, 100.0), (2, 1e4)])
def test_frequencies_are_correctly_rounded(head_dim, theta):
    f = rope_frequencies(head_dim, theta)
    exact = theta ** -(torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    assert f.dtype == torch.float32 and f.shape == (head_dim // 2,)
    assert f[0] == 1.0
    assert torch.equal(f, exact.float())
    assert bool((f[1:] < f[:-1]).all())


def test_frequencies_odd_head_dim_raises():
    with pytest.raises(ValueError, match="even"):
        rope_frequencies(63, 1e4)


def test_frequencies_within_one_ulp_of_transformers():
    for ours, theirs in [
            (rope_frequencies(128, 1e9), text_rotary().inv_freq),
            (rope_frequencies(64, 1e4)[[*range(0, 32, 2), *range(1, 32, 2)]], vision_rotary().inv_freq)]:
        relative = ((ours - theirs) / ours).abs()
        assert relative.max() <= ULP, relative.max()


def test_angles_1d_is_positions_times_frequencies():
    positions = torch.tensor([0, 1, 5, 127, 4095, 131071])
    angles = rope_angles_1d(positions, 128, 1e9)
    f = rope_frequencies(128, 1e9)
    assert angles.shape == (6, 64) and angles.dtype == torch.float32
    for t, p in enumerate(positions.tolist()):
        assert torch.equal(angles[t], p * f)


@pytest.mark.parametrize("height,width", [(1, 1), (2, 3), (3, 2), (1, 64), (64, 1), (7, 5), (64, 64)])
def test_angles_2d_equals_double_loop(height, width):
    head_dim, theta = 64, 1e4
    f = rope_frequencies(head_dim, theta)
    table = rope_angles_2d(height, width, head_dim, theta)
    assert table.shape == (height * width, head_dim // 2)
    for r in range(height):
        for c in range(width):
            assert torch.equal(table[r * width + c], torch.cat([r * f[0::2], c * f[1::2]])), (r, c)


def test_angles_2d_positions_restart_per_image():
    # pair 0 turns with f_0 = 1 per row, pair D/4 with f_1 per column: read the positions back
    f = rope_frequencies(64, 1e4)
    table = torch.cat([rope_angles_2d(2, 3, 64, 1e4), rope_angles_2d(1, 2, 64, 1e4)])
    assert (table[:, 0] / f[0]).round().int().tolist() == [0, 0, 0, 1, 1, 1, 0, 0]
    assert (table[:, 16] / f[1]).round().int().tolist() == [0, 1, 2, 0, 1, 2, 0, 1]


# --- apply_rope ---------------------------------------------------------------------------------
def test_apply_rope_equals_complex_multiplication():
    torch.manual_seed(0)
    x = torch.randn(9, 3, 64)
    angles = rope_angles_1d(torch.tensor([0, 1, 2, 3, 10, 63, 100, 1000, 4095]), 64, 1e4)
    z = torch.view_as_complex(x.unflatten(-1, (-1, 2)).contiguous())
    expected = torch.view_as_real(z * torch.polar(torch.ones_like(angles), angles)[:, None]).flatten(-2)
    assert (apply_rope(x, angles) - expected).abs().max() <= 1e-6 * x.abs().max()


def test_apply_rope_preserves_norms_and_position_zero():
    torch.manual_seed(1)
    x = torch.randn(64, 4, 128)
    angles = rope_angles_1d(torch.arange(64) * 997, 128, 1e9)
    out = apply_rope(x, angles)
    assert torch.allclose(out.norm(dim=-1), x.norm(dim=-1), rtol=2e-6)
    pairs_in, pairs_out = x.unflatten(-1, (-1, 2)).norm(dim=-1), out.unflatten(-1, (-1, 2)).norm(dim=-1)
    assert torch.allclose(pairs_out, pairs_in, rtol=1e-5, atol=1e-6)
    assert torch.equal(out[0], x[0])                      # position 0: every angle is 0
    assert not torch.allclose(out[1:], x[1:], atol=1e-2)  # control: the others do move


def test_apply_rope_bfloat16_computes_in_float32():
    torch.manual_seed(2)
    x = torch.randn(16, 2, 64).bfloat16()
    angles = rope_angles_1d(torch.arange(16) + 100_000, 64, 1e9)
    out = apply_rope(x, angles)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, apply_rope(x.float(), angles).bfloat16())


def test_apply_rope_leading_dimensions():
    torch.manual_seed(3)
    x = torch.randn(2, 5, 3, 16)                          # [B, T, H, D]: angles broadcast over B
    angles = rope_angles_2d(1, 5, 16, 1e4)
    assert torch.equal(apply_rope(x, angles)[1], apply_rope(x[1], angles))


# --- the relative-position property -------------------------------------------------------------
def _score(q, k, angle_q, angle_k):
    return (apply_rope(q, angle_q[None]) * apply_rope(k, angle_k[None])).sum().item()


def test_relative_shift_1d():
    torch.manual_seed(4)
    q, k = torch.randn(1, 1, 128), torch.randn(1, 1, 128)
    scale = (q.norm() * k.norm()).item()
    angles = rope_angles_1d(torch.arange(300), 128, 1e9)
    for delta in [-9, 0, 1, 7, 50]:
        reference = _score(q, k, angles[60], angles[60 + delta])
        for m in [0, 13, 100, 240]:
            if 0 <= m + delta < 300:
                assert abs(_score(q, k, angles[m], angles[m + delta]) - reference) <= 1e-5 * scale
    # negative control: another difference gives another score
    assert abs(_score(q, k, angles[60], angles[61]) - _score(q, k, angles[60], angles[62])) > 1e-2 * scale


def test_relative_shift_2d_independent_of_position_and_width():
    torch.manual_seed(5)
    q, k = torch.randn(1, 1, 64), torch.randn(1, 1, 64)
    scale = (q.norm() * k.norm()).item()
    tables = {w: rope_angles_2d(64, w, 64, 1e4) for w in (16, 33, 64)}

    def score(width, a, b):
        return _score(q, k, tables[width][a[0] * width + a[1]], tables[width][b[0] * width + b[1]])

    for dr, dc in [(0, 1), (1, 0), (3, -2), (-4, 0), (7, 9)]:
        reference = score(16, (10, 5), (10 + dr, 5 + dc))
        for width in tables:
            for r, c in [(0, 2), (5, 7), (40, 3), (50, 15)]:
                if 0 <= r + dr < 64 and 0 <= c + dc < width:
                    assert abs(score(width, (r, c), (r + dr, c + dc)) - reference) <= 1e-5 * scale
    # negative controls: (1, 0) ≠ (0, 1); and a flat 1-D index r·W + c makes "one row down"
    # depend on the width
    assert abs(score(16, (3, 3), (4, 3)) - score(16, (3, 3), (3, 4))) > 1e-2 * scale
    flat = rope_angles_1d(torch.arange(64 * 64), 64, 1e4)
    assert abs(_score(q, k, flat[3 * 16 + 3], flat[4 * 16 + 3])
               - _score(q, k, flat[3 * 33 + 3], flat[4 * 33 + 3])) > 1e-2 * scale


# --- the permutation ------------------------------------------------------------------------------
@pytest.mark.parametrize("n_heads,head_dim", [(1, 2), (2, 8), (16, 64), (8, 128)])
def test_permutation_formula_and_inverse(n_heads, head_dim):
    torch.manual_seed(6)
    w = torch.randn(n_heads * head_dim, 5)
    hf = permute_qk_for_rotate_half(w, n_heads)
    for h in range(n_heads):
        for j in range(head_dim // 2):
            for s in (0, 1):
                assert torch.equal(hf[h * head_dim + s * head_dim // 2 + j], w[h * head_dim + 2 * j + s])
    assert torch.equal(permute_qk_from_rotate_half(hf, n_heads), w)
    assert torch.equal(permute_qk_for_rotate_half(permute_qk_from_rotate_half(w, n_heads), n_heads), w)
    if head_dim > 2:  # control: the permutation does move rows
        assert not torch.equal(hf, w)


def test_permuted_vectors_keep_dot_products():
    torch.manual_seed(7)
    q, k = torch.randn(6, 4, 64), torch.randn(6, 4, 64)
    assert torch.allclose((to_hf_layout(q) * to_hf_layout(k)).sum(-1), (q * k).sum(-1), atol=1e-5)


def test_weight_permutation_is_the_vector_layout_change():
    torch.manual_seed(8)
    n_heads, head_dim, dim = 4, 32, 48
    w, x = torch.randn(n_heads * head_dim, dim), torch.randn(7, dim)
    q_mistral = (x @ w.T).view(7, n_heads, head_dim)
    q_hf = (x @ permute_qk_for_rotate_half(w, n_heads).T).view(7, n_heads, head_dim)
    assert torch.equal(q_hf, to_hf_layout(q_mistral))


# --- against transformers ---------------------------------------------------------------------------
@pytest.mark.parametrize("our_table", [True, False], ids=["same-table", "hf-table"])
def test_2d_equals_transformers_pixtral(our_table):
    torch.manual_seed(9)
    height, width, n_heads, head_dim = 64, 64, 4, 64      # the largest image: 64 patches a side
    x = torch.randn(height * width, n_heads, head_dim)
    ours = to_hf_layout(apply_rope(x, rope_angles_2d(height, width, head_dim, 1e4)))
    theirs = hf_rotate_2d(to_hf_layout(x), height, width, vision_rotary(head_dim, n_heads, 1e4, our_table))
    scale = x.abs().max().item()
    tolerance = 1e-6 * scale if our_table else own_table_tolerance(63, scale)
    assert (ours - theirs).abs().max() <= tolerance


@pytest.mark.parametrize("height,width", [(1, 1), (3, 7), (17, 2), (1, 64)])
def test_2d_equals_transformers_pixtral_shapes(height, width):
    torch.manual_seed(10)
    x = torch.randn(height * width, 2, 16)
    ours = to_hf_layout(apply_rope(x, rope_angles_2d(height, width, 16, 1e4)))
    theirs = hf_rotate_2d(to_hf_layout(x), height, width, vision_rotary(16, 2, 1e4, our_table=True))
    assert (ours - theirs).abs().max() <= 1e-6 * x.abs().max()


@pytest.mark.parametrize("our_table", [True, False], ids=["same-table", "hf-table"])
def test_1d_equals_transformers_mistral(our_table):
    torch.manual_seed(11)
    T, n_heads, head_dim = 2048, 2, 128
    positions = torch.arange(T)
    x = torch.randn(T, n_heads, head_dim)
    ours = to_hf_layout(apply_rope(x, rope_angles_1d(positions, head_dim, 1e9)))
    theirs = hf_rotate_1d(to_hf_layout(x), positions, text_rotary(head_dim, n_heads, n_heads, 1e9, our_table))
    scale = x.abs().max().item()
    tolerance = 1e-6 * scale if our_table else own_table_tolerance(T - 1, scale)
    assert (ours - theirs).abs().max() <= tolerance


def test_1d_equals_transformers_mistral_large_positions_same_table():
    torch.manual_seed(12)
    positions = torch.tensor([0, 1, 4095, 65_536, 127_999, 131_071])
    x = torch.randn(len(positions), 2, 128)
    ours = to_hf_layout(apply_rope(x, rope_angles_1d(positions, 128, 1e9)))
    theirs = hf_rotate_1d(to_hf_layout(x), positions, text_rotary(128, 2, 2, 1e9, our_table=True))
    assert (ours - theirs).abs().max() <= 1e-6 * x.abs().max()


def test_negative_control_without_permutation():
    torch.manual_seed(13)
    x = torch.randn(8 * 8, 2, 64)
    ours = to_hf_layout(apply_rope(x, rope_angles_2d(8, 8, 64, 1e4)))
    wrong = to_hf_layout(hf_rotate_2d(x, 8, 8, vision_rotary(64, 2, 1e4, our_table=True)))
    assert (ours - wrong).abs().max() > 0.5 * x.abs().max()
    x = torch.randn(100, 2, 128)
    ours = to_hf_layout(apply_rope(x, rope_angles_1d(torch.arange(100), 128, 1e9)))
    wrong = to_hf_layout(hf_rotate_1d(x, torch.arange(100), text_rotary(128, 2, 2, 1e9, our_table=True)))
    assert (ours - wrong).abs().max() > 0.5 * x.abs().max()


@pytest.mark.parametrize("permute", [True, False], ids=["permuted", "unpermuted-control"])
def test_attention_scores_from_permuted_weights_equal_transformers(permute):
    """Mistral-layout wq/wk, our RoPE → scores; the same weights permuted (or not, as the
    negative control), transformers' RoPE → scores. GQA: wk has its own (smaller) head count."""
    torch.manual_seed(14)
    T, n_heads, n_kv_heads, head_dim, dim = 24, 4, 2, 128, 64
    w_q = torch.randn(n_heads * head_dim, dim) / dim**0.5
    w_k = torch.randn(n_kv_heads * head_dim, dim) / dim**0.5
    x = torch.randn(T, dim)
    angles = rope_angles_1d(torch.arange(T), head_dim, 1e9)
    q = apply_rope((x @ w_q.T).view(T, n_heads, head_dim), angles)
    k = apply_rope((x @ w_k.T).view(T, n_kv_heads, head_dim), angles).repeat_interleave(2, dim=1)
    ours = torch.einsum("thd,shd->hts", q, k)

    convert = permute_qk_for_rotate_half if permute else (lambda w, n: w)
    rotary = text_rotary(head_dim, n_heads, n_kv_heads, 1e9)
    q_hf = (x @ convert(w_q, n_heads).T).view(T, n_heads, head_dim).transpose(0, 1)[None]
    k_hf = (x @ convert(w_k, n_kv_heads).T).view(T, n_kv_heads, head_dim).transpose(0, 1)[None]
    cos, sin = rotary(q_hf, torch.arange(T)[None])
    q_hf, k_hf = mistral_apply(q_hf, k_hf, cos, sin)
    theirs = torch.einsum("htd,hsd->hts", q_hf[0], k_hf[0].repeat_interleave(2, dim=0))
    error = (ours - theirs).abs().max().item()
    scale = ours.abs().max().item()
    if permute:
        assert error <= 1e-5 * scale, error
    else:
        assert error > 0.1 * scale, error
