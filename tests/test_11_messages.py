"""Lesson 11: encode_messages against mistral_common's encode_chat_completion, token for token and pixel for
pixel, plus every bad input it must refuse. No network: data URLs, files and a fake urlopen."""
from __future__ import annotations

import base64
import io
import random
import urllib.error
import urllib.request
from email.message import Message

import numpy as np
import pytest
import torch
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from PIL import Image

import minipixtral as mp
import minipixtral.messages as msg
from minipixtral.messages import encode_messages
from minipixtral.reference import mistral_tokenizer


# ---------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def tok() -> mp.Tokenizer:
    return mp.Tokenizer.from_file(mp.shipped_tokenizer_file())


@pytest.fixture(scope="module")
def ref():
    return mistral_tokenizer()


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any real download in a test is a bug: urlopen fails loudly unless a test fakes it."""
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to use the network")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def noise(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """Random pixels (random alpha too) converted to `mode`."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    return Image.fromarray(pixels, "RGBA").convert(mode)


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    """The image saved as PNG or JPEG bytes (JPEG: RGB or L first, it has no alpha)."""
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def data_url(image: Image.Image, fmt: str = "PNG") -> str:
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(encoded(image, fmt)).decode()


def text(t: str) -> dict:
    return {"type": "text", "text": t}


def image_chunks(image: Image.Image, form: str, tmp_path) -> tuple[dict, dict]:
    """(our chunk, mistral_common's chunk) for one image given in `form`."""
    if form == "png_url":
        chunk = {"type": "image_url", "image_url": data_url(image)}
        return chunk, chunk
    if form == "jpeg_url":
        chunk = {"type": "image_url", "image_url": data_url(image, "JPEG")}
        return chunk, chunk
    if form == "url_dict":
        chunk = {"type": "image_url", "image_url": {"url": data_url(image)}}
        return chunk, chunk
    if form == "pil":
        return {"type": "image", "image": image}, {"type": "image", "image": image}
    if form == "array":  # mistral_common takes no arrays: it gets the PIL image
        return {"type": "image", "image": np.asarray(image)}, {"type": "image", "image": image}
    assert form == "path"  # mistral_common reads the same file through a file:// URL
    path = tmp_path / f"image{len(list(tmp_path.iterdir()))}.png"
    image.save(path)
    return {"type": "image", "image": str(path)}, {"type": "image_url",
                                                    "image_url": f"file://{path}"}


def encode_ref(ref, messages: list[dict]) -> tuple[list[int], list[np.ndarray]]:
    result = ref.encode_chat_completion(ChatCompletionRequest(messages=messages))
    return result.tokens, result.images


def assert_same(ours: tuple[list[int], list[torch.Tensor]],
                theirs: tuple[list[int], list[np.ndarray]]) -> None:
    """Same ids; same number of images, each float32 of the same shape within 1e-5."""
    assert ours[0] == theirs[0]
    assert len(ours[1]) == len(theirs[1])
    for a, b in zip(ours[1], theirs[1]):
        assert a.dtype == torch.float32 and tuple(a.shape) == b.shape
        assert np.abs(a.numpy() - b).max() <= 1e-5


# ---------------------------------------------------------------- the sweep
SIZES = [(1, 1), (2, 3), (33, 17), (17, 40), (64, 64), (150, 90), (1030, 40), (30, 1100),
         (1300, 700)]
SIZE_WEIGHTS = [3, 2, 3, 3, 3, 3, 1, 1, 1]
MODES = ["RGB", "RGBA", "L", "P"]
FORMS = ["png_url", "jpeg_url", "url_dict", "pil", "array", "path"]
TEXTS = ["Describe the image.", "  leading spaces", "two\nlines\n", "Ünïcödé ✓ 画像 🙂",
         "What is 2 + 2?", "and this one ", "", " ", "\n"]
ANSWERS = ["A cat.", "Four.  ", "Sure:\n- one\n- two\n", "It is red ", "🙂", "  ok"]
SYSTEMS = ["Be brief.", "You are a careful assistant\n", "Réponds en français."]


