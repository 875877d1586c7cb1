"""Build transformers' reference models with exactly our weights; shared test helpers.

Used by the tests and by the notebooks' reference checks (transformers is a test
dependency). The name tables are the package's own (minipixtral.weights, read in the other
direction by its Hugging Face loader): a wrong table would make the logits differ from
transformers', so the comparisons still test it. wq/wk get the RoPE permutation of
docs/PIXTRAL.md section 2.4.
"""
from __future__ import annotations

import torch

from minipixtral.rope import permute_qk_for_rotate_half
from minipixtral.vision import VisionConfig, VisionEncoder
from minipixtral.weights import ADAPTER_HF_NAMES, DECODER_HF_NAMES, VISION_HF_NAMES


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """normal(0, 0.2) matrices, 1 + normal(0, 0.1) norm gains: every part matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            is_gain = name.endswith("norm.weight") or "ln_pre" in name
            parameter.copy_(1 + 0.1 * noise if is_gain else 0.2 * noise)
    return model.eval()


def relative_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """max |ours − ref| / max |ref|."""
    return ((ours - ref).abs().max() / ref.abs().max()).item()

def _rename(name: str, names: list[tuple[str, str]]) -> str:
    """Mistral's name inside a block → transformers' (tables from minipixtral.weights)."""
    for mistral, hf in names:
        name = name.replace(mistral, hf)
    return name


def vision_state_dict_to_hf(state: dict[str, torch.Tensor], n_heads: int) -> dict[str, torch.Tensor]:
    """Our VisionEncoder's state dict → transformers' PixtralVisionModel's."""
    out = {}
    for name, tensor in state.items():
        if name.endswith(("attention.wq.weight", "attention.wk.weight")):
            tensor = permute_qk_for_rotate_half(tensor, n_heads)
        out[_rename(name, VISION_HF_NAMES)] = tensor
    return out


def hf_vision_config(config: VisionConfig):
    from transformers import PixtralVisionConfig
    return PixtralVisionConfig(
        hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
        num_channels=config.num_channels, image_size=config.image_size,
        patch_size=config.patch_size, rope_theta=config.rope_theta,
        hidden_act="silu",  # transformers defaults to "gelu": wrong for Pixtral (PIXTRAL.md §8.13)
        attn_implementation="eager")


def hf_vision_model(encoder: VisionEncoder):
    """transformers' PixtralVisionModel holding the same weights as `encoder`, in eval mode."""
    from transformers import PixtralVisionModel
    model = PixtralVisionModel(hf_vision_config(encoder.config)).eval()
    model.load_state_dict(vision_state_dict_to_hf(encoder.state_dict(),
                                                  encoder.config.num_attention_heads), strict=True)
    return model


def hf_pixel_inputs(images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """A list of [3, H, W] → (pixel_values [N, 3, H_max, W_max] zero-padded, image_sizes [N, 2])."""
    height = max(i.shape[1] for i in images)
    width = max(i.shape[2] for i in images)
    pixels = torch.zeros(len(images), 3, height, width)
    for n, image in enumerate(images):
        pixels[n, :, :image.shape[1], :image.shape[2]] = image
    return pixels, torch.tensor([list(i.shape[1:]) for i in images])


def decoder_state_dict_to_hf(state: dict[str, torch.Tensor], config, prefix: str
                             ) -> dict[str, torch.Tensor]:
    """Our Decoder's top-level keys → transformers' Mistral names (`prefix` + name), lm_head."""
    out = {}
    for name, tensor in state.items():
        if name.startswith(("vision_encoder.", "vision_language_adapter.")):
            continue
        if name == "output.weight":
            out["lm_head.weight"] = tensor
            continue
        if name.endswith("attention.wq.weight"):
            tensor = permute_qk_for_rotate_half(tensor, config.n_heads)
        if name.endswith("attention.wk.weight"):
            tensor = permute_qk_for_rotate_half(tensor, config.n_kv_heads)
        out[prefix + _rename(name, DECODER_HF_NAMES)] = tensor
    return out


def hf_text_config(config):
    from transformers import MistralConfig
    return MistralConfig(
        vocab_size=config.vocab_size, hidden_size=config.dim, intermediate_size=config.hidden_dim,
        num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_kv_heads, head_dim=config.head_dim,
        rms_norm_eps=config.norm_eps, rope_theta=config.rope_theta,
        max_position_embeddings=131072, sliding_window=None,  # transformers' default is 4096
        tie_word_embeddings=False, hidden_act="silu", bos_token_id=1, eos_token_id=2,
        pad_token_id=11, attn_implementation="eager")


def hf_mistral_model(decoder):
    """transformers' MistralForCausalLM with the same weights as our Decoder."""
    from transformers import MistralForCausalLM
    model = MistralForCausalLM(hf_text_config(decoder.config)).eval()
    model.load_state_dict(decoder_state_dict_to_hf(decoder.state_dict(), decoder.config,
                                                   "model."), strict=True)
    return model


def hf_llava_model(pixtral):
    """transformers' LlavaForConditionalGeneration with the same weights as our Pixtral."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration
    c = pixtral.config
    config = LlavaConfig(
        vision_config=hf_vision_config(c.vision_encoder), text_config=hf_text_config(c),
        image_token_index=c.image_token_id, projector_hidden_act="gelu",
        multimodal_projector_bias=c.adapter_bias, tie_word_embeddings=False,
        vision_feature_layer=-1, vision_feature_select_strategy="full")  # defaults: -2, "default"
    config._attn_implementation = "eager"
    model = LlavaForConditionalGeneration(config).eval()
    state = pixtral.state_dict()
    out = decoder_state_dict_to_hf(state, c, "model.language_model.")
    vision = {k[len("vision_encoder."):]: v for k, v in state.items()
              if k.startswith("vision_encoder.")}
    for name, tensor in vision_state_dict_to_hf(vision, c.vision_encoder.num_attention_heads).items():
        out["model.vision_tower." + name] = tensor
    for name, tensor in state.items():
        if name.startswith("vision_language_adapter."):
            rest = name[len("vision_language_adapter."):]
            out["model.multi_modal_projector." + _rename(rest, ADAPTER_HF_NAMES)] = tensor
    model.load_state_dict(out, strict=True)
    return model
