"""minipixtral.reference: the helpers every check against a reference shares.

- `randomize` is seeded (same seed → the same weights, another seed → others), leaves the
  global RNG alone, draws RMSNorm gains 1 + N(0, gain_std²) and every other tensor
  N(0, std²), and keeps the gains at exactly 1 with gain_std=0;
- `relative_error` is max |ours − ref| / max |ref| and refuses tensors of different shapes;
- the named configurations are the documented sizes;
- `write_random_checkpoint` writes the same bytes twice (seeded), loadable as tiny_config;
- without transformers the module still imports, and every twin raises an ImportError that
  says how to install it (`pip install -e '.[dev]'`).
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch

import minipixtral as mp
from minipixtral import reference
from minipixtral.reference import (randomize, relative_error, tiny_config, trained_config,
                                   write_random_checkpoint)

SMALL = dataclasses.replace(tiny_config(), vocab_size=300)  # the embeddings cost nothing


def gains(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The RMSNorm gains of model, by parameter name."""
    norms = {id(m.weight) for m in model.modules() if isinstance(m, mp.RMSNorm)}
    return {name: p for name, p in model.named_parameters() if id(p) in norms}


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


# --- randomize ------------------------------------------------------------------------------
def test_randomize_is_seeded():
    first = weights(randomize(mp.Pixtral(SMALL), seed=3))
    again = weights(randomize(mp.Pixtral(SMALL), seed=3))
    other = weights(randomize(mp.Pixtral(SMALL), seed=4))
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert all(not torch.equal(first[n], other[n]) for n in first)  # every tensor is drawn


def test_randomize_leaves_the_global_generator_alone():
    encoder = mp.VisionEncoder(SMALL.vision_encoder)  # its default init draws from it
    torch.manual_seed(0)
    expected = torch.rand(5)
    torch.manual_seed(0)
    randomize(encoder)
    assert torch.equal(torch.rand(5), expected)


def test_randomize_draws_gains_around_one_and_the_rest_around_zero():
    model = mp.Pixtral(SMALL).train()
    assert randomize(model, std=0.2, gain_std=0.1) is model and not model.training
    norm = gains(model)
    n_layers, n_vision_layers = SMALL.n_layers, SMALL.vision_encoder.num_hidden_layers
    assert len(norm) == 2 * n_layers + 1 + 2 * n_vision_layers + 1  # ln_pre too
    drawn = torch.cat([p.detach().flatten() for p in norm.values()])
    assert abs(drawn.mean() - 1) < 0.02 and 0.08 < drawn.std() < 0.12
    assert not (drawn == 1).any()
    rest = torch.cat([p.detach().flatten() for n, p in model.named_parameters() if n not in norm])
    assert abs(rest.mean()) < 0.01 and abs(rest.std() - 0.2) < 0.002


def test_randomize_with_gain_std_zero_keeps_the_gains_at_one_and_draws_nothing_for_them():
    model = randomize(mp.Pixtral(SMALL), seed=2, std=0.02, gain_std=0.0)
    norm = gains(model)
    assert norm and all(torch.equal(p, torch.ones_like(p)) for p in norm.values())
    # the other tensors are the generator's draws in parameter order, gains skipped
    generator = torch.Generator().manual_seed(2)
    for name, parameter in model.named_parameters():
        if name not in norm:
            expected = 0.02 * torch.randn(parameter.shape, generator=generator)
            assert torch.equal(parameter, expected), name
    # control: with gain_std > 0 the gains take draws, and the tensors after them change
    drawn = randomize(mp.Pixtral(SMALL), seed=2, std=0.02, gain_std=0.1)
    assert torch.equal(drawn.tok_embeddings.weight, model.tok_embeddings.weight)
    assert not torch.equal(drawn.output.weight, model.output.weight)


# --- relative_error --------------------------------------------------------------------------
def test_relative_error_value():
    ours, ref = torch.tensor([1.0, 2.0, -3.0]), torch.tensor([1.0, 4.0, -3.0])
    assert relative_error(ours, ref) == pytest.approx(0.5)
    assert relative_error(ref, ref) == 0.0
    assert relative_error(ours.bfloat16(), ref.double()) == pytest.approx(0.5)  # in float32