def random_image(rng: random.Random, seed: int) -> tuple[Image.Image, str]:
    """A random image (size, mode) and a form it is given in (P images not as arrays)."""
    width, height = rng.choices(SIZES, SIZE_WEIGHTS)[0]
    image = noise(width, height, rng.choice(MODES), seed)
    forms = [f for f in FORMS if not (f == "array" and image.mode == "P")]
    return image, rng.choice(forms)


def random_user(rng: random.Random, n_images: int, seed: int, tmp_path) -> tuple[dict, dict]:
    """A user message with n_images images and 0–3 texts in a random order (a plain string
    when it has no image, half of the time)."""
    if n_images == 0 and rng.random() < 0.5:
        content = rng.choice(TEXTS)
        return {"role": "user", "content": content}, {"role": "user", "content": content}
    kinds = ["image"] * n_images + ["text"] * rng.randint(0 if n_images else 1, 3)
    rng.shuffle(kinds)
    ours, theirs = [], []
    for number, kind in enumerate(kinds):
        if kind == "text":
            chunk = text(rng.choice(TEXTS))
            ours.append(chunk), theirs.append(chunk)
        else:
            our_chunk, their_chunk = image_chunks(*random_image(rng, seed * 10 + number), tmp_path)
            ours.append(our_chunk), theirs.append(their_chunk)
    return {"role": "user", "content": ours}, {"role": "user", "content": theirs}


def split_images(rng: random.Random, n_turns: int) -> list[int]:
    """0–4 images spread over n_turns user turns."""
    counts = [0] * n_turns
    for _ in range(rng.randint(0, 4)):
        counts[rng.randrange(n_turns)] += 1
    return counts


def random_conversation(case: int, tmp_path) -> tuple[list[dict], list[dict]]:
    """Case `case` of the sweep: (our messages, mistral_common's), 1–3 user turns with
    assistant answers between them, 0–4 images, system messages at the start or after user
    turns (mistral_common refuses one right after an assistant's)."""
    rng = random.Random(case)
    n_turns = rng.randint(1, 3)
    ours, theirs = [], []
    for turn, n_images in enumerate(split_images(rng, n_turns)):
        if turn:
            answer = {"role": "assistant", "content": rng.choice(ANSWERS)}
            ours.append(answer), theirs.append(answer)
        if turn == 0 and rng.random() < 0.4:
            system = {"role": "system", "content": rng.choice(SYSTEMS)}
            ours.append(system), theirs.append(system)
        our_user, their_user = random_user(rng, n_images, case * 100 + turn, tmp_path)
        ours.append(our_user), theirs.append(their_user)
        if rng.random() < 0.2:
            system = {"role": "system", "content": rng.choice(SYSTEMS)}
            ours.append(system), theirs.append(system)
    return ours, theirs


SWEEP = 80


@pytest.mark.parametrize("case", range(SWEEP))
def test_sweep_matches_mistral_common(tok, ref, tmp_path, case):
    ours, theirs = random_conversation(case, tmp_path)
    assert_same(encode_messages(tok, ours), encode_ref(ref, theirs))


def test_sweep_covers_what_it_claims(tmp_path):
    """The sweep is not vacuous: all image counts, forms, modes, orders and system prompts."""
    counts, forms, seen, images = set(), set(), set(), []
    for case in range(SWEEP):
        ours, _ = random_conversation(case, tmp_path)
        chunks = [c for m in ours if isinstance(m["content"], list) for c in m["content"]]
        counts.add(sum(c["type"] != "text" for c in chunks))
        seen |= {"system" for m in ours if m["role"] == "system"}
        seen |= {"assistant" for m in ours if m["role"] == "assistant"}
        seen |= {order for m in ours if isinstance(m["content"], list)
                 for order in [" ".join("T" if c["type"] == "text" else "I" for c in m["content"])]}
        forms |= {_form_of(c) for c in chunks if c["type"] != "text"}
        images += [_image_of(c) for c in chunks if c["type"] != "text"]
    assert counts == {0, 1, 2, 3, 4}
    assert forms == {"url", "dict", "pil", "array", "path"}
    assert {image.mode for image in images} == {"RGB", "RGBA", "L", "P"}
    assert (1, 1) in {image.size for image in images}
    assert {max(image.size) > 1024 for image in images} == {True, False}
    assert {"system", "assistant", "T I T", "I T I", "T I", "I T", "I"} <= seen


