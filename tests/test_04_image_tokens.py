"""Lesson 04: image token layout and chat template, token for token against mistral_common."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from mistral_common.protocol.instruct.chunk import ImageChunk, TextChunk
from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from PIL import Image

import minipixtral as mp
from minipixtral.reference import mistral_tokenizer


@pytest.fixture(scope="module")
def ref():
    return mistral_tokenizer()


def encode_ref(ref, messages):
    encoded = ref.encode_chat_completion(ChatCompletionRequest(messages=messages))
    return encoded.tokens, encoded.images


def user_ref(text, images=()):
    return UserMessage(content=[ImageChunk(image=im) for im in images] + [TextChunk(text=text)])


def assert_same_pixels(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.dtype == torch.float32 and tuple(a.shape) == b.shape
        assert np.abs(a.numpy() - b).max() <= 1e-5


def noise(width, height, mode="RGB", seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    return Image.fromarray(pixels, "RGBA").convert(mode)


PROMPTS = ["Describe the image.", "  leading spaces", "two\nlines\n", "Ünïcödé ✓ 画像 🙂",
           "What is 2 + 2?"]
IMAGE_SETS = {
    "none": [],
    "1x1": [noise(1, 1)],
    "33x17-RGBA": [noise(33, 17, "RGBA", 1)],
    "1025x113-L": [noise(1025, 113, "L", 2)],
    "1500x600": [noise(1500, 600, "RGB", 3)],
    "three-small": [noise(70, 40, "P", 4), noise(33, 17, "L", 5), noise(1, 1, "RGBA", 6)],
    "three-mixed": [noise(64, 64, "RGB", 7), noise(17, 33, "P", 8), noise(1100, 300, "RGBA", 9)],
}


@pytest.mark.parametrize("images", IMAGE_SETS.values(), ids=IMAGE_SETS.keys())
def test_sweep_matches_mistral_common(tokenizer, ref, images):
    for prompt in PROMPTS:
        ids, pixels = tokenizer.encode_chat(prompt, images=images)
        ref_ids, ref_pixels = encode_ref(ref, [user_ref(prompt, images)])
        assert ids == ref_ids, prompt
        assert_same_pixels(pixels, ref_pixels)


@pytest.mark.parametrize("images", IMAGE_SETS.values(), ids=IMAGE_SETS.keys())
def test_system_prompt_matches_mistral_common(tokenizer, ref, images):
    # with images mistral_common puts the system text before them; without, "{system}\n\n{text}"
    for system in ["Be brief.", "You are a careful assistant\n"]:
        ids, pixels = tokenizer.encode_chat("What is this?", images=images, system=system)
        ref_ids, ref_pixels = encode_ref(ref, [SystemMessage(content=system),
                                               user_ref("What is this?", images)])
        assert ids == ref_ids
        assert_same_pixels(pixels, ref_pixels)


def test_image_only_prompt_and_other_image_inputs(tokenizer, ref, tmp_path):
    image = noise(70, 40)
    ref_ids, ref_pixels = encode_ref(ref, [UserMessage(content=[ImageChunk(image=image)])])
    path = tmp_path / "picture.png"
    image.save(path)
    for given in [image, path, str(path), np.asarray(image)]:
        ids, pixels = tokenizer.encode_chat("", images=[given])
        assert ids == ref_ids
        assert_same_pixels(pixels, ref_pixels)


def test_text_first_is_moved_image_first_by_mistral_common(tokenizer, ref):
    image = noise(70, 40)
    ref_ids, _ = encode_ref(ref, [UserMessage(content=[TextChunk(text="Hi"), ImageChunk(image=image)])])
    assert tokenizer.encode_chat("Hi", images=[image])[0] == ref_ids


CONVERSATIONS = {
    "image-first-turn": ([0], None),
    "image-last-turn": ([2], None),
    "images-both-turns": ([0, 2], None),
    "no-image-system": ([], "Answer in French."),
    "image-last-turn-system": ([2], "Answer in French."),
    "image-first-turn-system": ([0], "Answer in French."),
}


@pytest.mark.parametrize("with_images,system", CONVERSATIONS.values(), ids=CONVERSATIONS.keys())
def test_multi_turn_matches_mistral_common(tokenizer, ref, with_images, system):
    texts = ["What is in the picture?", "Coloured noise.", "Are you sure?"]
    images = {0: [noise(70, 40, seed=10)], 2: [noise(33, 17, "RGBA", 11), noise(20, 50, seed=12)]}
    messages, ref_messages = [], [SystemMessage(content=system)] if system else []
    for index, text in enumerate(texts):
        turn_images = images[index] if index in with_images else []
        if index % 2:
            messages.append({"role": "assistant", "content": text})
            ref_messages.append(AssistantMessage(content=text))
        else:
            messages.append({"role": "user", "content": text, "images": turn_images})
            ref_messages.append(user_ref(text, turn_images))
    ids, pixels = tokenizer.encode_conversation(messages, system=system)
    ref_ids, ref_pixels = encode_ref(ref, ref_messages)
    assert ids == ref_ids
    assert_same_pixels(pixels, ref_pixels)


@pytest.mark.parametrize("reply", ["Four.  ", "Four.\n", " Four. \n  "])
def test_assistant_reply_spaces_like_mistral_common(tokenizer, ref, reply):
    """mistral_common drops an assistant reply's trailing spaces (not its newlines)."""
    messages = [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": reply},
                {"role": "user", "content": "Sure?"}]
    ids, _ = tokenizer.encode_conversation(messages)
    ref_ids, _ = encode_ref(ref, [user_ref("2 + 2?"), AssistantMessage(content=reply),
                                  user_ref("Sure?")])
    assert ids == ref_ids
    if reply.endswith(" "):   # negative control: the reply with its spaces is other ids
        assert tokenizer.encode(reply) != tokenizer.encode(reply.rstrip(" "))


