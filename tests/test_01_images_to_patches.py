"""Lesson 01: images → patches, against mistral_common's image encoder (the reference).

- `load_image` equals mistral_common's pixels (max |Δ| ≤ 1e-5) over PIL modes × sizes, with
  seeded random noise (the hardest content for resampling), given as a path, a PIL image or
  a numpy array;
- `resized_size` equals mistral_common's patch grid × 16 on a sweep of sizes, including
  oversize ones where Python's round and floor disagree;
- negative controls: rounding down, or bicubic positions computed in float32, would be caught;
- bad input raises the documented errors with clear messages;
- the patch embedding as `patchify` + matmul equals the strided convolution.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mistral_common.protocol.instruct.chunk import ImageChunk
from mistral_common.tokens.tokenizers.image import DATASET_MEAN, DATASET_STD
from PIL import Image

import minipixtral as mp
from minipixtral.reference import mistral_image_encoder

TOLERANCE = 1e-5  # normalised units; observed ≤ 2e-6


@pytest.fixture(scope="module")
def encoder():
    return mistral_image_encoder()


def reference_pixels(encoder, image: Image.Image) -> np.ndarray:
    return encoder(ImageChunk(image=image)).image


def noise_image(mode: str, width: int, height: int, seed: int = 0) -> Image.Image:
    """A PIL image of the given mode filled with seeded uniform noise."""
    rng = np.random.default_rng(seed)
    bands = {"RGB": 3, "RGBA": 4, "LA": 2, "L": 1, "P": 1, "1": 1, "CMYK": 4}[mode]
    data = rng.integers(0, 256, (height, width, bands), dtype=np.uint8)
    if mode == "LA":
        return Image.merge("LA", [Image.fromarray(data[..., i]) for i in range(2)])
    if mode in ("RGB", "RGBA"):
        return Image.fromarray(data, mode)
    if mode == "CMYK":
        return Image.frombytes("CMYK", (width, height), data.tobytes())
    grey = Image.fromarray(data[..., 0])
    if mode == "P":  # a random palette, so that the palette lookup matters
        image = grey.convert("P")
        image.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tobytes())
        return image
    return grey if mode == "L" else grey.convert("1")


def max_error(ours: torch.Tensor, reference: np.ndarray) -> float:
    assert ours.dtype == torch.float32 and reference.dtype == np.float32
    assert tuple(ours.shape) == reference.shape, (tuple(ours.shape), reference.shape)
    return float(np.abs(ours.numpy() - reference).max())


# --- load_image against mistral_common -------------------------------------------------------
MODES = ["RGB", "RGBA", "LA", "L", "P", "1", "CMYK"]
SIZES = [(1, 1), (16, 16), (33, 17), (70, 40), (2048, 16), (1025, 113), (1500, 600)]
CASES = [(m, s) for m in MODES for s in SIZES] + [("RGB", (4000, 3000)), ("RGBA", (4000, 3000))]


@pytest.mark.parametrize("mode,size", CASES, ids=[f"{m}-{w}x{h}" for m, (w, h) in CASES])
def test_load_image_equals_mistral_common(encoder, mode, size):
    image = noise_image(mode, *size, seed=size[0] * 7 + size[1])
    assert image.mode == mode
    reference = reference_pixels(encoder, image)
    ours = mp.load_image(image)
    assert max_error(ours, reference) <= TOLERANCE
    assert mp.resized_size(*size) == (reference.shape[2], reference.shape[1])


PATH_MODES = ["RGB", "RGBA", "LA", "L", "P", "1"]  # the modes a PNG can hold


@pytest.mark.parametrize("mode", PATH_MODES)
def test_load_image_from_a_png_path(encoder, tmp_path, mode):
    path = tmp_path / f"noise_{mode}.png"
    noise_image(mode, 300, 1100, seed=3).save(path)
    with Image.open(path) as opened:
        reference = reference_pixels(encoder, opened)
    assert max_error(mp.load_image(path), reference) <= TOLERANCE
    assert max_error(mp.load_image(str(path)), reference) <= TOLERANCE


def test_load_image_from_a_jpeg_path(encoder):
    import matplotlib.cbook
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with Image.open(path) as opened:
        reference = reference_pixels(encoder, opened)
    assert reference.shape == (3, 608, 512)
    assert max_error(mp.load_image(path), reference) <= TOLERANCE


def test_load_image_animated_gif_uses_the_first_frame(encoder, tmp_path):
    frames = [noise_image("P", 40, 24, seed=s) for s in (1, 2)]
    path = tmp_path / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with Image.open(path) as opened:
        assert opened.n_frames == 2
        reference = reference_pixels(encoder, opened)  # the frame a fresh open points at
        opened.seek(1)
        second = reference_pixels(encoder, opened)
    assert max_error(mp.load_image(path), reference) <= TOLERANCE
    assert np.abs(second - reference).max() > 0.1  # the frames differ: the check can fail


@pytest.mark.parametrize("shape", [(40, 70), (40, 70, 3), (40, 70, 4), (600, 1500, 3)])
def test_load_image_from_a_numpy_array(encoder, shape):
    array = np.random.default_rng(5).integers(0, 256, shape, dtype=np.uint8)
    reference = reference_pixels(encoder, Image.fromarray(array))
    assert max_error(mp.load_image(array), reference) <= TOLERANCE


def test_transparent_pixels_become_white(encoder):
    image = Image.new("RGBA", (20, 20), (255, 0, 0, 0))   # red, fully transparent
    assert mp.to_rgb(image).getpixel((3, 3)) == (255, 255, 255)
    assert mp.to_rgb(Image.new("RGBA", (1, 1), (255, 0, 0, 128))).getpixel((0, 0)) == \
        (255, 127, 127)
    white = mp.load_image(Image.new("RGB", (20, 20), "white"))
    assert torch.equal(mp.load_image(image), white)
    assert max_error(mp.load_image(image), reference_pixels(encoder, image)) <= TOLERANCE


def test_negative_control_float32_positions_would_be_caught(encoder):
    """Computing the bicubic positions in float32 moves noisy pixels by ~1e-2 levels, which
    the tolerance above catches: the float64 positions of cubic_taps are needed."""
    def taps_float32(n_in, n_out):
        index, _ = mp.cubic_taps(n_in, n_out)
        x = (torch.arange(n_out, dtype=torch.float32) + 0.5) * (n_in / n_out) - 0.5
        t, a = (x - x.floor()).double(), -0.75
        w0 = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a
        w1 = ((a + 2) * t - (a + 3)) * t * t + 1
        w2 = ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1
        index = (x.floor().long()[:, None] + torch.arange(-1, 3)).clamp(0, n_in - 1)
        return index, torch.stack([w0, w1, w2, 1 - w0 - w1 - w2], 1).float()

    image = noise_image("RGB", 1500, 600, seed=11)
    reference = reference_pixels(encoder, image)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)
    index, weight = taps_float32(1500, 1024)
    pixels = (pixels[:, :, index] * weight).sum(-1)
    index, weight = taps_float32(600, 416)
    pixels = (pixels[:, index, :] * weight[:, :, None]).sum(2)
    mean, std = torch.tensor(mp.CLIP_MEAN).view(3, 1, 1), torch.tensor(mp.CLIP_STD).view(3, 1, 1)
    assert max_error((pixels / 255 - mean) / std, reference) > 10 * TOLERANCE
    assert max_error(mp.load_image(image), reference) <= TOLERANCE


def test_resize_bicubic_overshoots_without_clipping():
    import cv2
    row = np.array([[0, 0, 0, 255, 255, 255, 255, 0]], np.float32)
    ours = mp.resize_bicubic(torch.from_numpy(row)[None], 1, 40)[0, 0].numpy()
    reference = cv2.resize(row, (40, 1), interpolation=cv2.INTER_CUBIC)[0]
    assert np.abs(ours - reference).max() < 1e-3
    assert ours.min() < -10 and ours.max() > 265


# --- the resize rule -------------------------------------------------------------------------
def sweep_sizes() -> list[tuple[int, int]]:
    rng = np.random.default_rng(0)
    sizes = [tuple(int(v) for v in rng.integers(1, 4500, 2)) for _ in range(250)]
    sizes += [(1025, int(h)) for h in rng.integers(1, 1025, 60)]    # just oversize
    sizes += [(70, 40), (33, 17), (1, 1), (16, 16), (17, 17), (1024, 1024), (1025, 1025),
              (1500, 600), (1025, 113), (2048, 16), (2048, 1025), (4000, 3000), (3000, 1),
              (1, 5000), (1024, 1), (1023, 1025)]
    return sizes


def floor_rule(width, height, max_size=1024, patch=16):
    ratio = max(width, height) / max_size
    if ratio > 1:
        width, height = max(math.floor(width / ratio), 1), max(math.floor(height / ratio), 1)
    return math.ceil(width / patch) * patch, math.ceil(height / patch) * patch


def reference_size(encoder, width, height):
    columns, rows = encoder._image_to_num_tokens(Image.new("1", (width, height)))
    return columns * 16, rows * 16


def test_resized_size_equals_mistral_common_grid(encoder):
    sizes = sweep_sizes()
    wrong = [(w, h, mp.resized_size(w, h), reference_size(encoder, w, h)) for w, h in sizes
             if mp.resized_size(w, h) != reference_size(encoder, w, h)]
    assert not wrong, wrong[:5]


def test_negative_control_floor_differs_from_round(encoder):
    sizes = sweep_sizes()
    differs = [(w, h) for w, h in sizes if floor_rule(w, h) != reference_size(encoder, w, h)]
    assert (1025, 113) in differs
    assert len(differs) >= 10, differs


@pytest.mark.parametrize("size,expected", [
    ((70, 40), (80, 48)), ((1500, 600), (1024, 416)), ((1025, 113), (1024, 128)),
    ((2048, 16), (1024, 16)), ((2048, 1025), (1024, 512)), ((1, 1), (16, 16)),
    ((33, 17), (48, 32)), ((4000, 3000), (1024, 768)), ((3000, 1), (1024, 16))])
def test_resized_size_examples(size, expected):
    assert mp.resized_size(*size) == expected


def test_resized_size_other_limits(encoder):
    small = mistral_image_encoder(14, 512)
    for w, h in [(100, 3000), (513, 20), (700, 699), (5, 5)]:
        columns, rows = small._image_to_num_tokens(Image.new("1", (w, h)))
        assert mp.resized_size(w, h, 512, 14) == (columns * 14, rows * 14)
    image = noise_image("RGB", 700, 301, seed=2)
    reference = small(ImageChunk(image=image)).image
    assert max_error(mp.load_image(image, max_image_size=512, patch_size=14), reference) <= TOLERANCE


# --- normalisation ---------------------------------------------------------------------------
def test_clip_constants_and_red_pixel():
    assert mp.CLIP_MEAN == DATASET_MEAN and mp.CLIP_STD == DATASET_STD
    red = mp.load_image(Image.new("RGB", (16, 16), (255, 0, 0)))
    assert red.shape == (3, 16, 16)
    expected = torch.tensor([1.93034, -1.75210, -1.48022]).view(3, 1, 1)
    assert torch.allclose(red, expected.expand(3, 16, 16), atol=1e-5)
    assert not torch.allclose(red[[1, 0, 2]], expected.expand(3, 16, 16), atol=1e-2)


# --- bad input -------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image file"):
        mp.load_image(tmp_path / "missing.png")
    with pytest.raises(FileNotFoundError, match="no image file"):
        mp.load_image(str(tmp_path))  # a folder is not an image file


def test_not_an_image_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("plain text")
    with pytest.raises(ValueError, match="not an image file"):
        mp.load_image(path)


@pytest.mark.parametrize("image", [Image.new("RGB", (0, 10)), Image.new("L", (7, 0)),
                                   np.zeros((0, 5, 3), np.uint8)], ids=["0x10", "7x0", "array"])
def test_zero_sized_image(image):
    with pytest.raises(ValueError, match="no pixels"):
        mp.load_image(image)


@pytest.mark.parametrize("size", [(0, 5), (5, 0), (-3, 4)])
def test_resized_size_zero_sized(size):
    with pytest.raises(ValueError, match="no pixels"):
        mp.resized_size(*size)


@pytest.mark.parametrize("kwargs", [dict(max_image_size=0), dict(max_image_size=-5),
                                    dict(patch_size=0)])
def test_non_positive_limits(kwargs):
    with pytest.raises(ValueError, match="must be positive"):
        mp.load_image(Image.new("RGB", (20, 20)), **kwargs)
    with pytest.raises(ValueError, match="must be positive"):
        mp.resized_size(20, 20, **kwargs)


@pytest.mark.parametrize("image,words", [
    (np.zeros((4, 4, 3), np.float32), "uint8"), (np.zeros((4, 4, 2), np.uint8), "shape"),
    (np.zeros((4,), np.uint8), "shape"), (42, "expected a path"), ([1, 2], "expected a path")])
def test_bad_image_objects(image, words):
    with pytest.raises(ValueError, match=words):
        mp.load_image(image)


def test_patchify_rejects_partial_patches():
    with pytest.raises(ValueError, match="not a multiple of 16"):
        mp.patchify(torch.zeros(3, 40, 32))


# --- patches and the patch embedding ---------------------------------------------------------
def test_patchify_order():
    torch.manual_seed(0)
    image = torch.randn(3, 48, 80)
    patches = mp.patchify(image)
    assert patches.shape == (15, 768)
    for k in range(15):
        r, c = divmod(k, 5)
        assert torch.equal(patches[k], image[:, 16 * r:16 * r + 16, 16 * c:16 * c + 16].flatten())
    assert torch.equal(patches, F.unfold(image[None], 16, stride=16)[0].T)


def test_patch_embedding_conv_equals_patchify_matmul():
    torch.manual_seed(0)
    image = torch.randn(3, 48, 80)
    conv = torch.nn.Conv2d(3, 64, 16, stride=16, bias=False)
    with torch.no_grad():
        by_conv = conv(image[None])[0].flatten(1).T                          # [15, 64]
        by_matmul = mp.patchify(image) @ conv.weight.reshape(64, -1).T
        # negative control: patches flattened (row, column, channel) do not match the kernel
        wrong = image.reshape(3, 3, 16, 5, 16).permute(1, 3, 2, 4, 0).reshape(15, -1)
        wrong = wrong @ conv.weight.reshape(64, -1).T
    assert torch.allclose(by_conv, by_matmul, atol=1e-5, rtol=0)
    assert not torch.allclose(by_conv, wrong, atol=1e-2)


def test_patch_embedding_equals_transformers_patch_conv(encoder):
    from transformers import PixtralVisionConfig, PixtralVisionModel
    torch.manual_seed(0)
    model = PixtralVisionModel(PixtralVisionConfig(hidden_size=64, intermediate_size=32,
                                                   num_hidden_layers=1, num_attention_heads=2))
    image = noise_image("RGB", 70, 40, seed=4)
    pixels = torch.from_numpy(reference_pixels(encoder, image))
    with torch.no_grad():
        reference = model.patch_conv(pixels[None])[0].flatten(1).T
        ours = mp.patchify(mp.load_image(image)) @ model.patch_conv.weight.reshape(64, -1).T
    assert ours.shape == (15, 64)
    assert torch.allclose(ours, reference, atol=1e-4, rtol=0)