def _image_of(chunk: dict) -> Image.Image:
    """The image a chunk of the sweep holds, as PIL decodes it."""
    if chunk["type"] == "image_url":
        url = chunk["image_url"]["url"] if isinstance(chunk["image_url"], dict) else chunk[
            "image_url"]
        return Image.open(io.BytesIO(base64.b64decode(url.split(",")[1])))
    image = chunk["image"]
    return Image.open(image) if isinstance(image, str) else Image.fromarray(image) if isinstance(
        image, np.ndarray) else image


def _form_of(chunk: dict) -> str:
    if chunk["type"] == "image_url":
        return "dict" if isinstance(chunk["image_url"], dict) else "url"
    image = chunk["image"]
    return {str: "path", np.ndarray: "array"}.get(type(image), "pil")


# ---------------------------------------------------------------- named orders and forms
ORDERS = {
    "text-image-text": "T I T", "image-text-image": "I T I", "images-only": "I I I I",
    "one-image": "I", "text-only": "T T", "text-image": "T I", "image-text": "I T",
    "text-image-image": "T I I", "text-text-image": "T T I", "image-image-text": "I I T",
}


def ordered_message(order: str, form: str, tmp_path) -> tuple[dict, dict]:
    ours, theirs = [], []
    for number, kind in enumerate(order.split()):
        if kind == "T":
            ours.append(text(f"part {number} ")), theirs.append(text(f"part {number} "))
            continue
        image = noise(*SIZES[(number * 3 + 2) % len(SIZES)], MODES[number % 4], seed=number)
        our_chunk, their_chunk = image_chunks(image, form if image.mode != "P" or form != "array"
                                              else "pil", tmp_path)
        ours.append(our_chunk), theirs.append(their_chunk)
    return {"role": "user", "content": ours}, {"role": "user", "content": theirs}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("order", ORDERS.values(), ids=ORDERS.keys())
@pytest.mark.parametrize("system", [None, "Be brief."])
def test_orders_and_forms_match_mistral_common(tok, ref, tmp_path, order, form, system):
    ours, theirs = ordered_message(order, form, tmp_path)
    head = [{"role": "system", "content": system}] if system else []
    assert_same(encode_messages(tok, head + [ours]), encode_ref(ref, head + [theirs]))


# ---------------------------------------------------------------- mistral_common's odd rules
ACCEPTED = {  # conversations mistral_common accepts that encode_conversation would refuse
    "consecutive-users-merged": [{"role": "user", "content": "a"},
                                 {"role": "user", "content": "b"}],
    "system-splits-users": [{"role": "user", "content": "a"}, {"role": "system", "content": "S"},
                            {"role": "user", "content": "b"}],
    "starts-with-assistant": [{"role": "assistant", "content": "x"},
                              {"role": "user", "content": "b"}],
    "empty-user": [{"role": "user", "content": ""}],
    "empty-user-list": [{"role": "user", "content": []}],
    "trailing-system": [{"role": "user", "content": "b"}, {"role": "system", "content": "S2"},
                        {"role": "system", "content": ""}, {"role": "system", "content": "S3"}],
    "system-chunks": [{"role": "system", "content": [text("S1"), text(""), text("S2")]},
                      {"role": "user", "content": [text("a"), text(""), text("b")]}],
    "system-empty-chunk": [{"role": "system", "content": [text("")]},
                           {"role": "system", "content": "S"}, {"role": "user", "content": "q"}],
    "assistant-chunks-spaces": [{"role": "user", "content": "a"},
                                {"role": "assistant", "content": [text("x"), text("y  ")]},
                                {"role": "assistant", "content": "z \n "},
                                {"role": "user", "content": "b"}],
    "assistant-empty-chunk-merged": [{"role": "user", "content": "a"},
                                     {"role": "assistant", "content": [text("")]},
                                     {"role": "assistant", "content": "x"},
                                     {"role": "user", "content": "b"}],
}


