"""A toy attribution set, a word-level tokenizer built with `tokenizers`, and a tiny random Qwen2 (no download)."""

from __future__ import annotations

import random
from dataclasses import dataclass

AGENTS = ("Planner", "Coder", "Critic")
TAGS = ("<think>", "</think>", "<answer>", "</answer>")
SPECIALS = ("<pad>", "<eos>", "<unk>")
WORDS = ("ok", "bad", "step", "why", "log", "|")
DIGITS = tuple(str(i) for i in range(10))


@dataclass
class ToyCase:
    """A run of ``len(steps)`` steps; the first ``bad`` step is the decisive error."""

    steps: list[tuple[str, str]]  # (agent, ok|bad)

    @property
    def truth(self) -> dict:
        step = next(i for i, (_, verdict) in enumerate(self.steps) if verdict == "bad")
        return {"agent": self.steps[step][0], "step": step, "agents": list(AGENTS)}

    def prompt_words(self) -> list[str]:
        words = ["log"]
        for i, (agent, verdict) in enumerate(self.steps):
            words += ["step", str(i), agent, verdict]
        return words + ["why"]


def toy_cases(count: int, length: int = 4, seed: int = 0) -> list[ToyCase]:
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        bad = rng.randrange(length)
        cases.append(ToyCase([(rng.choice(AGENTS), "bad" if i == bad else "ok") for i in range(length)]))
    return cases


def build_tokenizer():
    """A word-level tokenizer whose pieces join without spaces, so answers decode to the exact format."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + TAGS + AGENTS + WORDS + DIGITS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"</?think>|</?answer>|\||\d|[A-Za-z]+"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    return fast


def build_tiny_qwen(vocab_size: int, seed: int = 0):
    """A randomly initialised two-layer Qwen2 (about 100k parameters)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=True, pad_token_id=0, eos_token_id=1, bos_token_id=1)
    return Qwen2ForCausalLM(config)


#: The assistant turn starts with this prefill, so sampling decides the verdict (agent|step</answer>).
PREFILL = "<think>why</think><answer>"


def prompt_ids(tokenizer, case: ToyCase) -> list[int]:
    return tokenizer.convert_tokens_to_ids(case.prompt_words() + ["<think>", "why", "</think>", "<answer>"])


def format_warmup(model, tokenizer, cases: list[ToyCase], *, steps: int, lr: float = 1e-2, seed: int = 0) -> float:
    """Supervised steps on well-formed answers with *random* agents and steps: teaches the format only,
    so a policy starts GRPO knowing how to answer but not what (its reward starts near chance)."""
    import torch

    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    prompts = [prompt_ids(tokenizer, c) for c in cases]
    loss = torch.tensor(0.0)
    for _ in range(steps):
        batch = []
        for ids in prompts:
            for _ in range(4):
                answer = f"{rng.choice(AGENTS)}|{rng.randrange(len(cases[0].steps))}</answer>"
                batch.append(ids + tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
        input_ids = torch.tensor(batch)
        labels = input_ids.clone()
        labels[:, : len(prompts[0])] = -100
        loss = model(input_ids=input_ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return float(loss.detach())
