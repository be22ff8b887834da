"""What every attribution method is: ``alocate(trajectory) -> Verdict`` (and a sync ``locate``)."""

from __future__ import annotations

from typing import Any

from ..errors import AgentracerError, InputError
from ..models.base import ChatModel
from ..schema import Trajectory, Verdict

#: Prompt budget when a model does not say how much it reads (Qwen3-8B's native window is 32k tokens).
DEFAULT_CONTEXT_WINDOW = 32768
TEMPLATE_SLACK = 32  # tokens a chat template adds around a prompt fitted to its budget
#: Tokens kept free for the answer (the reasoning in <think> can be long).
DEFAULT_ANSWER_TOKENS = 4096


class AnswerError(AgentracerError):
    """The model answered, but no agent/step could be read from it; ``raw`` keeps the answer."""

    def __init__(self, message: str, *, raw: str | None, flags: list[str] | None = None) -> None:
        self.raw = raw
        self.flags = list(flags or [])
        super().__init__(message)


def redacted_verdict(verdict: Verdict) -> Verdict:
    """``verdict`` with secrets out of what the model wrote (its reason, its raw answer, its metadata): a tracer that
    quotes a key must not put it into a store, a results file or a terminal."""
    from ..redact import Redactor

    redact = Redactor()
    reason, raw, metadata = redact(verdict.reason), redact(verdict.raw), redact(verdict.metadata)
    if (reason, raw, metadata) == (verdict.reason, verdict.raw, verdict.metadata):
        return verdict
    return verdict.model_copy(update={"reason": reason, "raw": raw, "metadata": metadata})


def require_steps(trajectory: Trajectory) -> None:
    """Attribution needs at least one step."""
    if not trajectory.steps:
        raise InputError("the trajectory has no steps to attribute", where=trajectory.id)


class Method:
    """Base of attribution methods. Subclasses implement ``alocate``."""

    name = "method"
    needs_model = False

    def __init__(self, model: ChatModel | None = None, **options: Any) -> None:
        self.model = model
        self.options = options

    async def alocate(self, trajectory: Trajectory, *, with_ground_truth: bool = False) -> Verdict:
        raise NotImplementedError

    def locate(self, trajectory: Trajectory, *, with_ground_truth: bool = False) -> Verdict:
        """Sync ``alocate`` (also safe where an event loop already runs)."""
        from ..team import run_sync

        return run_sync(self.alocate(trajectory, with_ground_truth=with_ground_truth))

    def __repr__(self) -> str:
        model = getattr(self.model, "name", None)
        return f"<{type(self).__name__} {self.name}{f' model={model}' if model else ''}>"


def prompt_budget(model: Any, answer_tokens: int | None = None) -> int:
    """Tokens the prompt may take: the model's context window less what its answer may take (``answer_tokens``,
    else the model's own ``max_new_tokens``, else 4096), the answer held to at most half of a small window."""
    window = int(getattr(model, "context_window", None) or DEFAULT_CONTEXT_WINDOW)
    answer = int(answer_tokens or getattr(model, "max_new_tokens", None) or DEFAULT_ANSWER_TOKENS)
    return max(window // 2, window - answer)


class ModelMethod(Method):
    """A method that asks a chat model; knows the model's prompt budget."""

    needs_model = True
    model: ChatModel  # never None here (checked when built)

    def __init__(
        self,
        model: ChatModel | None = None,
        *,
        max_prompt_tokens: int | None = None,
        answer_tokens: int | None = None,
        tokenizer: Any = None,
        params: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        if model is None:
            raise InputError(f"method {self.name!r} needs a model (e.g. --model openai:URL@MODEL)")
        super().__init__(model, **options)
        self.max_prompt_tokens = int(max_prompt_tokens or prompt_budget(model, answer_tokens))
        counter = getattr(model, "count_tokens", None)
        self.tokenizer = tokenizer if tokenizer is not None else counter
        self.params = dict(params or {})
        self._fit_answer_to_window(model)

    def _fit_answer_to_window(self, model: ChatModel) -> None:
        """A model that reserves more answer tokens than its window leaves after the prompt budget (a small local
        model) is asked for no more than that: prompt and answer together fit its window."""
        own = getattr(model, "max_new_tokens", None)
        if not own or {"max_tokens", "max_new_tokens"} & self.params.keys():
            return  # (before the window is read: an openai: model's is asked of its server)
        window = getattr(model, "context_window", None)
        if not window:
            return
        room = int(window) - self.max_prompt_tokens - TEMPLATE_SLACK
        if int(own) > room:
            self.params["max_tokens"] = max(1, room)

    def verdict(self, agent: str, step: int, *, raw: str | None, reason: str | None, flags: list[str],
                **metadata: Any) -> Verdict:
        return Verdict(agent=agent, step=step, reason=reason, source="tracer", raw=raw, flags=flags,
                       metadata={"method": self.name, "model": getattr(self.model, "name", None), **metadata})
