"""A local Hugging Face transformers model: ``hf:/path/to/model`` (weights from a local folder only).

Generation is batched (left padding) and concurrent ``acomplete`` calls are coalesced into batches (see
``agentracer.models.batching``). The prompt is the tokenizer's chat template when it has one, else a plain
``role: content`` transcript. Parameters in OpenAI style are understood: ``max_tokens``, ``temperature``
(0 = greedy, the default), ``top_p``, ``seed`` (a seeded sample is generated alone, so it is the same whatever it
is batched with). Needs ``torch`` and ``transformers`` (the ``train`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..schema import Usage
from ..tracer.answer_format import template_answer_start
from .base import Completion, Message, ModelError, RequestRefused
from .batching import LocalBatchModel


def _imports() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise InputError(f"hf: models need torch and transformers ({exc.name} is missing): "
                         "pip install 'agentracer[train]'") from None
    return torch, transformers



def _load(transformers: Any, torch: Any, path: str, dtype: str, trust_remote_code: bool) -> tuple[Any, Any]:
    """The tokenizer and causal LM of a local folder."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    torch_dtype = getattr(torch, dtype) if dtype != "auto" else "auto"
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    dtype_kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"  # renamed in transformers 4.56
    model = transformers.AutoModelForCausalLM.from_pretrained(
        path, trust_remote_code=trust_remote_code, **{dtype_kw: torch_dtype})
    return tokenizer, model

class TransformersChatModel(LocalBatchModel):
    """A causal LM loaded with transformers from a local path."""

    def __init__(
        self,
        path: str,
        *,
        device: str | None = None,
        dtype: str = "auto",
        max_new_tokens: int = 1024,
        temperature: float = 0.0,
        max_concurrency: int = 4,
        context_window: int | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__()
        torch, transformers = _imports()
        if not Path(path).exists():
            raise InputError(f"hf: model folder {path!r} does not exist (models load from local paths only)")
        if not (Path(path).is_dir() and (Path(path) / "config.json").is_file()):
            raise InputError(f"hf: {path!r} is not a transformers model folder (no config.json in it)")
        self._torch = torch
        self.name = f"hf:{path}"
        self.path = path
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.max_concurrency = max(1, int(max_concurrency))
        try:
            self.tokenizer, self.model = _load(transformers, torch, path, dtype, trust_remote_code)
        except (OSError, ValueError) as exc:  # transformers' own advice names packages, not the folder
            raise InputError(f"hf: transformers cannot load a model and tokenizer from {path!r} "
                             f"({str(exc).splitlines()[0]})") from None
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        # what the chat template writes of the answer (an opened <think>): put back before the text generated
        self.answer_start = template_answer_start(self.tokenizer)
        window = getattr(self.model.config, "max_position_embeddings", None)
        self.context_window = int(context_window or window or 0) or None
        self.usage = Usage()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text of ``messages`` (chat template, or a plain transcript without one)."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        lines = [f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages]
        return "\n".join(lines) + "\nassistant:"

    def generate(self, batch: Sequence[Sequence[Message]], **params: Any) -> list[Completion | Exception]:
        torch = self._torch
        max_new = int(params.get("max_tokens") or params.get("max_new_tokens") or self.max_new_tokens)
        temperature = float(params.get("temperature", self.temperature) or 0.0)
        results: list[Completion | Exception] = [ModelError("not generated")] * len(batch)
        prompts: list[str] = []
        positions: list[int] = []
        for i, messages in enumerate(batch):
            text = self.render(messages)
            length = self.count_tokens(text)
            if self.context_window and length + max_new > self.context_window:
                results[i] = RequestRefused(f"prompt of {length} tokens + {max_new} new tokens exceeds the "
                                        f"{self.context_window}-token window of {self.name}")
                continue
            prompts.append(text)
            positions.append(i)
        if not prompts:
            return results
        options: dict[str, Any] = {"max_new_tokens": max_new, "pad_token_id": self.tokenizer.pad_token_id,
                                   "do_sample": temperature > 0}
        if temperature > 0:
            options.update(temperature=temperature, top_p=float(params.get("top_p", 1.0)))
        seed = params.get("seed")
        # One random stream feeds a batch's rows together: a seeded sample would depend on what it was batched with.
        # Seeded sampling goes one request at a time instead, each from its seed (slower, but reproducible).
        alone = seed is not None and temperature > 0
        groups = [[k] for k in range(len(prompts))] if alone else [list(range(len(prompts)))]
        for group in groups:
            if seed is not None:
                torch.manual_seed(int(seed))
            answers = self._generated([prompts[k] for k in group], options)
            for k, completion in zip(group, answers, strict=True):
                self.usage = self.usage + completion.usage
                results[positions[k]] = completion
        return results

    def _generated(self, prompts: list[str], options: dict[str, Any]) -> list[Completion]:
        """One batched generate call: the answers of ``prompts``, in order."""
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = {k: v.to(self.device) for k, v in encoded.items()}
        with self._torch.no_grad():
            output = self.model.generate(**encoded, **options)
        width = encoded["input_ids"].shape[1]
        eos = self.tokenizer.eos_token_id
        stops = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.pad_token_id}
        answers = []
        for row in range(len(prompts)):
            new = output[row, width:].tolist()
            used = next((k + 1 for k, token in enumerate(new) if token in stops), len(new))
            text = self.answer_start + self.tokenizer.decode(new[:used], skip_special_tokens=True)
            usage = Usage(prompt_tokens=int(encoded["attention_mask"][row].sum()), completion_tokens=used)
            answers.append(Completion(text=text, usage=usage, raw={"token_ids": new[:used]}))
        return answers


def from_spec(rest: str, **options: Any) -> TransformersChatModel:
    """The backend for ``hf:PATH``."""
    if not rest:
        raise InputError("hf: needs a local model folder, e.g. hf:/models/Qwen3-8B")
    return TransformersChatModel(rest, **options)
