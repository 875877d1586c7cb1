"""Build transformers' reference models with exactly our weights.

Used only by the tests (transformers is a test dependency). The mapping of names is the one
of PIXTRAL.md section 2.3; wq/wk get the RoPE permutation of section 2.4.
"""
from __future__ import annotations

import torch

from minipixtral.rope import permute_qk_for_rotate_half
from minipixtral.vision import VisionConfig, VisionEncoder

_VISION_RENAMES = [
    ("attention.wq.", "attention.q_proj."), ("attention.wk.", "attention.k_proj."),
    ("attention.wv.", "attention.v_proj."), ("attention.wo.", "attention.o_proj."),
    ("feed_forward.w1.", "feed_forward.gate_proj."), ("feed_forward.w2.", "feed_forward.down_proj."),
    ("feed_forward.w3.", "feed_forward.up_proj."),
]


def vision_state_dict_to_hf(state: dict[str, torch.Tensor], n_heads: int) -> dict[str, torch.Tensor]:
    """Our VisionEncoder's state dict → transformers' PixtralVisionModel's."""
    out = {}
    for name, tensor in state.items():
        if name.endswith(("attention.wq.weight", "attention.wk.weight")):
            tensor = permute_qk_for_rotate_half(tensor, n_heads)
        for ours, theirs in _VISION_RENAMES:
            name = name.replace(ours, theirs)
        out[name] = tensor
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


_DECODER_RENAMES = [
    ("tok_embeddings.", "embed_tokens."), ("attention.wq.", "self_attn.q_proj."),
    ("attention.wk.", "self_attn.k_proj."), ("attention.wv.", "self_attn.v_proj."),
    ("attention.wo.", "self_attn.o_proj."), ("feed_forward.w1.", "mlp.gate_proj."),
    ("feed_forward.w2.", "mlp.down_proj."), ("feed_forward.w3.", "mlp.up_proj."),
    ("attention_norm.", "input_layernorm."), ("ffn_norm.", "post_attention_layernorm."),
]


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
        for ours, theirs in _DECODER_RENAMES:
            name = name.replace(ours, theirs)
        out[prefix + name] = tensor
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
    for ours, theirs in [("w_in", "linear_1"), ("w_out", "linear_2")]:
        for kind in ("weight", "bias"):
            key = f"vision_language_adapter.{ours}.{kind}"
            if key in state:
                out[f"model.multi_modal_projector.{theirs}.{kind}"] = state[key]
    model.load_state_dict(out, strict=True)
    return model
