"""A conversation re-sent with new messages at its end: only those are derived again."""

from __future__ import annotations

from agentracer.conversations import Conversations


class Counting:
    def __init__(self) -> None:
        self.derived: list[object] = []

    def __call__(self, messages):
        self.derived.extend(messages)
        return [f"d({m['text']})" for m in messages]


def _messages(*texts: str) -> list[dict]:
    return [{"text": t} for t in texts]


def test_a_growing_conversation_derives_its_new_messages_only():
    derive = Counting()
    conversations = Conversations(derive)
    first = _messages("system", "a")
    assert conversations.derived(first) == ["d(system)", "d(a)"]
    grown = [*first, *_messages("b", "c")]
    assert conversations.derived(grown) == ["d(system)", "d(a)", "d(b)", "d(c)"]
    assert conversations.derived(tuple(grown)) == ["d(system)", "d(a)", "d(b)", "d(c)"]  # re-sent as it was
    assert [m["text"] for m in derive.derived] == ["system", "a", "b", "c"]


def test_equal_messages_count_as_the_known_beginning_and_a_changed_one_derives_everything_again():
    derive = Counting()
    conversations = Conversations(derive)
    first = _messages("system", "a", "b")
    conversations.derived(first)
    copied = [first[0], *_messages("a", "b"), *_messages("c")]  # rebuilt dicts, equal values
    assert conversations.derived(copied) == ["d(system)", "d(a)", "d(b)", "d(c)"]
    assert [m["text"] for m in derive.derived] == ["system", "a", "b", "c"]
    edited = [first[0], *_messages("A", "b", "c", "d")]
    assert conversations.derived(edited) == ["d(system)", "d(A)", "d(b)", "d(c)", "d(d)"]
    window = [first[0], *_messages("c", "d")]  # a window that dropped old messages
    assert conversations.derived(window) == ["d(system)", "d(c)", "d(d)"]
    assert len(derive.derived) == 4 + 5 + 3


def test_conversations_are_kept_apart_and_what_callers_get_is_theirs():
    derive = Counting()
    conversations = Conversations(derive, limit=2)
    one, two, three = _messages("one"), _messages("two"), _messages("three")
    got = conversations.derived(one)
    got.append("changed by the caller")
    assert conversations.derived([*one, *_messages("x")]) == ["d(one)", "d(x)"]
    conversations.derived(two)
    conversations.derived(three)  # over the limit: the oldest conversation (one) is dropped
    derive.derived.clear()
    conversations.derived([*two, *_messages("y")])
    assert [m["text"] for m in derive.derived] == ["y"]
    conversations.derived([*one, *_messages("x", "z")])
    assert [m["text"] for m in derive.derived] == ["y", "one", "x", "z"]
    assert conversations.derived([]) == []


def test_conversations_that_begin_with_the_same_message_are_each_continued():
    """Agents with one default system prompt: three conversations share their first message, taking turns."""
    derive = Counting()
    conversations = Conversations(derive, per_key=3)
    system = _messages("system")
    talks = {name: [*system, *_messages(f"{name} 0")] for name in ("a", "b", "c")}
    for name, talk in talks.items():
        assert conversations.derived(talk) == ["d(system)", f"d({name} 0)"]
    derive.derived.clear()
    for turn in range(1, 4):
        for name, talk in talks.items():
            talk.append({"text": f"{name} {turn}"})
            assert conversations.derived(talk) == [f"d({m['text']})" for m in talk]
    assert [m["text"] for m in derive.derived] == [f"{n} {t}" for t in range(1, 4) for n in "abc"]
    talks["d"] = [*system, *_messages("d 0")]  # a fourth one: over ``per_key``, the one that started first goes
    conversations.derived(talks["d"])
    derive.derived.clear()
    conversations.derived([*talks["a"], {"text": "a 4"}])
    assert [m["text"] for m in derive.derived] == ["system", "a 0", "a 1", "a 2", "a 3", "a 4"]
