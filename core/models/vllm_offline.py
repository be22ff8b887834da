"""The vLLM offline engine: ``vllm:/path/to/model`` (batch generation on a GPU machine, local weights only).

``vllm`` is imported only when such a model is built; without it the spec fails with a clear message.
Concurrent ``acomplete`` calls are coalesced into one ``LLM.chat`` batch (``agentracer.models.batching``),
and ``abatch`` hands vLLM up to ``max_concurrency`` conversations at once. OpenAI-style parameters are
understood: ``max_tokens``, ``temperature`` (0 = greedy, the default), ``top_p``, ``seed``. Other keyword
options go to ``vllm.LLM`` (e.g. ``tensor_parallel_size=2``, ``max_model_len=32768``,
``gpu_memory_utilization=0.85``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..schema import Usage
from ..tracer.answer_format import template_answer_start
from .base import Completion, Message
from .batching import LocalBatchModel


def _vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise InputError("vllm: models need vLLM, which is not installed here; on a GPU machine run "
                         "pip install 'agentracer[serve]', or serve the model with `vllm serve` and use "
                         "openai:http://HOST:PORT/v1@MODEL") from None
    return vllm


class VLLMOfflineModel(LocalBatchModel):
    """A model run in-process by vLLM's offline ``LLM`` engine."""

    def __init__(
        self,
        path: str,
        *,
        max_new_tokens: int = 4096,
        temperature: float = 0.0,
        max_concurrency: int = 256,
        context_window: int | None = None,
        **engine_options: Any,
    ) -> None:
        super().__init__()
        vllm = _vllm()
        if not Path(path).exists():
            raise InputError(f"vllm: model folder {path!r} does not exist (models load from local paths only)")
        self._vllm = vllm
        self.name = f"vllm:{path}"
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.max_concurrency = max(1, int(max_concurrency))
        self.llm = vllm.LLM(model=path, **engine_options)
        self.tokenizer = self.llm.get_tokenizer()
        # what the chat template writes of the answer (an opened <think>): put back before the text generated
        self.answer_start = template_answer_start(self.tokenizer)
        engine_window = getattr(getattr(self.llm, "llm_engine", None), "model_config", None)
        self.context_window = context_window or getattr(engine_window, "max_model_len", None)
        self.usage = Usage()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def sampling_params(self, **params: Any) -> Any:
        temperature = float(params.get("temperature", self.temperature) or 0.0)
        options: dict[str, Any] = {"max_tokens": int(params.get("max_tokens") or self.max_new_tokens),
                                   "temperature": temperature}
        if temperature > 0 and params.get("top_p") is not None:
            options["top_p"] = float(params["top_p"])
        if params.get("seed") is not None:
            options["seed"] = int(params["seed"])
        return self._vllm.SamplingParams(**options)

    def generate(self, batch: Sequence[Sequence[Message]], **params: Any) -> list[Completion | Exception]:
        outputs = self.llm.chat([list(m) for m in batch], self.sampling_params(**params), use_tqdm=False)
        results: list[Completion | Exception] = []
        for output in outputs:
            first = output.outputs[0]
            usage = Usage(prompt_tokens=len(output.prompt_token_ids or []), completion_tokens=len(first.token_ids))
            self.usage = self.usage + usage
            results.append(Completion(text=self.answer_start + first.text, usage=usage,
                                      raw={"finish_reason": first.finish_reason}))
        return results


def from_spec(rest: str, **options: Any) -> VLLMOfflineModel:
    """The backend for ``vllm:PATH``."""
    if not rest:
        raise InputError("vllm: needs a local model folder, e.g. vllm:/models/AgenTracer-8B")
    return VLLMOfflineModel(rest, **options)
