"""Lesson 05: the adapter and the merge, against transformers' Llava on the same weights.

- the adapter equals LlavaMultiModalProjector (w_in → linear_1, w_out → linear_2);
- its GELU is the exact (erf) one, and the tanh approximation would be caught;
- Pixtral.embed (token embeddings + adapted patches at the [IMG] positions) equals the input
  of Llava's first decoder layer for 0, 1 and 3 images, checked row by row too;
- a per-image [IMG]/patch count mismatch raises a ValueError with both numbers;
- features land image by image, in order.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import minipixtral as mp
from minipixtral.reference import hf_pixel_inputs, randomize, relative_error, tiny_config

IDS = mp.ImageTokenIds(img=10, img_break=12, img_end=13)


def _photo(rng, width, height):
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def model():
    """tiny_config (decoder 64 wide, vision 32), seeded random weights; conftest.py's
    hf_model holds the same weights in transformers' Llava."""
    return randomize(mp.Pixtral(tiny_config()))


@pytest.fixture(scope="module")
def photos():
    rng = np.random.default_rng(0)
    # 70×40 → 3×5 patches, 64×64 → 4×4, 50×30 → 2×4 (width × height)
    return [_photo(rng, 70, 40), _photo(rng, 64, 64), _photo(rng, 50, 30)]


# --- the adapter ---------------------------------------------------------------------------
def test_adapter_names_shapes_and_real_size():
    with torch.device("meta"):
        adapter = mp.VisionLanguageAdapter(1024, 5120)
    shapes = {name: tuple(p.shape) for name, p in adapter.named_parameters()}
    assert shapes == {"w_in.weight": (5120, 1024), "w_in.bias": (5120,),
                      "w_out.weight": (5120, 5120), "w_out.bias": (5120,)}
    assert sum(p.numel() for p in adapter.parameters()) == 31_467_520


def test_adapter_bias_are_the_only_biases(model):
    biases = [name for name in model.state_dict() if name.endswith("bias")]
    assert biases == ["vision_language_adapter.w_in.bias", "vision_language_adapter.w_out.bias"]
    no_bias = mp.VisionLanguageAdapter(32, 64, bias=False)
    assert no_bias.w_in.bias is None and no_bias.w_out.bias is None


def test_adapter_equals_hf_projector(model, hf_model):
    torch.manual_seed(1)
    v = 3 * torch.randn(200, 32)
    with torch.no_grad():
        ours = model.vision_language_adapter(v)
        theirs = hf_model.model.multi_modal_projector(v)
    assert ours.shape == (200, 64)
    assert relative_error(ours, theirs) <= 1e-6


def test_gelu_is_exact_not_tanh(model, hf_model):
    adapter = model.vision_language_adapter
    torch.manual_seed(2)
    v = 3 * torch.randn(200, 32)
    with torch.no_grad():
        ours = adapter(v)
        hidden = adapter.w_in(v)
        exact = adapter.w_out(hidden / 2 * (1 + torch.erf(hidden / 2 ** 0.5)))
        tanh = adapter.w_out(F.gelu(hidden, approximate="tanh"))
        theirs = hf_model.model.multi_modal_projector(v)
    assert relative_error(ours, exact) <= 1e-6
    # negative control: the tanh GELU is far outside the tolerance we hold the adapter to
    assert relative_error(tanh, theirs) > 1e-5
    assert relative_error(tanh, ours) > 1e-5
    x = torch.linspace(-6, 6, 12_001, dtype=torch.float64)
    gap = (F.gelu(x, approximate="tanh") - F.gelu(x)).abs().max().item()
    assert 4.6e-4 < gap < 4.8e-4


# --- the merge against transformers ----------------------------------------------------------
def hf_merged(hf_model, ids, images):
    """Llava's merged input embeddings: the input of its first decoder layer."""
    kwargs = {}
    if images:
        pixel_values, image_sizes = hf_pixel_inputs(images)
        kwargs = dict(pixel_values=pixel_values, image_sizes=image_sizes)
    with torch.no_grad():
        out = hf_model(input_ids=torch.tensor(ids)[None], output_hidden_states=True, **kwargs)
    return out.hidden_states[0][0]


