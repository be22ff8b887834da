"""Offline models for MetaGPT: a scripted ``BaseLLM`` subclass (imports MetaGPT; use after ``prepare_home``).

``ScriptedLLM(responder)`` answers ``aask`` like a provider would: ``responder`` is a text, a list of texts
served in order, or a function of the chat messages. ``echo_format_example`` is a responder for MetaGPT's
structured actions: it answers with the ``[CONTENT]...[/CONTENT]`` example the prompt itself shows, so
the software-company roles get answers shaped as their ActionNodes expect.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

from metagpt.configs.llm_config import LLMConfig
from metagpt.provider.base_llm import BaseLLM

Responder = str | Sequence[str] | Callable[[list[dict[str, Any]]], str]


class ScriptedLLM(BaseLLM):
    """A MetaGPT LLM whose answers are scripted; ``calls`` keeps every message list it was sent. Each call reports
    its usage as providers do (``_update_costs``), counting words for tokens."""

    def __init__(self, responder: Responder, *, model: str = "scripted", delay: float = 0.0) -> None:
        self.config = LLMConfig(api_key="sk-scripted", model=model, stream=False, calc_usage=False)
        self.model = model
        self.cost_manager = None
        self.delay = delay
        self.calls: list[list[dict[str, Any]]] = []
        self._lock = threading.Lock()
        if callable(responder):
            self._answer = responder
        elif isinstance(responder, str):
            self._answer = lambda _messages: responder
        else:
            queue = list(responder)
            self._answer = lambda _messages: self._next(queue)

    def _next(self, queue: list[str]) -> str:
        with self._lock:
            if not queue:
                raise RuntimeError(f"ScriptedLLM {self.model!r} has no answers left")
            return queue.pop(0)

    def _reply(self, messages: list[dict[str, Any]]) -> str:
        self.calls.append(messages)
        return self._answer(messages)

    async def _achat_completion(self, messages: list[dict], timeout: int = 3) -> dict[str, Any]:
        await asyncio.sleep(self.delay)  # a provider's call waits, even an instant one: the other roles go on
        text = self._reply(messages)
        usage = {"prompt_tokens": sum(len(str(m.get("content", "")).split()) for m in messages),
                 "completion_tokens": len(text.split())}  # (words, reported as a provider reports its tokens)
        self._update_costs(usage, self.model)
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}], "model": self.model, "usage": usage}

    async def acompletion(self, messages: list[dict], timeout: int = 3) -> dict[str, Any]:
        return await self._achat_completion(messages, timeout)

    async def _achat_completion_stream(self, messages: list[dict], timeout: int = 3) -> str:
        return self.get_choice_text(await self._achat_completion(messages, timeout))


_EXAMPLE = re.compile(r"## format example\s*\n(\[CONTENT\].*?\[/CONTENT\])", re.DOTALL)


def echo_format_example(fallback: Callable[[list[dict[str, Any]]], str]) -> Callable[[list[dict[str, Any]]], str]:
    """A responder: the prompt's own ``[CONTENT]`` format example when it has one, else ``fallback``."""

    def answer(messages: list[dict[str, Any]]) -> str:
        prompt = str(messages[-1].get("content", "")) if messages else ""
        found = _EXAMPLE.search(prompt)
        return found.group(1) if found else fallback(messages)

    return answer
