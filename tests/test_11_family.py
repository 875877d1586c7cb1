"""Lesson 11, the family: params.json of Pixtral-Large and Mistral-Small-3.1 read by the same
code; the patch merger, the norm before the adapter and adapters without bias, against
transformers (Mistral3ForConditionalGeneration, Llava); the merged grid of tokens against
mistral_common; parameter counts of the real configurations on the meta device."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from mistral_common.protocol.instruct.messages import ImageChunk
from PIL import Image

import minipixtral as mp
from minipixtral.merger import PatchMerger
from minipixtral.reference import (family_params, hf_llava_model, hf_mistral3_model,
                                   hf_pixel_inputs, mistral_image_encoder, randomize,
                                   relative_error, tiny_config, write_random_checkpoint)

LARGE, SMALL = "Pixtral-Large-Instruct-2411", "Mistral-Small-3.1-24B-Instruct-2503"


def read(tmp_path, params: dict) -> mp.PixtralConfig:
    (tmp_path / "params.json").write_text(json.dumps(params))
    return mp.read_params(tmp_path / "params.json")


def small_shape() -> mp.PixtralConfig:
    """tiny_config in Mistral-Small-3.1's shape: patches of 14, 2 × 2 merge, norm, no bias."""
    tiny = tiny_config()
    return dataclasses.replace(
        tiny, adapter_bias=False, add_pre_mm_projector_layer_norm=True,
        mm_projector_id="patch_merge", vision_encoder=dataclasses.replace(
            tiny.vision_encoder, patch_size=14, spatial_merge_size=2))


def large_shape() -> mp.PixtralConfig:
    """tiny_config in Pixtral-Large's shape: no adapter bias, [IMG_BREAK] 14, [IMG_END] 15."""
    return dataclasses.replace(tiny_config(), adapter_bias=False, image_break_token_id=14,
                               image_end_token_id=15)


@pytest.mark.parametrize("name, count", [
    ("Pixtral-12B-2409", 12_682_739_712),        # docs/PIXTRAL.md: mistral_inference's count
    (LARGE, (123.5e9, 124.5e9)), (SMALL, (23.5e9, 24.5e9))])
def test_the_real_configs_on_the_meta_device(tmp_path, name, count):
    config = read(tmp_path, family_params(name))
    with torch.device("meta"):
        model = mp.Pixtral(config)
    n = sum(p.numel() for p in model.parameters())
    assert n == count if isinstance(count, int) else count[0] < n < count[1]
    names = {k for k, _ in model.named_parameters()}
    assert ("patch_merger.merging_layer.weight" in names) == (name == SMALL)
    assert ("pre_mm_projector_norm.weight" in names) == (name == SMALL)
    assert ("vision_language_adapter.w_in.bias" in names) == (name == "Pixtral-12B-2409")


def test_the_fields_each_member_sets(tmp_path):
    small, large = read(tmp_path, family_params(SMALL)), read(tmp_path, family_params(LARGE))
    assert (small.vision_encoder.patch_size, small.vision_encoder.image_size) == (14, 1540)
    assert small.vision_encoder.spatial_merge_size == 2 and small.mm_projector_id == "patch_merge"
    assert small.add_pre_mm_projector_layer_norm and not small.adapter_bias
    assert small.max_seq_len == 131072                     # max_position_embeddings
    assert (large.image_break_token_id, large.image_end_token_id) == (14, 15)
    assert (large.dim, large.n_layers, large.vocab_size) == (12288, 88, 32768)


@pytest.mark.parametrize("change, message", [
    ({"mm_projector_id": "mlp"}, "mm_projector_id 'mlp' is not supported"),
    ({"spatial_merge_size": 1}, "a patch merger goes with a merge size above 1"),
    ({"mm_projector_id": ""}, "a patch merger goes with a merge size above 1"),
    ({"max_image_size": 1024}, "max_image_size=1024 disagrees with image_size=1540"),
    ({"spatial_merge_size": 0}, "'spatial_merge_size' must be a positive int"),
    ({"add_pre_mm_projector_layer_norm": 1}, "must be a bool, got 1"),
    ({"mm_projector_id": 2}, "must be a str, got 2"),
])
def test_bad_family_fields(tmp_path, change, message):
    params = family_params(SMALL)
    params["vision_encoder"].update(change)
    with pytest.raises(ValueError, match=message):
        read(tmp_path, params)


def test_params_dict_round_trip(tmp_path):
    for config in (small_shape(), large_shape(), mp.PixtralConfig()):
        assert read(tmp_path, mp.params_dict(config)) == config
    vision = mp.params_dict(mp.PixtralConfig())["vision_encoder"]  # Pixtral-12B: as released
    assert not {"spatial_merge_size", "mm_projector_id",
                "add_pre_mm_projector_layer_norm"} & set(vision)


