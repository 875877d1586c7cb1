"""Lesson 09: the synthetic dataset, packing, the answer-only loss, the trainable rows, the
centre hint, saving and loading, and the shipped checkpoint's accuracy on fresh pictures."""
import colorsys
import dataclasses
import math
import os
import random

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import minipixtral as mp
import test_independent_pictures as pictures   # the pixel reader of the held-out pictures
from grid_rows import grid_rows
from independent_pictures import independent_samples
from make_gallery import gallery_samples
from rows_and_columns import rows_and_columns
from train_tiny import accuracy_by_kind
from minipixtral import Pixtral
from minipixtral.reference import trained_config


@pytest.fixture(scope="module")
def tokenizer():
    """The trained model's tokenizer: Tekken with its patches of 8 pixels (not Tekken's 16);
    it replaces conftest's `tokenizer` in this file."""
    return mp.shipped_tokenizer()


@pytest.fixture(scope="module")
def small_model():
    """The configuration lesson 09 trains, with PyTorch's initial weights (seeded)."""
    torch.manual_seed(0)
    return Pixtral(trained_config()).eval()


@pytest.fixture(scope="module")
def shipped():
    return Pixtral.from_folder(mp.shipped_checkpoint(), device="cpu")


def fingerprint(samples):
    return [(s.image.tobytes(), s.image.size, s.kind, s.question, s.answer) for s in samples]


# --- the dataset ---------------------------------------------------------------------------

def test_dataset_is_deterministic_and_seeded():
    assert fingerprint(mp.make_samples(30, 3)) == fingerprint(mp.make_samples(30, 3))
    assert fingerprint(mp.make_samples(30, 3)) != fingerprint(mp.make_samples(30, 4))
    a, b = random.Random(9), random.Random(9)
    assert fingerprint([mp.random_sample(a) for _ in range(10)]) == \
        fingerprint([mp.random_sample(b) for _ in range(10)])


def test_samples_have_varied_sizes_and_balanced_kinds():
    samples = mp.make_samples(300, 0)
    sizes = {s.image.size for s in samples}
    assert all(mp.SIDES[0] <= side <= mp.SIDES[1] for size in sizes for side in size)
    assert len(sizes) > 200                       # any width and height, square or not
    assert any(w % 16 for w, _ in sizes) and any(w < 32 for w, _ in sizes)
    assert [s.kind for s in samples[:5]] == list(mp.QUESTIONS)
    for kind, answers in mp.ANSWERS.items():
        got = {s.answer for s in samples if s.kind == kind}
        assert got == set(answers), f"{kind}: answers {got}, expected all of {answers}"
    kinds = [s.kind for s in mp.make_samples(2000, 1, balanced=False)]
    assert kinds.count("count") > 3 * kinds.count("colour")       # KIND_WEIGHTS: 4 and 1
    with pytest.raises(ValueError, match="unknown kind"):
        mp.random_sample(random.Random(0), "texture")


def _hue_fits(colour: np.ndarray, name: str, margin: float = 6) -> bool:
    """Whether an RGB colour (0..1) has a hue in COLOUR_DOMAIN[name]'s range, widened by margin
    (the generator's 4 degrees, and the rounding to 8 bits)."""
    (low, high), _, _ = mp.COLOUR_DOMAIN[name]
    hue = colorsys.rgb_to_hsv(*colour)[0] * 360
    hue = hue - 360 if hue > 180 + high else hue                  # red's range crosses 0
    return low - margin <= hue <= high + margin


def _shapes(image):
    """What the pixels say about each shape (tests/test_independent_pictures.py's reading)."""
    pixels = np.asarray(image).astype(int)
    difference = np.abs(pixels - pictures.background(pixels)).max(axis=2)
    blobs = pictures.components(difference > pictures.INK)
    return [{**pictures.describe(blob, pixels, difference),
             "colour": pictures.core_colour(pixels, difference > pictures.INK, blob)}
            for blob in blobs]