@pytest.mark.parametrize("ours, ref", [(torch.zeros(3), torch.zeros(4)),
                                       (torch.zeros(2, 3), torch.zeros(3, 2)),
                                       (torch.zeros(1, 3), torch.zeros(3))],
                         ids=["length", "transposed", "broadcastable"])
def test_relative_error_refuses_other_shapes(ours, ref):
    with pytest.raises(ValueError, match=r"shapes differ: \(.*\) vs \(.*\)"):
        relative_error(ours, ref)


# --- the named configurations ----------------------------------------------------------------
def n_parameters(config: mp.PixtralConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in mp.Pixtral(config).parameters())


def test_named_configurations():
    tiny, trained = tiny_config(), trained_config()
    assert (tiny.dim, tiny.vision_encoder.hidden_size) == (64, 32)
    assert tiny.n_kv_heads < tiny.n_heads  # GQA, as in Pixtral
    assert tiny.vocab_size == mp.PixtralConfig().vocab_size  # the real vocabulary
    assert (trained.dim, trained.vision_encoder.hidden_size) == (32, 64)
    assert (tiny.vision_encoder.patch_size, trained.vision_encoder.patch_size) == (16, 8)
    assert tiny_config() is not tiny_config()  # a fresh one each call: safe to change
    assert round(n_parameters(reference.benchmark_config()) / 1e6) == 163
    loading = reference.loading_config()
    assert round(n_parameters(loading) / 1e6) == 396
    assert round(4 * n_parameters(loading) / 1e9, 1) == 1.6


# --- write_random_checkpoint -----------------------------------------------------------------
def test_write_random_checkpoint_is_seeded(tmp_path):
    folder = write_random_checkpoint(tmp_path / "a")
    again = write_random_checkpoint(tmp_path / "b")
    names = ["consolidated.safetensors", "params.json", "tekken.json"]
    assert sorted(p.name for p in folder.iterdir()) == names
    for name in names:
        assert (folder / name).read_bytes() == (again / name).read_bytes(), name
    other = write_random_checkpoint(tmp_path / "c", seed=1)
    assert (other / names[0]).read_bytes() != (folder / names[0]).read_bytes()
    model = mp.Pixtral.from_folder(folder, device="cpu", dtype=torch.bfloat16)
    assert model.config == tiny_config()
    assert all(torch.equal(p, torch.ones_like(p)) for p in gains(model).values())
    assert abs(model.output.weight.float().std() - 0.02) < 0.001


def test_write_random_checkpoint_config_and_dtype(tmp_path):
    folder = write_random_checkpoint(tmp_path / "small", SMALL, dtype=torch.float32)
    model = mp.Pixtral.from_folder(folder, device="cpu", dtype=torch.float32)
    assert model.config == SMALL
    expected = randomize(mp.Pixtral(SMALL), std=0.02, gain_std=0.0).state_dict()
    assert all(torch.equal(model.state_dict()[n], t) for n, t in expected.items())


# --- without transformers --------------------------------------------------------------------
TWINS = {  # each twin of transformers, called on a Pixtral (on the meta device: no weights)
    "hf_vision_config": lambda model: reference.hf_vision_config(model.config.vision_encoder),
    "hf_text_config": lambda model: reference.hf_text_config(model.config),
    "hf_vision_model": lambda model: reference.hf_vision_model(model.vision_encoder),
    "hf_mistral_model": lambda model: reference.hf_mistral_model(model),
    "hf_llava_model": lambda model: reference.hf_llava_model(model),
}


@pytest.fixture(scope="module")
def meta_model():
    with torch.device("meta"):
        return mp.Pixtral(SMALL)


@pytest.mark.parametrize("name", TWINS)
def test_twins_without_transformers_say_how_to_install_it(monkeypatch, meta_model, name):
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` fails
    with pytest.raises(ImportError, match=r"pip install -e '\.\[dev\]'"):
        TWINS[name](meta_model)


def test_twins_with_transformers(meta_model):
    """Control for the test above: the configurations are built when transformers is there."""
    pytest.importorskip("transformers")
    assert TWINS["hf_text_config"](meta_model).hidden_size == SMALL.dim
    assert TWINS["hf_vision_config"](meta_model).hidden_size == SMALL.vision_encoder.hidden_size


def test_the_module_imports_without_transformers():
    code = ("import sys; sys.modules['transformers'] = None\n"
            "from minipixtral.reference import randomize, tiny_config, write_random_checkpoint\n"
            "assert tiny_config().dim == 64\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