@pytest.mark.parametrize("messages", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_mistral_commons_odd_but_accepted_cases(tok, ref, messages):
    assert_same(encode_messages(tok, messages), encode_ref(ref, messages))


def test_user_text_then_image_merged_across_messages(tok, ref):
    # "a" and [image] merge into [text, image], which mistral_common turns round: image first
    image = {"type": "image_url", "image_url": data_url(noise(20, 18))}
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "a"},
                {"role": "user", "content": [image]}]
    ids, pixels = encode_messages(tok, messages)
    assert_same((ids, pixels), encode_ref(ref, messages))
    image_ids = tok.encode_image(noise(20, 18))[0]
    assert ids == [tok.bos_id, tok.inst_id, *tok.encode("S\n\n"), *image_ids, *tok.encode("a"),
                   tok.inst_end_id]


# ---------------------------------------------------------------- negative controls
def interleaved(tmp_path) -> tuple[dict, list]:
    first, second = noise(40, 30, "RGB", 1), noise(20, 50, "RGBA", 2)
    content = [text("Compare "), {"type": "image", "image": first}, text(" with "),
               {"type": "image", "image": second}, text(" please.")]
    return {"role": "user", "content": content}, [first, second]


def test_images_first_is_not_what_mistral_common_does(tok, ref, tmp_path):
    message, images = interleaved(tmp_path)
    theirs = encode_ref(ref, [message])
    assert_same(encode_messages(tok, [message]), theirs)
    firsts = [c for c in message["content"] if c["type"] == "image"]
    texts = [c for c in message["content"] if c["type"] == "text"]
    moved = encode_messages(tok, [{"role": "user", "content": firsts + texts}])
    assert moved[0] != theirs[0]
    prompt = "".join(c["text"] for c in texts)
    assert tok.encode_chat(prompt, images=images)[0] != theirs[0]  # our encode_chat: images first


def test_in_order_text_image_is_not_what_mistral_common_does(tok, ref):
    # without the [text, image] → [image, text] swap, the ids would differ
    image = noise(30, 30)
    message = {"role": "user", "content": [text("What is it?"), {"type": "image", "image": image}]}
    theirs = encode_ref(ref, [message])[0]
    in_order = [tok.bos_id, tok.inst_id, *tok.encode("What is it?"), *tok.encode_image(image)[0],
                tok.inst_end_id]
    assert in_order != theirs and sorted(in_order) == sorted(theirs)
    assert encode_messages(tok, [message])[0] == theirs


def test_texts_are_joined_with_a_blank_line(tok, ref):
    message = {"role": "user", "content": [text("a"), text("b")]}
    theirs = encode_ref(ref, [message])[0]
    assert theirs == [tok.bos_id, tok.inst_id, *tok.encode("a\n\nb"), tok.inst_end_id]
    assert theirs != [tok.bos_id, tok.inst_id, *tok.encode("ab"), tok.inst_end_id]
    assert encode_messages(tok, [message])[0] == theirs


def test_assert_same_can_fail(tok, ref):
    """The sweep's check is not blind: swapped images or one changed pixel fail it."""
    first, second = noise(32, 32, seed=1), noise(32, 32, seed=2)
    message = {"role": "user", "content": [{"type": "image", "image": first},
                                           {"type": "image", "image": second}]}
    ids, pixels = encode_messages(tok, [message])
    theirs = encode_ref(ref, [message])
    assert_same((ids, pixels), theirs)
    with pytest.raises(AssertionError):
        assert_same((ids, pixels[::-1]), theirs)
    nudged = [pixels[0].clone(), pixels[1]]
    nudged[0][0, 0, 0] += 1e-4
    with pytest.raises(AssertionError):
        assert_same((ids, nudged), theirs)


# ---------------------------------------------------------------- where encode_conversation differs
def test_answers_lose_trailing_spaces_in_both_forms(tok, ref):
    messages = [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "Four.  "},
                {"role": "user", "content": "And 3 + 3?"}]
    theirs = encode_ref(ref, messages)
    assert encode_messages(tok, messages)[0] == theirs[0] == tok.encode_conversation(messages)[0]
    with_spaces = [tok.bos_id, tok.inst_id, *tok.encode("2 + 2?"), tok.inst_end_id,
                   *tok.encode("Four.  "), tok.eos_id, tok.inst_id, *tok.encode("And 3 + 3?"),
                   tok.inst_end_id]
    assert with_spaces != theirs[0]  # the stripping matters


