"""Lesson 11, Going deeper: Pixtral-Large's SentencePiece tokenizer (tokenizer.model.v7m1, shipped
in mistral_common). Version 7 writes each system message in place between [SYSTEM_PROMPT] and
[/SYSTEM_PROMPT]; everything is checked against mistral_common's encode_chat_completion with
the same file, token for token and pixel for pixel."""
from __future__ import annotations

import builtins
import shutil

import pytest
from test_11_messages import (ACCEPTED, FORMS, ORDERS, SWEEP, assert_same, data_url, encode_ref,
                              noise, ordered_message, random_conversation, text)

import minipixtral as mp
from minipixtral.messages import _encode_turns, _merge_runs, _parse_message, _system_prompt
from minipixtral.reference import mistral_tokenizer


@pytest.fixture(scope="module")
def tok() -> mp.Tokenizer:
    return mp.Tokenizer.from_file(mp.shipped_large_tokenizer_file())


@pytest.fixture(scope="module")
def ref():
    return mistral_tokenizer(mp.shipped_large_tokenizer_file())


def test_the_file_and_its_settings(tok):
    assert tok.version == 7 and tok.vocab_size == 32768
    assert (tok.bos_id, tok.eos_id, tok.inst_id, tok.inst_end_id) == (1, 2, 3, 4)
    assert tuple(tok.image_ids.__dict__.values()) == (10, 14, 15)  # params.json of Large
    assert (tok.patch_size, tok.max_image_size, tok.spatial_merge_size) == (16, 1024, 1)
    assert mp.Tokenizer.from_file(mp.shipped_tokenizer_file()).version == 3
    assert tok.decode(tok.encode("Hello, world")) == "Hello, world"


def test_tokenizer_for_takes_the_models_image_settings(tok):
    vision = mp.VisionConfig(patch_size=8, image_size=64)
    small = mp.tokenizer_for(mp.shipped_large_tokenizer_file(), vision)
    assert (small.patch_size, small.max_image_size, small.version) == (8, 64, 7)


@pytest.mark.parametrize("case", range(SWEEP))
def test_sweep_matches_mistral_common(tok, ref, tmp_path, case):
    ours, theirs = random_conversation(case, tmp_path)
    assert_same(tok.encode_messages(ours), encode_ref(ref, theirs))


def test_sweep_has_system_messages_in_three_places(tmp_path):
    """The sweep puts system messages first, between user turns and last: where v7 differs."""
    places = set()
    for case in range(SWEEP):
        roles = [m["role"] for m in random_conversation(case, tmp_path)[0]]
        for i, role in enumerate(roles):
            if role == "system":
                places.add("first" if i == 0 else "last" if i == len(roles) - 1 else "between")
    assert places == {"first", "between", "last"}


@pytest.mark.parametrize("form", ["png_url", "pil", "path"])
@pytest.mark.parametrize("order", ORDERS.values(), ids=ORDERS.keys())
def test_orders_with_a_system_prompt(tok, ref, tmp_path, order, form):
    ours, theirs = ordered_message(order, form, tmp_path)
    head = [{"role": "system", "content": "Be brief."}]
    assert_same(tok.encode_messages(head + [ours]), encode_ref(ref, head + [theirs]))


V7_CASES = ACCEPTED | {
    "two-systems-first": [{"role": "system", "content": "A"}, {"role": "system", "content": "B"},
                          {"role": "user", "content": "q"}],
    "empty-system": [{"role": "system", "content": ""}, {"role": "user", "content": "q"}],
    "blank-system": [{"role": "system", "content": " "}, {"role": "user", "content": "q"}],
    "system-between-turns": [
        {"role": "user", "content": [text("p"), {"type": "image_url",
                                                  "image_url": data_url(noise(30, 20))}]},
        {"role": "assistant", "content": "x "}, {"role": "user", "content": "r"},
        {"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
}


@pytest.mark.parametrize("messages", V7_CASES.values(), ids=V7_CASES.keys())
def test_odd_but_accepted_cases(tok, ref, messages):
    assert_same(tok.encode_messages(messages), encode_ref(ref, messages))


def test_system_block_is_first_and_apart(tok):
    ids, _ = tok.encode_messages([{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": "Hi"}])
    begin, end = (tok.tekken.get_special_token(t) for t in ("[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"))
    assert ids == [tok.bos_id, begin, *tok.encode("Be brief."), end, tok.inst_id,
                   *tok.encode("Hi"), tok.inst_end_id]


def test_version_3_rule_is_not_what_mistral_common_does(tok, ref):
    """Negative control: the system prompt inside the last user turn (v3) ≠ v7's ids."""
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    turns = [_parse_message(i, m) for i, m in enumerate(messages)]
    v3_ids, _ = _encode_turns(tok, _merge_runs(turns), _system_prompt(turns))
    assert v3_ids != encode_ref(ref, messages)[0]
    assert tok.encode_messages(messages)[0] == encode_ref(ref, messages)[0]


@pytest.mark.parametrize("system", [None, "Answer in a few words."])
def test_encode_chat_and_conversation(tok, ref, system):
    """Lesson 04's simple forms write version 7's block too (images first, then the text)."""
    picture = noise(40, 30)
    head = [{"role": "system", "content": system}] if system else []
    user = {"role": "user", "content": [{"type": "image", "image": picture}, text("What?")]}
    assert_same(tok.encode_chat("What?", [picture], system=system), encode_ref(ref, head + [user]))
    conversation = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b "},
                    {"role": "user", "content": "c", "images": [picture]}]
    theirs = head + [conversation[0], conversation[1],
                     {"role": "user", "content": [{"type": "image", "image": picture}, text("c")]}]
    assert_same(tok.encode_conversation(conversation, system=system), encode_ref(ref, theirs))


def test_max_length(tok):
    ids, _ = tok.encode_messages([{"role": "user", "content": "Hi"}])
    with pytest.raises(ValueError, match=rf"{len(ids)} tokens long, more than the "
                                         rf"{len(ids) - 1} that fit"):
        tok.encode_messages([{"role": "user", "content": "Hi"}], max_length=len(ids) - 1)


def test_a_broken_file_is_refused(tmp_path):
    broken = tmp_path / "tokenizer.model.v7m1"
    broken.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="is not a SentencePiece tokenizer file"):
        mp.Tokenizer.from_file(broken)


def test_an_unknown_image_version_is_refused(tmp_path):
    odd = tmp_path / "tokenizer.model.v7m9"
    shutil.copyfile(mp.shipped_large_tokenizer_file(), odd)
    with pytest.raises(ValueError, match=r"nor a SentencePiece file of a known version"):
        mp.Tokenizer.from_file(odd)


def test_a_text_only_file_is_refused(tmp_path):
    text_only = tmp_path / "tokenizer.model.v7"
    shutil.copyfile(mp.shipped_large_tokenizer_file(), text_only)
    with pytest.raises(ValueError, match="has no image settings"):
        mp.Tokenizer.from_file(text_only)


def test_without_the_sentencepiece_package(monkeypatch):
    real_import = builtins.__import__

    def no_sentencepiece(name, *args, **kwargs):
        if name == "sentencepiece":
            raise ImportError("No module named 'sentencepiece'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sentencepiece)
    with pytest.raises(ImportError, match="pip install sentencepiece"):
        mp.Tokenizer.from_file(mp.shipped_large_tokenizer_file())