def test_documented_prompts(tokenizer):
    # PIXTRAL.md §3.4: the 70×40 prompt and the two-turn text example
    ids, _ = tokenizer.encode_chat("Describe this image", images=[Image.new("RGB", (70, 40))])
    assert ids == [1, 3, 10, 10, 10, 10, 10, 12, 10, 10, 10, 10, 10, 12, 10, 10, 10, 10, 10, 13,
                   5847, 13089, 1593, 3937, 4]
    ids, _ = tokenizer.encode_conversation([{"role": "user", "content": "Hi"},
                                            {"role": "assistant", "content": "Hello!"},
                                            {"role": "user", "content": "How are you?"}])
    assert ids == [1, 3, 37133, 4, 22177, 1033, 2, 3, 7801, 1584, 1636, 1063, 4]


# PIXTRAL.md §3.3: (width, height) → (cols, rows), image tokens, [IMG] tokens, pixel shape
LAYOUT_TABLE = [
    ((70, 40), (5, 3), 18, 15, (3, 48, 80)),
    ((1500, 600), (64, 26), 1690, 1664, (3, 416, 1024)),
    ((64, 64), (4, 4), 20, 16, (3, 64, 64)),
    ((1024, 1024), (64, 64), 4160, 4096, (3, 1024, 1024)),
    ((2048, 16), (64, 1), 65, 64, (3, 16, 1024)),
    ((33, 17), (3, 2), 8, 6, (3, 32, 48)),
]


@pytest.mark.parametrize("size,grid,n_tokens,n_img,shape", LAYOUT_TABLE,
                         ids=[f"{w}x{h}" for (w, h), *_ in LAYOUT_TABLE])
def test_layout_table(tokenizer, size, grid, n_tokens, n_img, shape):
    tokens, pixels = tokenizer.encode_image(Image.new("RGB", size))
    assert tuple(pixels.shape) == shape
    assert len(tokens) == n_tokens and tokens.count(tokenizer.image_ids.img) == n_img
    cols, rows = grid
    assert tokens == mp.image_token_layout(rows, cols, tokenizer.image_ids)
    assert tokens.count(tokenizer.image_ids.img_break) == rows - 1
    assert tokens[-1] == tokenizer.image_ids.img_end


