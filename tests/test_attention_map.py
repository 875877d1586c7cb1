"""Lesson 09's attention map (minipixtral.attention_map) and `describe --show-attention`.

The map is the last prompt token's attention weights, per decoder layer and mean over the heads,
at the [IMG] positions. It is proven equal to transformers' own weights (Llava with eager
attention, output_attentions=True) for a random Pixtral with GQA and two pictures of different
grids; a negative control shows the comparison can fail.
"""
import os

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import pytest
import torch
from PIL import Image

import minipixtral as mp
from minipixtral.__main__ import main
from minipixtral.reference import hf_pixel_inputs, randomize, tiny_config


@pytest.fixture(scope="module")
def model():
    return randomize(mp.Pixtral(tiny_config()), seed=5)


def _noise(width: int, height: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def two_pictures(tokenizer):
    """A prompt with a 40 × 24 picture (2 rows of 3 patches) and a 20 × 50 one (4 × 2)."""
    return tokenizer.encode_conversation([{"role": "user", "content": "Which is brighter?",
                                           "images": [_noise(40, 24, 0), _noise(20, 50, 1)]}])


def _hf_weights(hf_model, ids, images, query: int) -> torch.Tensor:
    """transformers' attention weights of token `query`, mean over the heads: [n_layers, T]."""
    pixel_values, image_sizes = hf_pixel_inputs(images)
    with torch.no_grad():
        out = hf_model(input_ids=torch.tensor([ids]), pixel_values=pixel_values,
                       image_sizes=image_sizes, output_attentions=True)
    return torch.stack([layer[0, :, query, :].mean(0) for layer in out.attentions])


def test_maps_equal_transformers_attention_weights(model, hf_model, tokenizer, two_pictures):
    ids, images = two_pictures
    maps = mp.answer_attention(model, ids, images)
    assert [tuple(m.shape) for m in maps] == [(2, 2, 3), (2, 4, 2)]
    image_columns = [i for i, t in enumerate(ids) if t == tokenizer.image_ids.img]
    theirs = _hf_weights(hf_model, ids, images, query=-1)[:, image_columns]
    ours = torch.cat([m.flatten(1) for m in maps], dim=1)           # row-major, image by image
    assert torch.allclose(ours, theirs, atol=1e-6, rtol=1e-5), (ours - theirs).abs().max()
    assert 0 < ours.sum(1).max() <= 1 + 1e-6                        # a share of each layer's total
    # negative control: another query's weights (the token before [/INST]) differ
    other = _hf_weights(hf_model, ids, images, query=-2)[:, image_columns]
    assert (ours - other).abs().max() > 1e-3


@pytest.mark.filterwarnings("ignore:Glyph")  # a random model's answer: any characters
def test_the_figure_has_one_panel_per_layer(model, tokenizer):
    figure = mp.draw_answer_attention(_noise(40, 24, 0), torch.rand(2, 2, 3), title="q → a")
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert len(titles) == 2 and titles[0].startswith("layer 0:")
    assert figure._suptitle.get_text() == "q → a"
    figure = mp.show_answer_attention(model, tokenizer, _noise(30, 30, 2), "What shape is it?")
    assert figure._suptitle.get_text().startswith("What shape is it? → ")


def test_describe_saves_the_attention_figure(tmp_path, capsys):
    path = tmp_path / "attention.png"
    assert main(["describe", "--device", "cpu", "--show-attention", str(path)]) == 0
    assert "attention of the answer position" in capsys.readouterr().err
    picture = Image.open(path)
    assert picture.width > 300 and picture.height > 150
    # a folder that does not exist is one error line, not a traceback
    assert main(["describe", "--device", "cpu", "--show-attention",
                 str(tmp_path / "missing" / "a.png")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error:")