def test_answers_agree_with_the_pixels():
    """The training generator's answers, read back from its pixels (its ranges are a little
    wider than the documented domain: shapes from 9 pixels, hues 4 degrees further)."""
    for s in mp.make_samples(250, 21):
        shapes = _shapes(s.image)
        n = mp.ANSWERS["count"].index(s.answer) + 1 if s.kind == "count" else \
            2 if s.kind == "position" else 1
        assert len(shapes) == n, (s.kind, s.answer, len(shapes))
        first = min(shapes, key=lambda shape: shape["left"])
        if s.kind in ("colour", "position"):
            assert _hue_fits(first["colour"], s.answer), (s.kind, s.answer, first)
        elif s.kind == "size":
            assert first["width"] <= 16 if s.answer == "small" else first["width"] >= 26
        elif s.kind == "shape" and first["width"] >= 14:
            assert first["kind"] == s.answer, (s.answer, first)


def _alike(shapes) -> bool:
    """Whether shapes read from the pixels are all of one colour name and one kind."""
    names = {tuple(pictures.colour_names(shape["colour"])) for shape in shapes}
    return len(names) == 1 and len({shape["kind"] for shape in shapes}) == 1


def _alike_share(samples) -> float:
    """The share of count pictures of two or three shapes whose shapes are alike."""
    several = [_shapes(s.image) for s in samples if s.answer != "one"]
    return sum(map(_alike, several)) / len(several)


def test_count_pictures_often_show_alike_shapes(monkeypatch):
    """ALIKE: in many count pictures of two or three shapes, every shape has one colour and
    one kind (drawn on their own: 1 in 12 for two, 1 in 144 for three), so that the model
    cannot count colours and kinds instead of shapes; the second routine draws such pictures
    too. The pixels undercount the generator's (its shades a little outside the named
    colours, the kinds of its smallest shapes are not read): measured 18% of its pictures
    (400: 200 read 14 to 21% with seeds 5 to 8), 5% without ALIKE (the negative control), 48%
    of the second routine's."""
    def generated():
        rng = random.Random(5)
        return [mp.random_sample(rng, "count") for _ in range(400)]

    assert _alike_share(generated()) >= 0.12
    held_out = [s for s in independent_samples(200, 6) if s.kind == "count"]
    assert 0.35 <= _alike_share(held_out) <= 0.65
    monkeypatch.setattr(mp.synthetic, "ALIKE", dict.fromkeys(mp.synthetic.ALIKE, 0.0))
    assert _alike_share(generated()) < 0.08


def _grid_share(samples, grid: int = 8) -> float:
    """The share of pictures whose every shape, read from the pixels, starts at a column and
    spans a width that are multiples of grid."""
    return sum(all(shape["left"] % grid == 0 and shape["width"] % grid == 0
                   for shape in _shapes(s.image)) for s in samples) / len(samples)


def test_count_pictures_often_sit_on_the_patch_grid(monkeypatch):
    """ALIKE["grid"]: a user drawing at round numbers puts shapes on the patch grid, where a
    square's patches are all shape or all background; the model shipped before it answered
    "one" to rows of three such shapes. Read from the pixels (every shape's first column and
    width multiples of 8): measured 53% of the generator's count pictures (ALIKE: half), none
    without it (the negative control; by chance 1 in 64 per shape), 24% of the second
    routine's pictures of every kind (a quarter, but not its small shapes). The pictures' own
    sides are on the grid too, so that lesson 01's resize leaves the shapes there: 54% of the
    pictures, 1 in 64 by chance."""
    def generated():
        rng = random.Random(7)
        return [mp.random_sample(rng, "count") for _ in range(200)]

    def round_sides(samples):
        return sum(s.image.width % 8 == 0 and s.image.height % 8 == 0 for s in samples) / len(
            samples)

    samples = generated()
    assert 0.35 <= _grid_share(samples) <= 0.6
    assert 0.4 <= round_sides(samples) <= 0.65
    assert 0.15 <= _grid_share(independent_samples(40, 8)) <= 0.35
    monkeypatch.setattr(mp.synthetic, "ALIKE", {**mp.synthetic.ALIKE, "grid": 0.0})
    control = generated()
    assert _grid_share(control) < 0.05
    assert round_sides(control) < 0.1