def test_layout_70x40_sequence():
    ids = mp.ImageTokenIds(img=10, img_break=12, img_end=13)
    assert mp.image_token_layout(3, 5, ids) == [10, 10, 10, 10, 10, 12, 10, 10, 10, 10, 10, 12,
                                                10, 10, 10, 10, 10, 13]


def test_layout_shape_is_recoverable_and_checked():
    ids = mp.ImageTokenIds(img=10, img_break=14, img_end=15)  # Pixtral-Large's ids
    wide, tall = mp.image_token_layout(2, 8, ids), mp.image_token_layout(8, 2, ids)
    assert wide != tall and wide.count(10) == tall.count(10) == 16  # same patches, told apart
    assert (len(wide), len(tall)) == (2 * 9, 8 * 3)
    assert wide[8] == 14 and wide[-1] == 15 and 12 not in wide and 13 not in wide
    assert mp.image_token_layout(1, 1, ids) == [10, 15]
    for rows, cols in [(0, 3), (3, 0), (-1, 2)]:
        with pytest.raises(ValueError, match="at least one patch"):
            mp.image_token_layout(rows, cols, ids)


def test_image_ids_are_read_from_the_tokenizer(tokenizer):
    tekken, ids = tokenizer.tekken, tokenizer.image_ids
    assert (ids.img, ids.img_break, ids.img_end) == tuple(
        tekken.get_special_token(name) for name in ("[IMG]", "[IMG_BREAK]", "[IMG_END]"))
    assert (tokenizer.bos_id, tokenizer.eos_id, tokenizer.inst_id,
            tokenizer.inst_end_id) == (1, 2, 3, 4)

    class OtherIds:  # the real tokenizer, but with Pixtral-Large's break/end ids
        image, bos_id, eos_id, n_words = tekken.image, tekken.bos_id, tekken.eos_id, tekken.n_words
        version = tekken.version

        @staticmethod
        def get_special_token(name):
            return {"[IMG_BREAK]": 14, "[IMG_END]": 15}.get(name) or tekken.get_special_token(name)

    other = mp.Tokenizer(OtherIds())
    tokens, _ = other.encode_image(Image.new("RGB", (70, 40)))
    assert tokens == [10] * 5 + [14] + [10] * 5 + [14] + [10] * 5 + [15]


def test_decode_round_trip(tokenizer):
    for text in PROMPTS:
        assert tokenizer.decode(tokenizer.encode(text)) == text
    ids, _ = tokenizer.encode_chat("Describe this image", images=[noise(70, 40)])
    assert tokenizer.decode(ids) == "Describe this image"     # control tokens left out
    assert tokenizer.decode(torch.tensor(ids)) == "Describe this image"
    assert tokenizer.encode("Hi")[0] >= 1000 and tokenizer.bos_id not in tokenizer.encode("Hi")


# --- bad inputs ----------------------------------------------------------------------------
def test_empty_prompt_without_image(tokenizer):
    with pytest.raises(ValueError, match="empty"):
        tokenizer.encode_chat("")
    with pytest.raises(ValueError, match="empty"):
        tokenizer.encode_chat("", images=[])


def test_images_that_are_not_images(tokenizer, tmp_path):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a picture")
    with pytest.raises(ValueError, match="image 0.*not an image"):
        tokenizer.encode_chat("What?", images=[text_file])
    with pytest.raises(ValueError, match="image 1.*expected a path"):
        tokenizer.encode_chat("What?", images=[noise(8, 8), object()])
    with pytest.raises(ValueError, match="uint8"):
        tokenizer.encode_chat("What?", images=[np.zeros((4, 4, 3), np.float32)])
    with pytest.raises(FileNotFoundError, match="no image file"):
        tokenizer.encode_chat("What?", images=[tmp_path / "missing.png"])


def test_max_length(tokenizer):
    image = Image.new("RGB", (512, 512))  # 32 rows of 33 tokens: 1056
    ids, _ = tokenizer.encode_chat("Describe.", images=[image])
    n = len(ids)
    assert tokenizer.encode_chat("Describe.", images=[image], max_length=n)[0] == ids  # fits
    with pytest.raises(ValueError, match=f"{n} tokens.*{n - 1}"):
        tokenizer.encode_chat("Describe.", images=[image], max_length=n - 1)
    with pytest.raises(ValueError, match=f"{n} tokens.*1024"):
        tokenizer.encode_chat("Describe.", images=[image], max_length=1024)


