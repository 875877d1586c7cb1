"""Lesson 09: the synthetic dataset, packing, the answer-only loss, the trainable rows, saving
and loading, and the shipped checkpoint's accuracy on fresh pictures."""
import math
import os
import random

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import minipixtral as mp
from minipixtral import Pixtral
from minipixtral.reference import trained_config


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
    samples = mp.make_samples(200, 0)
    sizes = {s.image.size for s in samples}
    assert sizes == {(w, h) for w in mp.SIDES for h in mp.SIDES}   # all nine layouts
    assert [s.kind for s in samples[:5]] == list(mp.QUESTIONS)
    for kind, answers in mp.ANSWERS.items():
        got = {s.answer for s in samples if s.kind == kind}
        assert got == set(answers), f"{kind}: answers {got}, expected all of {answers}"
    with pytest.raises(ValueError, match="unknown kind"):
        mp.random_sample(random.Random(0), "texture")


def _coloured_cells(image):
    """The 16×16 cells holding non-white pixels, and the colours present."""
    pixels = np.asarray(image)
    ink = (pixels != 255).any(-1)
    cells = {(y // 16, x // 16) for y, x in zip(*ink.nonzero())}
    colours = {tuple(p) for p in pixels[ink]}
    return ink, cells, colours


def test_answers_agree_with_the_pixels():
    names = {rgb: name for name, rgb in mp.COLOURS.items()}
    for s in mp.make_samples(250, 21):
        ink, cells, colours = _coloured_cells(s.image)
        if s.kind == "colour":
            assert {names[c] for c in colours} == {s.answer}
        elif s.kind == "count":
            assert len(cells) == ["one", "two", "three"].index(s.answer) + 1
        elif s.kind == "position":
            first_column = ink.any(0).nonzero()[0][0]
            left = {tuple(p) for p in np.asarray(s.image)[:, first_column] if tuple(p) in names}
            assert {names[c] for c in left} == {s.answer}
        elif s.kind == "size":
            assert (ink.sum() > 200) == (s.answer == "big")


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
    losses = mp.train(model, tokenizer, steps=20, batch_size=4, lr=3e-2, warmup=1, seed=1)
    assert len(losses) == 20 and losses[0] > 10 and np.mean(losses[-5:]) < losses[0] - 3
    assert not model.training
    used = torch.tensor(mp.dataset_token_ids(tokenizer))
    changed = (model.tok_embeddings.weight != before).any(1).nonzero().flatten()
    assert set(changed.tolist()) <= set(used.tolist()) and len(changed) > 5
    assert not torch.equal(model.vision_encoder.patch_conv.weight, vision_before)


def test_save_and_load_round_trip(tmp_path, small_model):
    for dtype in (torch.float32, torch.bfloat16):
        folder = mp.save_folder(small_model, tmp_path / str(dtype), mp.shipped_tokenizer_file(),
                                dtype=dtype)
        loaded = Pixtral.from_folder(folder, device="cpu")
        for name, tensor in small_model.state_dict().items():
            assert torch.equal(loaded.state_dict()[name], tensor.to(dtype).float()), name


# --- the shipped checkpoint --------------------------------------------------------------------

def test_shipped_checkpoint_is_small_and_complete():
    folder = mp.shipped_checkpoint()
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["consolidated.safetensors", "params.json"]
    assert sum((folder / n).stat().st_size for n in names) <= 20e6
    config = mp.read_params(folder / "params.json")
    assert config == trained_config()
    assert config.vocab_size == 131072


def test_shipped_checkpoint_answers_fresh_pictures(tokenizer, shipped):
    samples = mp.make_samples(200, seed=777)   # neither the training nor the held-out seed
    accuracy, answers = mp.exact_match(shipped, tokenizer, samples)
    assert accuracy >= 0.95, (accuracy, [(s.kind, s.answer, a) for s, a in
                                         zip(samples, answers) if a != s.answer])
    # negative control: the same pictures with the questions swapped get the wrong answers
    swapped = [mp.Sample(s.image, s.kind, mp.QUESTIONS["count"], s.answer)
               for s in samples if s.kind == "shape"]
    wrong, _ = mp.exact_match(shipped, tokenizer, swapped)
    assert wrong == 0.0