def _big_in_elongated(kind: str, tall: bool, seed: int = 11, n: int = 600) -> float:
    """Among the generator's pictures of `kind` with two or three shapes that are 1.5 times
    taller than wide (tall) or wider than tall: the share whose biggest box side exceeds half
    the picture's shorter side."""
    rng = random.Random(seed)
    chosen = [s for s in (mp.random_sample(rng, kind) for _ in range(n)) if len(s.boxes) > 1
              and max(s.image.size) >= 1.5 * min(s.image.size)
              and (s.image.height > s.image.width) == tall]
    assert len(chosen) >= 40
    return sum(max(side for *_, side in s.boxes) > min(s.image.size) / 2
               for s in chosen) / len(chosen)


def test_count_pictures_stack_big_shapes_in_tall_pictures_as_in_wide_ones():
    """Two or three shapes may be as big as about half the picture's longer side, in a column
    as in a row. The generator once capped them at half the width: tall pictures never held
    two shapes bigger than half their width, and the model trained on it called two such
    shapes stacked "three" 7% of the time (side by side: 2%; tools/rows_and_columns.py). Measured: 44% of tall and 47% of wide
    count pictures. Position pictures, whose two shapes stand side by side, are the negative
    control: in a tall one they cannot be that big."""
    assert _big_in_elongated("count", tall=True) >= 0.3
    assert _big_in_elongated("count", tall=False) >= 0.3
    assert _big_in_elongated("position", tall=True) == 0.0


def test_encode_sample_uses_the_chat_template_and_single_token_answers(tokenizer):
    for s in mp.make_samples(10, 2):
        e = mp.encode_sample(tokenizer, s)
        prompt, images = tokenizer.encode_chat(s.question, images=[s.image])
        assert e.ids[:e.n_prompt] == prompt and e.n_prompt == len(prompt)
        assert e.ids[e.n_prompt:] == tokenizer.encode(s.answer) + [tokenizer.eos_id]
        assert len(e.ids) == e.n_prompt + 2  # every answer is one token
        assert torch.equal(e.images[0], images[0])
        assert set(e.ids) <= set(mp.dataset_token_ids(tokenizer))


# --- packing and the loss --------------------------------------------------------------------

def test_block_causal_mask_and_positions():
    lengths = [3, 1, 4]
    mask = mp.block_causal_mask(lengths)
    owner = [0, 0, 0, 1, 2, 2, 2, 2]
    expected = torch.tensor([[owner[i] == owner[j] and j <= i for j in range(8)]
                             for i in range(8)])
    assert mask.dtype == torch.bool and torch.equal(mask, expected)
    assert mp.packed_positions(lengths).tolist() == [0, 1, 2, 0, 0, 1, 2, 3]
    assert torch.equal(mp.answer_mask(6, 4), torch.tensor([False, False, False, True, True]))


def _packed_logits(model, packed, mask):
    """Every row's logits over the full vocabulary: the long way round of packed_loss."""
    h = model.run_layers(model.embed(packed.ids, packed.images), packed.positions, mask)
    return model.output(model.norm(h))


def test_packing_gives_each_example_its_own_logits(tokenizer, small_model):
    examples = [mp.encode_sample(tokenizer, s) for s in mp.make_samples(3, 8)]
    packed = mp.pack(examples)
    split = [len(e.ids) - 1 for e in examples]
    with torch.no_grad():
        together = _packed_logits(small_model, packed, packed.mask).split(split)
        leaky = _packed_logits(small_model, packed,
                               mp.causal_mask(len(packed.ids), len(packed.ids))).split(split)
        for e, t, bad in zip(examples, together, leaky):
            alone = small_model(torch.tensor(e.ids[:-1]), e.images)
            assert (t - alone).abs().max() < 1e-5
        # negative control: one causal mask over the whole pack mixes the examples
        assert (bad - small_model(torch.tensor(e.ids[:-1]), e.images)).abs().max() > 1e-3