def test_encode_conversation_refuses_what_mistral_common_takes(tok, ref):
    messages = [{"role": "user", "content": ""}]
    assert encode_messages(tok, messages)[0] == encode_ref(ref, messages)[0]
    with pytest.raises(ValueError, match="empty prompt"):
        tok.encode_conversation(messages)


def test_agrees_with_encode_conversation_where_both_apply(tok, ref):
    images = [noise(40, 20, "RGB", 3), noise(1, 1, "L", 4)]
    turns = [{"role": "user", "content": "Hi", "images": images[:1]},
             {"role": "assistant", "content": "Hello."},
             {"role": "user", "content": "And this?", "images": images[1:]}]
    chat = [{"role": t["role"], "content": [{"type": "image", "image": i}
                                            for i in t.get("images", [])] + [text(t["content"])]}
            for t in turns]
    expected = tok.encode_conversation(turns, system="Be kind.")
    got = encode_messages(tok, [{"role": "system", "content": "Be kind."}] + chat)
    assert got[0] == expected[0]
    assert all(torch.equal(a, b) for a, b in zip(got[1], expected[1]))


# ---------------------------------------------------------------- bad inputs
def user(content) -> dict:
    return {"role": "user", "content": content}


PNG_URL = "data:image/png;base64," + base64.b64encode(encoded(noise(8, 8))).decode()
BAD = {  # name: (messages, message pattern, does mistral_common refuse it too?)
    "unknown-chunk-type": ([user([text("a"), {"type": "audio", "audio": "x"}])],
                           r"turn 0, chunk 1: unknown chunk type 'audio'", True),
    "malformed-base64": ([user([{"type": "image_url", "image_url": "data:image/png;base64,iVB*"}])],
                         r"turn 0, chunk 0: malformed base64 in the data URL", True),
    "bad-padding": ([user([{"type": "image_url", "image_url": PNG_URL[:-3]}])],
                    r"turn 0, chunk 0: malformed base64", True),
    "data-url-not-image-type": ([user([{"type": "image_url",
                                        "image_url": "data:text/plain;base64,aGVsbG8="}])],
                                r"turn 0, chunk 0: .*is of type 'text/plain', not an image", True),
    "data-url-not-image-bytes": ([user([{"type": "image_url",
                                         "image_url": "data:image/png;base64,aGVsbG8="}])],
                                 r"turn 0, chunk 0: .*is in no image format PIL knows", True),
    "data-url-not-base64": ([user([{"type": "image_url", "image_url": "data:image/png,abc"}])],
                            r"turn 0, chunk 0: malformed data URL", True),
    "image-in-assistant": ([user("a"), {"role": "assistant", "content": [
        {"type": "image_url", "image_url": PNG_URL}]}, user("b")],
        r"turn 1, chunk 0: images go in user turns only, not in assistant turns", True),
    "image-in-system": ([{"role": "system", "content": [text("S"), {"type": "image_url",
                                                                    "image_url": PNG_URL}]},
                         user("b")],
                        r"turn 0, chunk 1: images go in user turns only, not in system", True),
    "http-image-in-assistant-not-fetched": (
        [user("a"), {"role": "assistant", "content": [
            {"type": "image_url", "image_url": "https://x.org/a.png"}]}, user("b")],
        r"turn 1, chunk 0: images go in user turns only, not in assistant turns", True),
    "unknown-role": ([user("a"), {"role": "robot", "content": "x"}],
                     r"turn 1: unknown role 'robot'", True),
    "tool-role": ([user("a"), {"role": "tool", "content": "x", "tool_call_id": "abcdefghi"}],
                  r"turn 1: unknown role 'tool'", True),
    "ends-with-assistant": ([user("a"), {"role": "assistant", "content": "x"}],
                            r"must end with a user turn.*turn 1, an assistant turn", True),
    "empty-conversation": ([], r"the conversation is empty", True),
    "content-int": ([user(3)], r"turn 0 \(user\): content must be a string or a list of "
                               r"chunks, got int", True),
    "content-none": ([user(None)], r"turn 0 \(user\): content must be .* got NoneType", True),
    "content-dict": ([user({"type": "text", "text": "a"})], r"turn 0 \(user\): .*got dict", True),
    "chunk-not-dict": ([user(["a"])], r"turn 0, chunk 0: a chunk must be a dict, got str", True),
    "text-not-str": ([user([{"type": "text", "text": 5}])],
                     r"turn 0, chunk 0: a text chunk needs a string 'text', got int", True),
    "image-url-wrong-type": ([user([{"type": "image_url", "image_url": 5}])],
                             r"turn 0, chunk 0: an image_url chunk needs a URL string", True),
    "unsupported-scheme": ([user([{"type": "image_url", "image_url": "ftp://x/y.png"}])],
                           r"turn 0, chunk 0: unsupported image URL 'ftp://x/y.png'", True),
    "empty-assistant": ([user("a"), {"role": "assistant", "content": ""}, user("b")],
                        r"turn 1: an empty assistant turn", True),
    "empty-assistant-merged": ([user("a"), {"role": "assistant", "content": [text("")]},
                                user("b")], r"turn 1: an empty assistant turn", True),
    "system-after-assistant": ([user("a"), {"role": "assistant", "content": "x"},
                                {"role": "system", "content": "S"}, user("b")],
                               r"turn 2: a system message cannot follow an assistant turn", True),
    "message-not-dict": ([user("a"), "b"], r"turn 1: a message must be a dict, got str", False),
    # mistral_common accepts these three; we refuse them (lesson 11, "Going deeper")
    "only-system": ([{"role": "system", "content": "S"}],
                    r"must end with a user turn.*it has none", False),
    "assistant-prefix-last": ([user("a"), {"role": "assistant", "content": "x", "prefix": True}],
                              r"must end with a user turn", False),
    "image-base64-in-text-mime": ([user([{"type": "image_url", "image_url": "data:text/plain;"
                                          "base64," + PNG_URL.split(",")[1]}])],
                                  r"of type 'text/plain', not an image", False),
}