@pytest.mark.parametrize("messages,pattern", [
    ([], "end with a user turn"),
    ([{"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Hi"}],
     "turn 0 has role 'assistant'"),
    ([{"role": "user", "content": "Hi"}, {"role": "user", "content": "Hi?"}],
     "turn 1 has role 'user'"),
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
     "end with a user turn"),
    ([{"role": "system", "content": "x"}, {"role": "user", "content": "Hi"}], "turn 0 has role"),
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""},
      {"role": "user", "content": "?"}], "empty assistant turn"),
    ([{"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Look", "images": [Image.new("RGB", (8, 8))]},
      {"role": "user", "content": "?"}], "only user turns can hold images"),
    ([{"role": "user", "content": ["not", "a", "string"]}], "must be a string"),
], ids=["empty", "assistant-first", "two-users", "ends-with-assistant", "system-role",
        "empty-assistant", "assistant-image", "content-not-str"])
def test_wrong_conversations(tokenizer, messages, pattern):
    with pytest.raises(ValueError, match=pattern):
        tokenizer.encode_conversation(messages)


def test_tokenizer_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer file"):
        mp.Tokenizer.from_file(tmp_path / "tekken.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    with pytest.raises(ValueError, match="not a Tekken tokenizer file"):
        mp.Tokenizer.from_file(broken)
    assert mp.shipped_tokenizer_file().name == "tekken_240911.json"
    assert mp.shipped_tokenizer_file().is_file()


def test_tokenizer_without_image_settings():
    class TextOnly:
        image = None
        file_path = "text_only.json"

    with pytest.raises(ValueError, match="not the tokenizer of a vision model"):
        mp.Tokenizer(TextOnly())


@pytest.mark.parametrize("patch_size, max_image_size", [(8, 1024), (14, 512), (16, 64)])
def test_image_settings_from_the_model(patch_size, max_image_size):
    """A model whose params.json gives other image settings than the tokenizer file (lesson
    09's patches of 8): tokens and pixels equal mistral_common's encoder with those settings."""
    from minipixtral.reference import mistral_image_encoder

    tok = mp.Tokenizer.from_file(mp.shipped_tokenizer_file(), patch_size=patch_size,
                                 max_image_size=max_image_size)
    encoder = mistral_image_encoder(patch_size, max_image_size)
    images = [noise(70, 40, seed=1), noise(33, 97, "L", 2), noise(700, 300, "RGBA", 3)]
    for image in images:
        tokens, pixels = tok.encode_image(image)
        reference = encoder(ImageChunk(image=image))
        assert tokens == reference.tokens
        assert_same_pixels([pixels], [reference.image])
    default = mp.Tokenizer.from_file(mp.shipped_tokenizer_file())  # negative control
    ours, theirs = tok.encode_image(images[0]), default.encode_image(images[0])
    assert (ours[0], ours[1].shape) != (theirs[0], theirs[1].shape)


def test_tokenizer_for_takes_the_vision_encoder_settings():
    vision = mp.VisionConfig(patch_size=14, image_size=512)
    tok = mp.tokenizer_for(mp.shipped_tokenizer_file(), vision)
    assert (tok.patch_size, tok.max_image_size) == (14, 512)
    default = mp.tokenizer_for(mp.shipped_tokenizer_file(), mp.VisionConfig())  # Pixtral-12B's
    assert (default.patch_size, default.max_image_size) == (16, 1024)


@pytest.mark.parametrize("settings", [{"patch_size": 0}, {"max_image_size": 8},
                                      {"patch_size": 32, "max_image_size": 16}])
def test_bad_image_settings(settings):
    with pytest.raises(ValueError, match="need 1 ≤ patch_size ≤ max_image_size"):
        mp.Tokenizer.from_file(mp.shipped_tokenizer_file(), **settings)