def test_answer_loss_reads_only_the_answer_rows(tokenizer):
    examples = [mp.encode_sample(tokenizer, s) for s in mp.make_samples(4, 12)]
    packed = mp.pack(examples)
    assert int(packed.trained.sum()) == sum(len(e.ids) - e.n_prompt for e in examples)
    assert torch.equal(packed.targets[packed.trained],
                       torch.tensor([i for e in examples for i in e.ids[e.n_prompt:]]))
    logits = torch.randn(len(packed.ids), 300, generator=torch.Generator().manual_seed(0))
    targets = packed.targets % 300
    loss = mp.answer_loss(logits, targets, packed.trained)
    manual = -torch.log_softmax(logits, -1)[packed.trained, targets[packed.trained]].mean()
    assert torch.allclose(loss, manual, atol=1e-6)
    changed = logits.clone()
    changed[~packed.trained] += torch.randn(int((~packed.trained).sum()), 300)
    assert torch.equal(mp.answer_loss(changed, targets, packed.trained), loss)
    changed[packed.trained] += 1.0 * torch.arange(300)  # answer rows matter
    assert not torch.allclose(mp.answer_loss(changed, targets, packed.trained), loss)


def test_trainable_rows_give_the_exact_full_vocabulary_loss(tokenizer, small_model):
    model = Pixtral(small_model.config)
    model.load_state_dict(small_model.state_dict())
    rows = mp.TrainableRows(model, mp.dataset_token_ids(tokenizer))
    rows.write_back(model)
    unused = torch.ones(model.config.vocab_size, dtype=torch.bool)
    unused[rows.ids] = False
    assert model.output.weight[unused].abs().sum() == 0
    assert rows.rest == pytest.approx(math.log(model.config.vocab_size - len(rows.ids)))
    packed = mp.pack([mp.encode_sample(tokenizer, s) for s in mp.make_samples(5, 13)])
    with torch.no_grad():
        full = mp.answer_loss(_packed_logits(model, packed, packed.mask), packed.targets,
                              packed.trained)
        cheap = mp.packed_loss(model, rows, packed)
    assert abs(full - cheap) < 1e-4  # float32 sums over 131 072 logits: ~1e-6 relative
    # negative control: without the log(V − K) column (a softmax over the K rows only) the
    # loss of this random model is far too small
    rows.rest = float("-inf")
    with torch.no_grad():
        assert full - mp.packed_loss(model, rows, packed) > 5


def test_a_few_training_steps_lower_the_loss_and_touch_only_used_rows(tokenizer, small_model):
    model = Pixtral(small_model.config)
    model.load_state_dict(small_model.state_dict())
    before = model.tok_embeddings.weight.clone()
    vision_before = model.vision_encoder.patch_conv.weight.clone()
    losses = mp.train(model, tokenizer, steps=20, batch_size=4, lr=3e-2, warmup=1, seed=0)
    assert len(losses) == 20 and losses[0] > 10 and np.mean(losses[-5:]) < losses[0] - 3
    assert not model.training
    used = torch.tensor(mp.dataset_token_ids(tokenizer))
    changed = (model.tok_embeddings.weight != before).any(1).nonzero().flatten()
    assert set(changed.tolist()) <= set(used.tolist()) and len(changed) > 5
    assert not torch.equal(model.vision_encoder.patch_conv.weight, vision_before)


def test_the_curriculum_asks_its_stages_kinds_then_every_kind():
    assert mp.curriculum_stages(mp.CURRICULUM, 100) == [(20.0, ["shape"])]
    stages = mp.curriculum_stages([(0.25, ("shape",)), (0.5, ("shape", "count"))], 100)
    assert stages == [(25.0, ["shape"]), (50.0, ["shape", "count"])]
    rng = random.Random(0)
    assert {mp.kind_at(rng, step, stages) for step in range(25)} == {"shape"}
    assert {mp.kind_at(rng, step, stages) for step in range(25, 50)} == {"shape", "count"}
    assert {mp.kind_at(rng, step, stages) for step in range(50, 100)} == {None}
    with pytest.raises(ValueError, match=r"unknown kinds \['shapes'\]"):
        mp.curriculum_stages([(0.5, ("shapes",))], 100)
    assert mp.curriculum_stages([(1.0, ("count",))], 10) == [(10.0, ["count"])]  # the whole run