def test_patch_merger_equals_transformers():
    from transformers import Mistral3Config, PixtralVisionConfig
    from transformers.models.mistral3.modeling_mistral3 import Mistral3PatchMerger
    torch.manual_seed(0)
    ours = PatchMerger(16, 2)
    theirs = Mistral3PatchMerger(Mistral3Config(vision_config=PixtralVisionConfig(
        hidden_size=16, patch_size=14), spatial_merge_size=2))
    theirs.load_state_dict(ours.state_dict())
    grids = [(4, 6), (2, 2), (6, 2)]
    features = torch.randn(sum(r * c for r, c in grids), 16)
    merged, merged_grids = ours(features, grids)
    with torch.no_grad():
        expected = theirs(features, torch.tensor([[r * 14, c * 14] for r, c in grids]))
    assert merged_grids == [(2, 3), (1, 1), (3, 1)]
    assert torch.allclose(merged, expected, atol=1e-6)
    swapped = features.clone()
    swapped[[0, 1]] = swapped[[1, 0]]            # two patches of one block trade places
    assert not torch.allclose(ours(swapped, grids)[0][:1], expected[:1], atol=1e-3)


def test_patch_merger_refuses_a_grid_it_cannot_split():
    with pytest.raises(ValueError, match="a grid of 3×4 patches does not split into 2×2"):
        PatchMerger(8, 2)(torch.zeros(12, 8), [(3, 4)])


@pytest.mark.parametrize("size", [(1, 1), (27, 29), (28, 28), (70, 40), (29, 300),
                                  (2000, 900), (1541, 1541)])
def test_merged_grid_equals_mistral_common(tmp_path, size):
    vision = read(tmp_path, family_params(SMALL)).vision_encoder
    tok = mp.tokenizer_for(mp.shipped_tokenizer_file(), vision)
    assert (tok.patch_size, tok.max_image_size, tok.spatial_merge_size) == (14, 1540, 2)
    picture = Image.fromarray(np.random.default_rng(sum(size)).integers(
        0, 256, (size[1], size[0], 3), dtype=np.uint8))
    ids, pixels = tok.encode_image(picture)
    theirs = mistral_image_encoder(14, 1540, 2)(ImageChunk(image=picture))
    assert ids == theirs.tokens
    assert tuple(pixels.shape) == theirs.image.shape
    assert np.abs(pixels.numpy() - theirs.image).max() < 1e-5
    unmerged = mistral_image_encoder(14, 1540, 1)(ImageChunk(image=picture)).tokens
    assert len(ids) < len(unmerged) or size == (1, 1)   # the merge changes the layout


def test_bad_merge_setting():
    with pytest.raises(ValueError, match="a merge size ≥ 1"):
        mp.Tokenizer.from_file(mp.shipped_tokenizer_file(), spatial_merge_size=0)


def _prompt(config: mp.PixtralConfig, tok: mp.Tokenizer, pictures) -> tuple:
    """ids of <s>[INST]{pictures}Compare them.[/INST] with the model's own image ids, pixels."""
    layouts = [tok.encode_image(p) for p in pictures]
    ids = [tok.bos_id, tok.inst_id]
    swap = {tok.image_ids.img_break: config.image_break_token_id,
            tok.image_ids.img_end: config.image_end_token_id}
    for image_ids, _ in layouts:
        ids += [swap.get(i, i) for i in image_ids]
    ids += tok.encode("Compare them.") + [tok.inst_end_id]
    return torch.tensor(ids), [pixels for _, pixels in layouts]


@pytest.mark.parametrize("shape", ["small", "large"])
def test_whole_model_equals_transformers(shape):
    config, twin_of = ((small_shape(), hf_mistral3_model) if shape == "small"
                       else (large_shape(), hf_llava_model))
    model = randomize(mp.Pixtral(config), seed=3)
    twin = twin_of(model)
    tok = mp.tokenizer_for(mp.shipped_tokenizer_file(), config.vision_encoder)
    rng = np.random.default_rng(4)
    pictures = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
                for w, h in [(70, 40), (30, 90)]]
    ids, images = _prompt(config, tok, pictures)
    pixel_values, image_sizes = hf_pixel_inputs(images)
    with torch.no_grad():
        ours = model(ids, images)
        theirs = twin(input_ids=ids[None], pixel_values=pixel_values,
                      image_sizes=image_sizes).logits[0]
    assert relative_error(ours, theirs) < 1e-5
    greedy = mp.generate(model, ids, images, max_new_tokens=5)
    their_greedy = twin.generate(input_ids=ids[None], pixel_values=pixel_values,
                                 image_sizes=image_sizes, max_new_tokens=5, do_sample=False,
                                 eos_token_id=None)[0, len(ids):].tolist()
    assert greedy == their_greedy
    if shape == "small":  # negative control: without the norm before the adapter
        model.pre_mm_projector_norm = None
        with torch.no_grad():
            assert relative_error(model(ids, images), theirs) > 1e-3


def test_a_small_shaped_checkpoint_saves_and_loads(tmp_path):
    folder = write_random_checkpoint(tmp_path / "small", small_shape(), dtype=torch.float32)
    model = mp.Pixtral.from_folder(folder, device="cpu")
    assert model.config == small_shape()
    saved = randomize(mp.Pixtral(small_shape()), seed=0, std=0.02, gain_std=0.0)
    names = set(model.state_dict())
    assert {"patch_merger.merging_layer.weight", "pre_mm_projector_norm.weight"} <= names
    assert all(torch.equal(model.state_dict()[n], t) for n, t in saved.state_dict().items())
