"""The LLM interface: ``aask`` builds chat messages and awaits ``_achat``; ``OpenAICompatibleLLM`` talks HTTP."""

from __future__ import annotations

from typing import Any

import httpx


class BaseLLM:
    system_prompt = "You are a helpful assistant."
    use_system_prompt = True

    def __init__(self, model: str) -> None:
        self.model = model
        self.total_cost = 0.0

    async def aask(self, msg: str, system_msgs: list[str] | None = None, format_msgs: Any = None,
                   images: Any = None, timeout: int = 60, stream: bool | None = None) -> str:
        messages = [{"role": "system", "content": s} for s in (system_msgs or [self.system_prompt])]
        messages.append({"role": "user", "content": msg})
        return await self._achat(messages, timeout)

    async def _achat(self, messages: list[dict[str, Any]], timeout: int) -> str:
        raise NotImplementedError

    def _update_costs(self, usage: dict[str, Any], model: str | None = None, local_calc_usage: bool = True) -> None:
        """Where every provider reports a call's tokens (MetaGPT's shape)."""
        self.total_cost += usage.get("total_tokens", 0) * 1e-6


class OpenAICompatibleLLM(BaseLLM):
    """Chat completions over HTTP; every token costs a micro-dollar."""

    def __init__(self, base_url: str, model: str = "loopback", api_key: str = "sk-none") -> None:
        super().__init__(model)
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key

    async def _achat(self, messages: list[dict[str, Any]], timeout: int) -> str:
        async with httpx.AsyncClient(timeout=timeout) as client:
            reply = await client.post(f"{self.base_url}/chat/completions",
                                      headers={"Authorization": f"Bearer {self.api_key}"},
                                      json={"model": self.model, "messages": messages})
            reply.raise_for_status()
            body = reply.json()
        self._update_costs(body.get("usage", {}), self.model)
        return body["choices"][0]["message"]["content"]
