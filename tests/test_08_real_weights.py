"""Lesson 08: reading checkpoints in both layouts, against safetensors and transformers.

Tiny checkpoints are written in the real on-disk formats in tmp_path: Mistral's (params.json +
consolidated.safetensors + tekken.json), the Hugging Face layout as transformers'
save_pretrained writes it (the Hub's legacy names), and the same tensors under transformers 5's
in-memory names. Weights are minipixtral.reference.randomize's (N(0, 0.2), gains 1 + N(0, 0.1))
so that a missing q/k permutation shows; float32; relative max error ≤ 1e-5 on logits. The
readers fill the class they are given (Pixtral.from_folder / from_hf_folder pass theirs).
Every bad input must raise a clear, specific error.
"""
from __future__ import annotations

import json
import mmap
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import minipixtral as mp
from minipixtral.hf_layout import hf_to_mistral_names, load_hf_folder, read_hf_config
from minipixtral.reference import (decoder_state_dict_to_hf, hf_llava_model, hf_pixel_inputs,
                                   randomize, relative_error, tiny_config,
                                   vision_state_dict_to_hf)
from minipixtral.weights import (load_folder, params_dict, read_params, read_safetensors,
                                 save_folder)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """{'mistral', 'hf', 'hf_v5'}: one float32 model in the three layouts, + the model."""
    root = tmp_path_factory.mktemp("checkpoints")
    model = randomize(mp.Pixtral(tiny_config()))
    mistral = save_folder(model, root / "mistral", mp.shipped_tokenizer_file(), torch.float32)
    hf = hf_llava_model(model)
    hf.save_pretrained(root / "hf")
    v5 = root / "hf_v5"
    v5.mkdir()
    shutil.copyfile(root / "hf" / "config.json", v5 / "config.json")
    save_file({k: v.contiguous() for k, v in hf.state_dict().items()},
              str(v5 / "model-00001-of-00001.safetensors"))
    return {"mistral": mistral, "hf": root / "hf", "hf_v5": v5, "model": model, "hf_model": hf}


@pytest.fixture(scope="module")
def prompt(tokenizer):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (40, 70, 3), dtype=np.uint8))
    ids, images = tokenizer.encode_chat("What is this?", images=[image])
    return torch.tensor(ids), images


@pytest.fixture(scope="module")
def reference_logits(folders, prompt):
    ids, images = prompt
    pixels, sizes = hf_pixel_inputs(images)
    with torch.inference_mode():
        return folders["hf_model"](input_ids=ids[None], pixel_values=pixels,
                                   image_sizes=sizes).logits[0]


def logits_of(model, prompt):
    ids, images = prompt
    with torch.inference_mode():
        return model(ids, images)


# --- the layouts give the same model, equal to transformers -----------------------------------

def test_hf_files_use_the_hub_names(folders):
    names = set(read_safetensors(folders["hf"] / "model.safetensors"))
    assert "language_model.model.layers.0.self_attn.q_proj.weight" in names
    names_v5 = set(read_safetensors(folders["hf_v5"] / "model-00001-of-00001.safetensors"))
    assert "model.language_model.layers.0.self_attn.q_proj.weight" in names_v5
    assert "lm_head.weight" in names_v5


@pytest.mark.parametrize("layout", ["mistral", "hf", "hf_v5"])
def test_every_layout_gives_the_same_weights_and_logits(folders, prompt, reference_logits,
                                                        layout):
    load = mp.Pixtral.from_folder if layout == "mistral" else mp.Pixtral.from_hf_folder
    model = load(folders[layout])
    assert model.config == folders["model"].config
    state, original = model.state_dict(), folders["model"].state_dict()
    assert state.keys() == original.keys()
    assert all(torch.equal(state[n], original[n]) for n in original)
    logits = logits_of(model, prompt)
    assert torch.equal(logits, logits_of(folders["model"], prompt))
    assert relative_error(logits, reference_logits) <= 1e-5