@pytest.mark.parametrize("n_images", [0, 1, 3])
def test_merged_embeddings_equal_hf(model, hf_model, tokenizer, photos, n_images):
    ids, images = tokenizer.encode_chat("Describe the images.", images=photos[:n_images])
    input_ids = torch.tensor(ids)
    with torch.no_grad():
        merged = model.embed(input_ids, images)
        token_rows = model.tok_embeddings(input_ids)
    theirs = hf_merged(hf_model, ids, images)
    assert merged.shape == theirs.shape == (len(ids), 64)
    assert relative_error(merged, theirs) <= 1e-6

    is_img = input_ids == IDS.img
    marks = (input_ids == IDS.img_break) | (input_ids == IDS.img_end)
    assert int(is_img.sum()) == sum((i.shape[1] // 16) * (i.shape[2] // 16) for i in images)
    assert int(marks.sum()) == sum(i.shape[1] // 16 for i in images)  # one per row of patches
    # every other row, [IMG_BREAK] and [IMG_END] included, is exactly its token's embedding
    assert torch.equal(merged[~is_img], token_rows[~is_img])
    assert torch.equal(theirs[marks], token_rows[marks])
    if n_images:
        with torch.no_grad():
            adapted = model.vision_language_adapter(model.vision_encoder(images))
        assert torch.equal(merged[is_img], adapted)
        assert relative_error(merged[is_img], theirs[is_img]) <= 1e-6
        # negative control: the [IMG] rows are not the embedding row of [IMG]
        assert not torch.allclose(merged[is_img], token_rows[is_img], atol=1e-3)
    else:
        assert torch.equal(merged, token_rows)


def test_hf_comparison_is_sensitive_to_llava_defaults(model, hf_model, tokenizer, photos):
    """Negative control (PIXTRAL.md §8.13): with Llava's default feature layer (-2) the
    merged embeddings are far off, so the comparison above does see the image features."""
    ids, images = tokenizer.encode_chat("Describe.", images=photos[:1])
    pixel_values, image_sizes = hf_pixel_inputs(images)
    with torch.no_grad():
        ours = model.embed(torch.tensor(ids), images)
        wrong = hf_model(input_ids=torch.tensor(ids)[None], pixel_values=pixel_values,
                         image_sizes=image_sizes, output_hidden_states=True,
                         vision_feature_layer=-2).hidden_states[0][0]
    assert relative_error(ours, wrong) > 0.05


# --- the count check -----------------------------------------------------------------------
def _cases(tokenizer, photos):
    ids_70x40, (pixels_70x40,) = tokenizer.encode_chat("Describe.", images=[photos[0]])
    pixels_64x64 = mp.load_image(photos[1])
    ids_text, _ = tokenizer.encode_chat("Describe.")
    ids_two, two = tokenizer.encode_chat("Compare.", images=photos[:2])
    ids_three, three = tokenizer.encode_chat("Compare.", images=photos)
    return {
        "70x40 tokens, 64x64 pixels": (ids_70x40, [pixels_64x64],
                                       "image 0: 15 [IMG] tokens, 16 patches"),
        "image without tokens": (ids_text, [pixels_64x64], "image 0: 0 [IMG] tokens, 16 patches"),
        "tokens without image": (ids_70x40, [], "image 0: 15 [IMG] tokens, 0 patches"),
        "two images swapped": (ids_two, two[::-1],
                               "image 0: 15 [IMG] tokens, 16 patches; "
                               "image 1: 16 [IMG] tokens, 15 patches"),
        "one image missing": (ids_three, three[:2], "image 2: 8 [IMG] tokens, 0 patches"),
        "one image too many": (ids_two, three, "image 2: 0 [IMG] tokens, 8 patches"),
        "right totals, wrong last two": (ids_three, [three[0], three[2], three[1]],
                                         "image 1: 16 [IMG] tokens, 8 patches; "
                                         "image 2: 8 [IMG] tokens, 16 patches"),
    }


CASE_NAMES = ["70x40 tokens, 64x64 pixels", "image without tokens", "tokens without image",
              "two images swapped", "one image missing", "one image too many",
              "right totals, wrong last two"]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_count_mismatch_names_image_and_numbers(model, tokenizer, photos, case):
    ids, images, message = _cases(tokenizer, photos)[case]
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        model.embed(torch.tensor(ids), images)
    # the same through the merge alone, with features of the right lengths
    features = [torch.zeros((i.shape[1] // 16) * (i.shape[2] // 16), 64) for i in images]
    with pytest.raises(ValueError, match=r"\[IMG\] tokens"):
        mp.merge_image_features(torch.zeros(len(ids), 64), torch.tensor(ids), features, IDS)


def test_swapped_images_pass_hf_total_check_but_not_ours(model, hf_model, tokenizer, photos):
    """Why the count is per image: transformers only compares totals (31 == 31)."""
    ids, images = tokenizer.encode_chat("Compare.", images=photos[:2])
    pixel_values, image_sizes = hf_pixel_inputs(images[::-1])
    with torch.no_grad():
        hf_model(input_ids=torch.tensor(ids)[None], pixel_values=pixel_values,
                 image_sizes=image_sizes)  # no error
    with pytest.raises(ValueError, match="image 0"):
        model.embed(torch.tensor(ids), images[::-1])


# --- order ---------------------------------------------------------------------------------
def test_features_land_in_order():
    # text, image 0 (2×3), text, image 1 (1×1), image 2 (3×2), text
    ids = ([1, 3] + mp.image_token_layout(2, 3, IDS) + [2000, 2001]
           + mp.image_token_layout(1, 1, IDS) + mp.image_token_layout(3, 2, IDS) + [2002, 4])
    input_ids = torch.tensor(ids)
    torch.manual_seed(3)
    embeddings = torch.randn(len(ids), 5)
    before = embeddings.clone()
    features = [torch.full((6, 5), 1.0), torch.full((1, 5), 2.0), torch.full((6, 5), 3.0)]
    merged = mp.merge_image_features(embeddings, input_ids, features, IDS)
    assert torch.equal(embeddings, before), "the input embeddings must not change"
    is_img = input_ids == IDS.img
    assert merged[is_img, 0].tolist() == [1.0] * 6 + [2.0] + [3.0] * 6
    assert torch.equal(merged[~is_img], embeddings[~is_img])
    # within an image, patch order is kept: row k of the features → k-th [IMG] of its block
    ramp = [torch.arange(6.0)[:, None].expand(6, 5), torch.full((1, 5), 10.0),
            10 + torch.arange(1.0, 7.0)[:, None].expand(6, 5)]
    merged = mp.merge_image_features(embeddings, input_ids, ramp, IDS)
    assert merged[is_img, 0].tolist() == [float(i) for i in range(6)] + [10.0] + \
        [float(10 + i) for i in range(1, 7)]
    # features in another dtype are cast to the embeddings' dtype
    merged = mp.merge_image_features(embeddings, input_ids,
                                     [f.double() for f in features], IDS)
    assert merged.dtype == embeddings.dtype