@pytest.mark.parametrize("messages, pattern, refused_by_mistral_common", BAD.values(),
                         ids=BAD.keys())
def test_bad_inputs(tok, ref, messages, pattern, refused_by_mistral_common):
    with pytest.raises(ValueError, match=pattern):
        encode_messages(tok, messages)
    if isinstance(messages, list) and all(isinstance(m, dict) for m in messages):
        if refused_by_mistral_common:
            with pytest.raises(Exception):
                encode_ref(ref, messages)
        else:
            encode_ref(ref, messages)  # it takes it: a documented difference


def test_max_length(tok):
    messages = [user("Describe this, please.")]
    ids, _ = encode_messages(tok, messages)
    assert encode_messages(tok, messages, max_length=len(ids))[0] == ids
    with pytest.raises(ValueError, match=rf"{len(ids)} tokens long, more than the "
                                         rf"{len(ids) - 1} that fit"):
        encode_messages(tok, messages, max_length=len(ids) - 1)


def test_messages_not_a_list(tok):
    with pytest.raises(ValueError, match="messages must be a list of dicts, got dict"):
        encode_messages(tok, user("a"))


def test_missing_file_names_turn_and_chunk(tok, tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(FileNotFoundError, match=r"turn 1, chunk 2: no image file at"):
        encode_messages(tok, [{"role": "system", "content": "S"},
                              user([text("a"), text("b"), {"type": "image", "image": missing}])])
    with pytest.raises(FileNotFoundError, match=r"turn 0, chunk 0: no image file at"):
        encode_messages(tok, [user([{"type": "image_url", "image_url": f"file://{missing}"}])])


def test_file_that_is_not_an_image(tok, ref, tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    with pytest.raises(ValueError, match=r"turn 0, chunk 1: .*is not an image file PIL can read"):
        encode_messages(tok, [user([text("a"), {"type": "image", "image": str(path)}])])
    with pytest.raises(Exception):
        encode_ref(ref, [user([text("a"), {"type": "image_url", "image_url": f"file://{path}"}])])


def test_image_chunk_of_wrong_type(tok):
    with pytest.raises(ValueError, match=r"turn 0, chunk 0: an image chunk's 'image' must be a "
                                         r"path, a PIL image or a numpy array, got int"):
        encode_messages(tok, [user([{"type": "image", "image": 7}])])


# ---------------------------------------------------------------- http(s), with a fake urlopen
class FakeResponse:
    """What urlopen returns: read(n) in pieces, headers, a context manager; counts reads."""

    def __init__(self, body: bytes, length: str | None = None):
        self.body, self.reads, self.headers = body, 0, Message()
        if length is not None:
            self.headers["Content-Length"] = length

    def read(self, n: int = -1) -> bytes:
        self.reads += 1
        piece, self.body = self.body[:n], self.body[n:]
        return piece

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def fake_urlopen(monkeypatch, respond) -> list:
    """urlopen answered by respond(request, timeout); returns the calls made."""
    calls = []

    def urlopen(request, timeout=None):
        calls.append((request.full_url, timeout))
        return respond(request, timeout)
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return calls


def test_https_image_is_fetched_and_matches(tok, ref, monkeypatch):
    image = noise(50, 30, "RGBA", 5)
    body = encoded(image)
    calls = fake_urlopen(monkeypatch, lambda request, timeout: FakeResponse(body, str(len(body))))
    url = "https://example.com/cat.png"
    ids, pixels = encode_messages(tok, [user([text("What?"), {"type": "image_url",
                                                                "image_url": {"url": url}}])])
    assert calls == [(url, msg.FETCH_TIMEOUT_S)]
    theirs = encode_ref(ref, [user([text("What?"), {"type": "image_url",
                                                    "image_url": data_url(image)}])])
    assert_same((ids, pixels), theirs)


def test_https_too_big_is_refused_in_pieces(tok, monkeypatch):
    monkeypatch.setattr(msg, "MAX_IMAGE_BYTES", 3000)
    monkeypatch.setattr(msg, "_READ_PIECE", 1000)
    response = FakeResponse(b"x" * 10**6)  # no Content-Length: it must stop reading early
    fake_urlopen(monkeypatch, lambda request, timeout: response)
    url = "http://example.com/huge.png"
    with pytest.raises(ValueError, match=r"turn 0, chunk 0: the image at 'http://example.com/"
                                         r"huge.png' is more than the 3000 bytes allowed"):
        encode_messages(tok, [user([{"type": "image_url", "image_url": url}])])
    assert response.reads == 4


def test_https_declared_too_big_is_refused_before_reading(tok, monkeypatch):
    response = FakeResponse(b"", length=str(msg.MAX_IMAGE_BYTES + 1))
    fake_urlopen(monkeypatch, lambda request, timeout: response)
    with pytest.raises(ValueError, match=rf"is {msg.MAX_IMAGE_BYTES + 1} bytes, more than the "
                                         rf"{msg.MAX_IMAGE_BYTES} allowed"):
        encode_messages(tok, [user([{"type": "image_url", "image_url": "https://x.org/a.png"}])])
    assert response.reads == 0


@pytest.mark.parametrize("failure", [urllib.error.URLError("no route to host"), TimeoutError(
    "timed out"), urllib.error.HTTPError("https://x.org/a.png", 404, "Not Found", Message(), None)],
    ids=["offline", "timeout", "http-404"])
def test_https_failures_name_the_url(tok, monkeypatch, failure):
    def respond(request, timeout):
        raise failure
    fake_urlopen(monkeypatch, respond)
    with pytest.raises(ValueError, match=r"turn 1, chunk 0: could not fetch the image at "
                                         r"'https://x.org/a.png'"):
        encode_messages(tok, [{"role": "system", "content": "S"},
                              user([{"type": "image_url", "image_url": "https://x.org/a.png"}])])


def test_https_body_that_is_not_an_image(tok, monkeypatch):
    fake_urlopen(monkeypatch, lambda request, timeout: FakeResponse(b"<html>404</html>"))
    with pytest.raises(ValueError, match=r"turn 0, chunk 0: 'https://x.org/a.png' is "
                                         r"in no image format PIL knows"):
        encode_messages(tok, [user([{"type": "image_url", "image_url": "https://x.org/a.png"}])])