def test_greedy_tokens_equal_transformers(folders, prompt):
    ids, images = prompt
    model = mp.Pixtral.from_hf_folder(folders["hf"])
    pixels, sizes = hf_pixel_inputs(images)
    with torch.inference_mode():
        theirs = folders["hf_model"].generate(input_ids=ids[None], pixel_values=pixels,
                                              image_sizes=sizes, max_new_tokens=6,
                                              do_sample=False, pad_token_id=11)
    assert mp.generate(model, ids, images, max_new_tokens=6) == theirs[0, len(ids):].tolist()


def test_without_the_permutation_the_logits_differ(folders, prompt, reference_logits):
    """Negative control: the conversion's inverse q/k permutation is what makes them equal."""
    config = folders["model"].config
    tensors = hf_to_mistral_names(read_safetensors(folders["hf"] / "model.safetensors"), config)
    for name, tensor in tensors.items():
        if name.endswith(("attention.wq.weight", "attention.wk.weight")):
            head_dim = (config.head_dim if name.startswith("layers.")
                        else config.vision_encoder.head_dim)
            tensors[name] = mp.permute_qk_for_rotate_half(tensor, tensor.shape[0] // head_dim)
    wrong = mp.Pixtral(config)
    wrong.load_state_dict(tensors, strict=True)
    assert relative_error(logits_of(wrong.eval(), prompt), reference_logits) > 1e-2


def test_hf_to_mistral_names_covers_the_real_model():
    """All 585 names of Pixtral-12B (on meta), written by the tests' own conversion in
    transformers 5's names, come back as ours; and a few Hub (legacy) names."""
    with torch.device("meta"):
        real = mp.Pixtral(mp.PixtralConfig())
    state = real.state_dict()
    hf = decoder_state_dict_to_hf(state, real.config, "model.language_model.")
    vision = {k[len("vision_encoder."):]: v for k, v in state.items()
              if k.startswith("vision_encoder.")}
    for name, tensor in vision_state_dict_to_hf(vision, 16).items():
        hf["model.vision_tower." + name] = tensor
    for ours, theirs in [("w_in", "linear_1"), ("w_out", "linear_2")]:
        for kind in ("weight", "bias"):
            hf[f"model.multi_modal_projector.{theirs}.{kind}"] = \
                state[f"vision_language_adapter.{ours}.{kind}"]
    names = hf_to_mistral_names(hf, real.config)
    assert len(names) == 585 and names.keys() == state.keys()
    assert all(names[n].shape == state[n].shape for n in state)
    legacy = {"language_model.model.embed_tokens.weight": "tok_embeddings.weight",
              "language_model.lm_head.weight": "output.weight",
              "language_model.model.layers.39.post_attention_layernorm.weight":
                  "layers.39.ffn_norm.weight",
              "vision_tower.transformer.layers.3.feed_forward.gate_proj.weight":
                  "vision_encoder.transformer.layers.3.feed_forward.w1.weight",
              "multi_modal_projector.linear_2.bias": "vision_language_adapter.w_out.bias"}
    dummy = torch.zeros(1)
    assert {n: next(iter(hf_to_mistral_names({n: dummy}, real.config))) for n in legacy} == legacy


def test_read_hf_config_equals_the_model_config(folders):
    assert read_hf_config(folders["hf"] / "config.json") == folders["model"].config


def test_pixtral_classmethods(folders, prompt):
    ours = mp.Pixtral.from_folder(folders["mistral"], device="cpu")
    theirs = mp.Pixtral.from_hf_folder(folders["hf"], device="cpu")
    assert torch.equal(logits_of(ours, prompt), logits_of(theirs, prompt))


def test_the_readers_fill_the_class_they_are_given(folders, prompt):
    class Subclass(mp.Pixtral):
        pass

    expected = logits_of(folders["model"], prompt)
    for model in [load_folder(Subclass, folders["mistral"], "cpu", torch.float32),
                  load_hf_folder(Subclass, folders["hf"], "cpu", torch.float32),
                  Subclass.from_folder(folders["mistral"], device="cpu"),
                  Subclass.from_hf_folder(folders["hf_v5"], device="cpu")]:
        assert type(model) is Subclass
        assert torch.equal(logits_of(model, prompt), expected)


# --- safetensors: equal to the library, memory-mapped -------------------------------------------

def test_read_safetensors_equals_load_file(folders):
    path = folders["hf"] / "model.safetensors"
    ours, reference = read_safetensors(path), load_file(path)
    assert ours.keys() == reference.keys()
    for name, tensor in reference.items():
        assert ours[name].dtype == tensor.dtype and ours[name].shape == tensor.shape
        assert torch.equal(ours[name], tensor), name


def test_read_safetensors_all_dtypes(tmp_path):
    tensors = {"a": torch.arange(6, dtype=torch.bfloat16).view(2, 3),
               "b": torch.tensor([1, -2], dtype=torch.int64), "c": torch.tensor([True, False]),
               "d": torch.zeros(0, 4), "e": torch.tensor(3.5, dtype=torch.float64)}
    save_file(tensors, str(tmp_path / "x.safetensors"), metadata={"format": "pt"})
    ours = read_safetensors(tmp_path / "x.safetensors")
    assert ours.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert ours[name].dtype == tensor.dtype and torch.equal(ours[name], tensor), name


def file_mapping(path: Path) -> tuple[int, int] | None:
    """(start, end) of the address range where this process maps `path` (Linux), or None."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return None
    ranges = [tuple(int(x, 16) for x in line.split()[0].split("-"))
              for line in maps.read_text().splitlines() if line.endswith(str(path.resolve()))]
    return (min(r[0] for r in ranges), max(r[1] for r in ranges)) if ranges else None


def offsets_in_file(path: Path) -> dict[str, int]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return {k: 8 + n + v["data_offsets"][0] for k, v in json.loads(raw[8:8 + n]).items()
            if k != "__metadata__"}


def assert_views_of_file(tensors: dict[str, torch.Tensor], path: Path):
    """Each tensor's address is the file's offset plus one common base, inside the mapping."""
    offsets = offsets_in_file(path)
    bases = {t.data_ptr() - offsets[name] for name, t in tensors.items()}
    assert len(bases) == 1, "the tensors are not views of one mapped copy of the file"
    mapping = file_mapping(path)
    if mapping is not None:
        base = bases.pop()
        assert mapping[0] <= base and base + path.stat().st_size <= mapping[1] + mmap.PAGESIZE


def test_read_safetensors_returns_views_of_the_mapped_file(folders):
    path = folders["mistral"] / "consolidated.safetensors"
    tensors = read_safetensors(path)
    assert_views_of_file(tensors, path)
    copied = {name: tensor.clone() for name, tensor in tensors.items()}
    with pytest.raises(AssertionError):   # negative control: copies are not views
        assert_views_of_file(copied, path)


def test_loading_with_the_file_dtype_shares_the_file(folders, checkpoint):
    path = folders["mistral"] / "consolidated.safetensors"
    model = mp.Pixtral.from_folder(folders["mistral"], device="cpu", dtype=torch.float32)
    assert_views_of_file(dict(model.named_parameters()), path)
    bf16 = checkpoint                                       # written in bfloat16
    kept = mp.Pixtral.from_folder(bf16, dtype=torch.bfloat16)
    assert_views_of_file(dict(kept.named_parameters()), bf16 / "consolidated.safetensors")
    converted = mp.Pixtral.from_folder(bf16)                # float32 on the CPU: a copy
    with pytest.raises(AssertionError):
        assert_views_of_file(dict(converted.named_parameters()),
                             bf16 / "consolidated.safetensors")


def test_writing_into_a_view_leaves_the_file_unchanged(folders):
    path = folders["mistral"] / "consolidated.safetensors"
    before = path.read_bytes()
    read_safetensors(path)["norm.weight"].fill_(123.0)
    assert path.read_bytes() == before


# --- dtype, device, saving ------------------------------------------------------------------

def test_dtype_defaults_and_choice(checkpoint):
    folder = checkpoint                                     # written in bfloat16
    assert load_safetensors_dtype(folder) == torch.bfloat16
    default = mp.Pixtral.from_folder(folder, device="cpu")
    assert {p.dtype for p in default.parameters()} == {torch.float32}
    assert all(not p.requires_grad for p in default.parameters()) and not default.training
    bf16 = mp.Pixtral.from_folder(folder, device="cpu", dtype=torch.bfloat16)
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    assert all(torch.equal(a.float(), b) for a, b in
               zip(bf16.state_dict().values(), default.state_dict().values()))


def load_safetensors_dtype(folder: Path) -> torch.dtype:
    return next(iter(read_safetensors(folder / "consolidated.safetensors").values())).dtype


def test_unsupported_dtype_and_device(folders):
    with pytest.raises(ValueError, match="float16 is not supported"):
        mp.Pixtral.from_folder(folders["mistral"], dtype=torch.float16)
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        mp.Pixtral.from_folder(folders["mistral"], device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            mp.Pixtral.from_folder(folders["mistral"], device="cuda")


def test_save_folder_round_trip_leaves_no_partial_file(folders, tmp_path):
    out = save_folder(folders["model"], tmp_path / "out", mp.shipped_tokenizer_file())
    assert sorted(p.name for p in out.iterdir()) == ["consolidated.safetensors", "params.json",
                                                     "tekken.json"]
    assert not list(out.glob("*.partial")) and not list(out.glob(".*"))
    reloaded = mp.Pixtral.from_folder(out, dtype=torch.bfloat16)
    for name, tensor in folders["model"].state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], tensor.to(torch.bfloat16)), name
    (tmp_path / "p.json").write_text(json.dumps(params_dict(mp.PixtralConfig())))
    assert read_params(tmp_path / "p.json") == mp.PixtralConfig()


def test_interrupted_save_keeps_the_old_file(folders, tmp_path, monkeypatch):
    out = save_folder(folders["model"], tmp_path / "out", mp.shipped_tokenizer_file())
    before = (out / "consolidated.safetensors").read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr("minipixtral.weights.save_file", fail)
    with pytest.raises(OSError, match="disk full"):
        save_folder(folders["model"], out, mp.shipped_tokenizer_file(), torch.float32)
    assert (out / "consolidated.safetensors").read_bytes() == before


# --- bad inputs: each names the problem -----------------------------------------------------

@pytest.fixture()
def good(folders, tmp_path):
    """A fresh copy of the float32 Mistral-layout checkpoint, to break."""
    return Path(shutil.copytree(folders["mistral"], tmp_path / "copy"))


def test_missing_folder_and_files(good, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        mp.Pixtral.from_folder(tmp_path / "nowhere")
    (good / "params.json").unlink()
    with pytest.raises(FileNotFoundError, match="has no params.json"):
        mp.Pixtral.from_folder(good)


def test_missing_safetensors_mentions_pickle(good):
    (good / "consolidated.safetensors").rename(good / "consolidated.pth")
    with pytest.raises(FileNotFoundError, match=r"no consolidated\.safetensors.*pickle"):
        mp.Pixtral.from_folder(good)
    (good / "consolidated.pth").unlink()
    with pytest.raises(FileNotFoundError, match=r"no consolidated\.safetensors$"):
        mp.Pixtral.from_folder(good)


def test_truncated_and_corrupt_safetensors(good):
    path = good / "consolidated.safetensors"
    raw = path.read_bytes()
    for cut in [len(raw) - 1, len(raw) // 2, 100, 5]:
        path.write_bytes(raw[:cut])
        with pytest.raises(ValueError, match="truncated"):
            mp.Pixtral.from_folder(good)
    path.write_bytes(raw[:8] + b"#" * 16 + raw[24:])
    with pytest.raises(ValueError, match="corrupt safetensors header"):
        mp.Pixtral.from_folder(good)
    (n,) = struct.unpack("<Q", raw[:8])
    header = raw[8:8 + n].replace(b'"F32"', b'"F99"', 1)
    path.write_bytes(raw[:8] + header + raw[8 + n:])
    with pytest.raises(ValueError, match="corrupt header entry"):
        mp.Pixtral.from_folder(good)


def test_missing_and_unexpected_keys_are_named(good, folders):
    tensors = load_file(good / "consolidated.safetensors")
    del tensors["layers.1.attention.wv.weight"]
    tensors["layers.0.attention.bias"] = torch.zeros(3)
    save_file(tensors, str(good / "consolidated.safetensors"))
    with pytest.raises(ValueError) as err:
        mp.Pixtral.from_folder(good)
    message = str(err.value)
    assert "missing 1 tensor(s): layers.1.attention.wv.weight" in message
    assert "unexpected 1 tensor(s): layers.0.attention.bias" in message


def test_wrong_shape_names_tensor_expected_and_found(good):
    params = json.loads((good / "params.json").read_text())
    params["hidden_dim"] = 96
    (good / "params.json").write_text(json.dumps(params))
    with pytest.raises(ValueError, match=re.escape(
            "layers.0.feed_forward.w1.weight has shape (128, 64), the config implies (96, 64)")):
        mp.Pixtral.from_folder(good)


def test_layouts_are_told_apart(folders):
    with pytest.raises(ValueError, match="Hugging Face layout.*from_hf_folder"):
        mp.Pixtral.from_folder(folders["hf"])
    with pytest.raises(FileNotFoundError, match="Mistral's layout.*from_folder"):
        mp.Pixtral.from_hf_folder(folders["mistral"])


@pytest.mark.parametrize("change, message", [
    ({"dim": None, "dimm": 64}, "did you mean 'dim'"),
    ({"vision_encoder.num_hiden_layers": 2, "vision_encoder.num_hidden_layers": None},
     "did you mean 'num_hidden_layers'"),
    ({"n_heads": 4.0}, "'n_heads' must be a positive int"),
    ({"n_layers": True}, "'n_layers' must be a positive int"),
    ({"n_layers": 0}, "'n_layers' must be a positive int"),
    ({"vocab_size": None}, r"lacks the field\(s\) \['vocab_size'\]"),
    ({"vision_encoder.patch_size": None}, r"vision_encoder lacks the field\(s\) \['patch_size'\]"),
    ({"sliding_window": 4096}, "sliding_window=4096 is not supported"),
    ({"vision_encoder": None}, "no 'vision_encoder' section"),
])
def test_bad_params_json(good, change, message):
    params = json.loads((good / "params.json").read_text())
    for key, value in change.items():
        section, _, field = key.rpartition(".")
        target = params[section] if section else params
        target.pop(field, None)
        if value is not None:
            target[field] = value
    (good / "params.json").write_text(json.dumps(params))
    with pytest.raises(ValueError, match=message):
        mp.Pixtral.from_folder(good)


def test_params_json_that_is_not_json(good):
    (good / "params.json").write_text("{dim: 64")
    with pytest.raises(ValueError, match="not valid JSON"):
        mp.Pixtral.from_folder(good)


def test_unknown_extra_field_only_warns(good):
    params = json.loads((good / "params.json").read_text())
    params["lora"] = {"rank": 8}
    (good / "params.json").write_text(json.dumps(params))
    with pytest.warns(UserWarning, match="'lora' is not used"):
        mp.Pixtral.from_folder(good)


def test_bad_hf_config(folders, tmp_path):
    folder = Path(shutil.copytree(folders["hf"], tmp_path / "hf"))
    config = json.loads((folder / "config.json").read_text())
    for key, value, message in [("vision_feature_layer", -2, "vision_feature_layer=-2"),
                                ("vision_feature_select_strategy", "default", "'default'")]:
        (folder / "config.json").write_text(json.dumps(dict(config, **{key: value})))
        with pytest.raises(ValueError, match=message):
            mp.Pixtral.from_hf_folder(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(ValueError, match="not the config.json of a Llava/Pixtral model"):
        mp.Pixtral.from_hf_folder(folder)
