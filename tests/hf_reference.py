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
