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
    first = copies.copy_all(_conversation())
    second = copies.copy_all(_conversation())
    assert first[0] is second[0] and first[1] is second[1]
    assert type(first[0]) is FrozenJSON and type(first[0]["content"]) is str  # no TextPrompt left
    assert first[2] is not second[2] and first[2] == {"role": "tool", "content": 1}
    assert first[3] == second[3] and first[3] is not second[3]
    assert json.loads(json.dumps(first)) == first


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
