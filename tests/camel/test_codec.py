"""CAMEL requests as JSON: messages of strings copied once per distinct value, everything else by a JSON round trip."""

from __future__ import annotations

import json

from agentracer.redact import FrozenJSON, Redactor, request_hash
from camel.prompts import TextPrompt

from agentracer_plugins.camel.codec import MessageCopies, build_request


def _conversation() -> list[dict]:
    """What CAMEL hands its backend on each call: the whole conversation as freshly built dicts."""
    return [{"role": "system", "content": TextPrompt("You are the {role}.").format(role="Writer")},
            {"role": "user", "content": "Instruction: write item 1."},
            {"role": "tool", "content": 1},  # not a string: never shared
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                                     "function": {"name": "f", "arguments": "{}"}}]}]


def test_equal_messages_of_strings_become_one_frozen_copy_of_plain_strings() -> None:
    copies = MessageCopies()
    sent = _conversation()
    first = copies.copy_all(sent)
    second = copies.copy_all(_conversation())  # the same conversation, rebuilt: copied once
    assert all(a is b for a, b in zip(first, second, strict=True))
    assert type(first[0]) is FrozenJSON and type(first[0]["content"]) is str  # no TextPrompt left
    assert first[2] == {"role": "tool", "content": 1} and first[3] == sent[3]
    assert not any(copy is message for copy, message in zip(first, sent, strict=True))  # never CAMEL's own dicts
    assert json.loads(json.dumps(first)) == first
    other = copies.copy_all(_conversation()[1:])  # another conversation: messages of strings are still shared
    assert other[0] is first[1] and type(other[0]) is FrozenJSON and other[1] is not first[2]


def test_a_conversation_that_grows_is_copied_at_its_end_and_one_that_changed_again() -> None:
    copies = MessageCopies()
    history = [{"role": "system", "content": "rules"}, {"role": "user", "content": "one"}]
    first = copies.copy_all(history)
    grown = copies.copy_all([dict(m) for m in history] + [{"role": "assistant", "content": "two"}])
    assert grown[:2] == first and grown[0] is first[0] and grown[2] == {"role": "assistant", "content": "two"}
    changed = copies.copy_all([history[0], {"role": "user", "content": "ONE"}])
    assert changed == [{"role": "system", "content": "rules"}, {"role": "user", "content": "ONE"}]


def test_a_value_equal_message_of_another_type_is_not_taken_for_a_cached_one() -> None:
    copies = MessageCopies()
    copies.copy_all([{"role": "tool", "content": "1"}])
    assert copies.copy_all([{"role": "tool", "content": 1}]) == [{"role": "tool", "content": 1}]
    assert copies.copy_all([{"role": "tool", "content": True}]) == [{"role": "tool", "content": True}]


def test_requests_hash_and_redact_as_their_plain_json_does() -> None:
    copies, redactor = MessageCopies(), Redactor(["verysecretvalue123"])

    class Backend:
        model_type = "scripted"

    for _ in range(2):
        conversation = [*_conversation(), {"role": "user", "content": "key verysecretvalue123"}]
        request = build_request(Backend(), conversation, None, None, copies)
        plain = json.loads(json.dumps(request))
        clean, digest = redactor.request(request)
        assert digest == request_hash(json.loads(json.dumps(clean)))
        assert clean["messages"][-1]["content"] == "key [REDACTED]" and "verysecretvalue123" in str(plain)


def test_a_response_is_stored_without_its_default_fields_and_decodes_equal() -> None:
    from agentracer_plugins.camel.codec import CODEC, completion

    for response in (completion("Solution: done.", usage=(10, 5)),
                     completion(None, [{"name": "search", "arguments": {"q": "x"}}])):
        data = CODEC.encode(response)
        assert "refusal" not in data["choices"][0]["message"] and "system_fingerprint" not in data
        assert json.loads(json.dumps(data)) == data
        assert CODEC.decode(data) == response