@pytest.mark.parametrize("shares", [(0.5, 0.3), (0.4, 0.4), (0.5, 1.2), (0.0,), (-0.1,)])
def test_a_curriculum_whose_shares_do_not_rise_within_0_1_is_refused(shares):
    with pytest.raises(ValueError, match="the shares must rise within"):
        mp.curriculum_stages([(share, ("shape",)) for share in shares], 100)


@pytest.mark.parametrize("curriculum", [mp.CURRICULUM, ()])   # (): negative control
def test_train_draws_the_curriculums_kinds(monkeypatch, tokenizer, small_model, curriculum):
    import minipixtral.training as training

    kinds, draw = [], training.random_sample

    def recording(rng, kind=None):
        sample = draw(rng, kind)
        kinds.append(sample.kind)
        return sample

    monkeypatch.setattr(training, "random_sample", recording)
    model = Pixtral(small_model.config)
    mp.train(model, tokenizer, steps=8, batch_size=8, warmup=1, seed=4, curriculum=curriculum)
    first, rest = set(kinds[:16]), set(kinds[32:])              # steps 0-1, steps 4-7
    assert (first == {"shape"}) == bool(curriculum) and len(first) >= (1 if curriculum else 3)
    assert rest == set(mp.QUESTIONS)


def test_train_refuses_an_unknown_curriculum_kind_before_any_step(tokenizer, small_model):
    model = Pixtral(small_model.config)
    before = model.state_dict()["vision_encoder.patch_conv.weight"].clone()
    with pytest.raises(ValueError, match="unknown kinds"):
        mp.train(model, tokenizer, steps=4, curriculum=[(0.5, ("colours",))])
    assert torch.equal(model.vision_encoder.patch_conv.weight, before)


def test_save_and_load_round_trip(tmp_path, small_model):
    for dtype in (torch.float32, torch.bfloat16):
        folder = mp.save_folder(small_model, tmp_path / str(dtype), mp.shipped_tokenizer_file(),
                                dtype=dtype)
        loaded = Pixtral.from_folder(folder, device="cpu")
        for name, tensor in small_model.state_dict().items():
            assert torch.equal(loaded.state_dict()[name], tensor.to(dtype).float()), name


# --- the centre hint -------------------------------------------------------------------------

def test_samples_know_where_their_shapes_are():
    """Every shape's box centre lies on the shape (never on the background); the same boxes
    moved by half a picture mostly miss (negative control: the check can fail)."""
    on, moved, total = 0, 0, 0
    for s in mp.make_samples(400, seed=31, balanced=False):
        background, (width, height) = s.image.getpixel((0, 0)), s.image.size
        shapes = mp.ANSWERS["count"].index(s.answer) + 1 if s.kind == "count" else \
            2 if s.kind == "position" else 1
        assert s.boxes is not None and len(s.boxes) == len(s.shapes) == shapes
        assert s.kind != "shape" or s.shapes == (s.answer,)
        for x, y, side in s.boxes:
            total += 1
            on += s.image.getpixel((int(x + side / 2), int(y + side / 2))) != background
            shifted = (int(x + side / 2 + width / 2) % width, int(y + side / 2 + height / 2) % height)
            moved += s.image.getpixel(shifted) != background
    assert on == total and moved < total / 2


def test_centre_targets_mark_the_patch_of_each_centre():
    picture = Image.new("RGB", (64, 64), "white")
    sample = mp.Sample(picture, "count", mp.QUESTIONS["count"], "three",
                       boxes=((2.0, 3.0, 10.0), (40.0, 20.0, 24.0), (50.0, 50.0, 12.0)),
                       shapes=("circle", "square", "triangle"))          # classes 1, 2, 3
    # centres (7, 8), (52, 32), (56, 56); on a 2 × 4 grid of 32 × 16-pixel patches (the last
    # two share one: the later box's shape is kept):
    assert mp.centre_targets(sample, 2, 4).tolist() == [1, 0, 0, 0, 0, 0, 0, 3]
    # in 8 × 8 patches, a centre on a border goes below or right of it: (7, 8) row 1, (52, 32) row 4
    assert mp.centre_targets(sample, 8, 8).view(8, 8).nonzero().tolist() == [[1, 0], [4, 6],
                                                                              [7, 7]]
    past = dataclasses.replace(sample, boxes=((60.0, 60.0, 10.0),), shapes=("square",))
    assert mp.centre_targets(past, 2, 2).tolist() == [0, 0, 0, 2]    # (65, 65): the last patch
    with pytest.raises(ValueError, match="3 boxes need as many shapes"):
        mp.centre_targets(dataclasses.replace(sample, shapes=None), 2, 4)


def test_the_centre_probe_is_a_weighted_cross_entropy(tokenizer, small_model):
    examples = [mp.encode_sample(tokenizer, s) for s in mp.make_samples(3, seed=4)]
    packed = mp.pack(examples)
    grids = [(im.shape[1] // 8, im.shape[2] // 8) for im in packed.images]
    encoded = torch.randn(sum(r * c for r, c in grids), 64)
    probe = mp.CentreProbe(small_model.config, weight=2.0)
    bias = torch.tensor([2.0, 0.0, -1.0, 1.0])                  # nothing, circle, square, triangle
    with torch.no_grad():
        probe.linear.weight.zero_()
        probe.linear.bias.copy_(bias)                           # every patch: softmax(bias)
    packed.samples[1] = dataclasses.replace(packed.samples[1], boxes=None)  # drawn elsewhere
    targets = torch.cat([mp.centre_targets(s, *grid)
                         for s, grid in zip(packed.samples, grids) if s.boxes is not None])
    expected = 2.0 * (torch.logsumexp(bias, 0) - bias[targets]).mean()
    torch.testing.assert_close(probe(encoded, packed), expected)
    assert len(targets) == grids[0][0] * grids[0][1] + grids[2][0] * grids[2][1]
    assert (targets > 0).sum() == len(examples[0].sample.boxes) + len(examples[2].sample.boxes)
    packed.samples[:] = [dataclasses.replace(s, boxes=None) for s in packed.samples]
    assert probe(encoded, packed).item() == 0.0


@pytest.mark.parametrize("merge", [1, 2])      # 2: lesson 11's merger; the probe reads before it
def test_packed_loss_adds_the_probes_loss_on_the_encoders_patches(tokenizer, merge):
    config = dataclasses.replace(
        trained_config(), mm_projector_id="patch_merge" if merge > 1 else "",
        vision_encoder=dataclasses.replace(trained_config().vision_encoder,
                                           spatial_merge_size=merge))
    torch.manual_seed(0)
    model = Pixtral(config).eval()
    cut = mp.tokenizer_for(mp.shipped_tokenizer_file(), config.vision_encoder)
    packed = mp.pack([mp.encode_sample(cut, s) for s in mp.make_samples(4, seed=8)])
    rows, probe = mp.TrainableRows(model, mp.dataset_token_ids(cut)), mp.CentreProbe(config)
    with torch.no_grad():
        hint = probe(model.vision_encoder(packed.images), packed)
        gap = mp.packed_loss(model, rows, packed, probe) - mp.packed_loss(model, rows, packed)
    torch.testing.assert_close(gap, hint)
    assert hint > 0.1


def test_train_adds_the_hint_by_default_and_leaves_no_probe(tokenizer, small_model):
    model = Pixtral(small_model.config)
    model.load_state_dict(small_model.state_dict())
    names = set(model.state_dict())
    torch.manual_seed(1)
    with_hint = mp.train(model, tokenizer, steps=1, batch_size=4, seed=2)
    model.load_state_dict(small_model.state_dict())
    torch.manual_seed(1)
    without = mp.train(model, tokenizer, steps=1, batch_size=4, seed=2, centre_weight=0.0)
    assert 0.1 < with_hint[0] - without[0] < 2          # the default loss holds the hint
    assert set(model.state_dict()) == names             # the probe never joins the model
    with pytest.raises(ValueError, match="weight must be 0 or more, got -1"):
        mp.train(model, tokenizer, steps=1, batch_size=4, centre_weight=-1.0)


def test_lr_at_warms_up_then_decays_to_zero():
    rates = [mp.lr_at(step, 1000, 1e-3, 100) for step in range(1000)]
    assert rates[0] == pytest.approx(1e-5, rel=1e-3) and rates[99] == pytest.approx(
        1e-3 * 0.5 * (1 + math.cos(math.pi * 99 / 1000)))
    assert max(rates) == rates[99] and rates[-1] < 1e-8
    assert all(a >= b for a, b in zip(rates[99:], rates[100:]))

# --- the shipped checkpoint --------------------------------------------------------------------

def test_shipped_checkpoint_is_small_and_complete():
    folder = mp.shipped_checkpoint()
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["consolidated.safetensors", "params.json"]
    assert sum((folder / n).stat().st_size for n in names) <= 20e6
    config = mp.read_params(folder / "params.json")
    assert config == trained_config()
    assert config.vocab_size == 131072
    tokenizer = mp.shipped_tokenizer()                   # the image settings of params.json
    assert (tokenizer.patch_size, tokenizer.max_image_size) == (8, 1024)
    assert config.vision_encoder.patch_size == 8


def test_a_tokenizer_with_the_wrong_patch_size_is_a_clear_error(shipped):
    """Tekken's own settings (16-pixel patches) give 4 times too few [IMG] tokens for the
    shipped model's patches of 8: refused, naming the counts."""
    ids, images = mp.Tokenizer.from_file(mp.shipped_tokenizer_file()).encode_chat(
        "What shape is it?", images=[mp.demo_picture()])
    with pytest.raises(ValueError, match=r"image 0: 8 \[IMG\] tokens, 32 patches.*patch size"):
        shipped(torch.tensor(ids), images)


# Exact match of the shipped model on every kind of question, measured when it was trained
# (tools/train_tiny.py prints it): 98.4% of the second routine's 500 pictures (count 97%,
# position 96%, colour 99%, the rest 100%); on these 300: 99.0% (position 96.7%, colour 98.3%);
# on the training generator's 200 below: 99.0% (count 95%). The floors keep the model from
# getting worse: raise them when it is better.
FLOORS = {"colour": 0.95, "shape": 0.95, "count": 0.95, "position": 0.95, "size": 0.95}
# The gallery, 132 questions: every one right, as issue 15 asks (the smallest margin between
# the answer's logit and the next one's: 1.1). Every model shipped before missed one or more
# (the last: three shapes in a row in 96 × 32 counted two), and so did seed 1 of this one.
GALLERY_FLOORS = dict.fromkeys(FLOORS, 1.0)


def test_shipped_checkpoint_answers_pictures_drawn_by_other_code(tokenizer, shipped):
    """Pictures from tools/independent_pictures.py: written separately from the training
    generator, with their own seed (not train_tiny's)."""
    accuracy, wrong = accuracy_by_kind(shipped, tokenizer, independent_samples(60, seed=2026))
    assert set(accuracy) == set(mp.QUESTIONS)
    low = {kind: a for kind, a in accuracy.items() if a < FLOORS[kind]}
    assert not low, (low, wrong)


def test_shipped_checkpoint_answers_the_gallery(tokenizer, shipped):
    samples = gallery_samples()
    assert len({id(s.image) for s in samples}) >= 30
    accuracy, wrong = accuracy_by_kind(shipped, tokenizer, samples)
    low = {kind: a for kind, a in accuracy.items() if a < GALLERY_FLOORS[kind]}
    assert not low, (low, wrong)


def test_shipped_checkpoint_counts_rows_on_the_patch_grid(tokenizer, shipped):
    """tools/grid_rows.py's 126 rows of one to three alike shapes drawn at round numbers, as
    the pixels confirm (every shape's first column and width multiples of 8). Measured: all
    126 (and every hinted run of lesson 09's table); the model shipped before the hint counted
    three 25 of 30, and the one before that two 29 and three 18: this test fails both."""
    samples = grid_rows()
    assert _grid_share(samples) == 1.0
    for s in samples:  # the boxes and shapes each sample carries are what its pixels hold
        found = sorted((shape["left"], shape["width"], shape["kind"]) for shape in _shapes(s.image))
        assert found == [(x, side, kind) for (x, _, side), kind in zip(s.boxes, s.shapes)]
        assert len(found) == mp.ANSWERS["count"].index(s.answer) + 1
    _, answers = mp.exact_match(shipped, tokenizer, samples)
    for n, floor in [("one", 0.95), ("two", 0.95), ("three", 0.9)]:
        right = [a == s.answer for s, a in zip(samples, answers) if s.answer == n]
        assert sum(right) / len(right) >= floor, (n, sum(right), len(right))


def test_shipped_checkpoint_counts_shapes_in_rows_and_in_columns(tokenizer, shipped):
    """tools/rows_and_columns.py: two or three shapes along a wide picture or down a tall one,
    as the pixels confirm (a column's shapes start at one x, a row's a side apart or more). Measured on its 903: wide
    438 right, tall 448 (of 442 and 461); the model before the generator stacked big shapes in
    tall pictures: tall 441 (two shapes in a column: 17 misses of 272)."""
    samples = rows_and_columns(200)
    for s in samples:
        found = _shapes(s.image)
        assert len(found) == len(s.boxes) == mp.ANSWERS["count"].index(s.answer) + 1
        lefts, side = sorted(shape["left"] for shape in found), s.boxes[0][2]
        if s.image.height > s.image.width:      # one above the other (a circle's edge rounds)
            assert lefts[-1] - lefts[0] <= 2
        else:
            assert all(b - a >= side for a, b in zip(lefts, lefts[1:]))
    _, answers = mp.exact_match(shipped, tokenizer, samples)
    for tall in (False, True):
        right = [a == s.answer for s, a in zip(samples, answers)
                 if (s.image.height > s.image.width) == tall]
        assert len(right) >= 50 and sum(right) / len(right) >= 0.95, (tall, sum(right))


def test_shipped_checkpoint_answers_fresh_pictures(tokenizer, shipped):
    samples = mp.make_samples(200, seed=777)   # neither the training nor the held-out seed
    accuracy, wrong = accuracy_by_kind(shipped, tokenizer, samples)
    low = {kind: a for kind, a in accuracy.items() if a < FLOORS[kind] - 0.05}
    assert not low, (low, wrong)
    # negative control: the same pictures with the questions swapped get the wrong answers
    swapped = [mp.Sample(s.image, s.kind, mp.QUESTIONS["count"], s.answer)
               for s in samples if s.kind == "shape"]
    wrong, _ = mp.exact_match(shipped, tokenizer, swapped)
    assert wrong == 0.0


def test_train_tiny_runs_and_reports_the_three_held_out_sets(tmp_path, capsys):
    import train_tiny

    assert train_tiny.main(["--steps", "3", "--batch-size", "4", "--threads", "1", "--out",
                            str(tmp_path / "tiny"), "--held-out", "5", "--independent", "1"]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == [
        "consolidated.safetensors", "params.json"]
    for name in ["the training generator (seed 1234): ", "independent_pictures.py (seed 4321): ",
                 "the gallery, tests/gallery/: "]:
        line = next(line for line in out.splitlines() if name in line)
        assert all(f"{kind} " in line for kind in mp.QUESTIONS), line
