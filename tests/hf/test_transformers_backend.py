"""The transformers backend on a tiny, randomly initialised Qwen3 saved to a temp folder (no download).

The tokenizer is a byte-level BPE trained here with the `tokenizers` library, wrapped as a fast tokenizer
with a ChatML chat template, so every code path (template, padding, batching, token counting) is real.
"""

from __future__ import annotations

import asyncio

import pytest

# Runs in the `train` nox session (torch, transformers, tokenizers installed): a missing one fails, never skips.
import torch
import transformers
from agentracer.models import load_model
from agentracer.models.base import ModelError
from agentracer.schema import Step, Trajectory, Verdict
from agentracer.tracer import build_messages, get_method
from agentracer.tracer.base import AnswerError

pytestmark = pytest.mark.train

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "The WebSurfer opened the wrong page and the Orchestrator trusted it.",
    "<think>step 3 was wrong</think><answer>WebSurfer|3</answer>",
    "Step 0 - human: find the population of Paris in 2020.",
    "def add(a, b):\n    return a + b  # numbers 0123456789",
] * 20


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    folder = tmp_path_factory.mktemp("tiny-qwen3")
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(CORPUS, trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(folder)
    config = transformers.Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    transformers.Qwen3ForCausalLM(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def model(tiny_model_dir: str):
    return load_model(f"hf:{tiny_model_dir}", max_new_tokens=6)


def _messages(text: str) -> list[dict]:
    return [{"role": "system", "content": "You are a tracer."}, {"role": "user", "content": text}]


def test_loads_from_a_local_folder_and_generates(model) -> None:
    assert model.name.startswith("hf:")
    assert model.context_window == 4096
    completion = model.complete(_messages("Which agent failed?"), max_tokens=5)
    assert isinstance(completion.text, str)
    assert 1 <= completion.usage.completion_tokens <= 5
    rendered = model.render(_messages("Which agent failed?"))
    assert rendered.startswith("<|im_start|>system\nYou are a tracer.<|im_end|>")
    assert rendered.endswith("<|im_start|>assistant\n")
    assert completion.usage.prompt_tokens == model.count_tokens(rendered)


def test_greedy_batches_match_single_requests(model) -> None:
    prompts = [_messages("short"), _messages("a much longer question about the WebSurfer and step 3 " * 3),
               _messages("def add(a, b)")]
    singles = [model.complete(p).text for p in prompts]
    batched = asyncio.run(model.abatch(prompts))
    assert [c.text for c in batched] == singles  # left padding and masks keep greedy answers identical


def test_concurrent_calls_are_coalesced_into_one_generate(model, monkeypatch) -> None:
    sizes: list[int] = []
    original = model.generate

    def spy(batch, **params):
        sizes.append(len(batch))
        return original(batch, **params)

    monkeypatch.setattr(model, "generate", spy)

    async def many():
        return await asyncio.gather(*(model.acomplete(_messages(f"question {i}")) for i in range(3)))

    answers = asyncio.run(many())
    assert len(answers) == 3 and all(isinstance(a.text, str) for a in answers)
    assert sizes == [3]


def test_a_prompt_over_the_window_fails_alone(model) -> None:
    too_long = _messages("WebSurfer page " * 3000)
    results = asyncio.run(model.abatch([_messages("fine"), too_long]))
    assert not isinstance(results[0], Exception)
    assert isinstance(results[1], ModelError) and "window" in str(results[1])


def test_tracer_prompt_is_fitted_to_the_models_real_token_count(model) -> None:
    steps = [Step(index=i, agent=["Orchestrator", "WebSurfer"][i % 2], content=f"step {i} " + "page text " * 400)
             for i in range(12)]
    trajectory = Trajectory(id="long", task="find it", steps=steps,
                            labels=[Verdict(agent="WebSurfer", step=3, source="human")])
    full = build_messages(trajectory, with_ground_truth=False)
    assert model.count_tokens(model.render(full)) > 4000  # far over the budget below
    method = get_method("agentracer", model, max_prompt_tokens=1500)
    messages = build_messages(trajectory, with_ground_truth=False, max_tokens=1500, tokenizer=model.tokenizer)
    assert model.count_tokens(model.render(messages)) <= 1500 + 20  # the chat template adds a few tokens
    text = messages[1]["content"]
    assert "Step 0 - Orchestrator" in text and "Step 11 - WebSurfer" in text  # numbering kept, ends kept
    assert "omitted" in text
    # the random model answers gibberish: a recorded AnswerError with its raw text, never a crash
    try:
        verdict = method.locate(trajectory)
    except AnswerError as exc:
        assert exc.raw is not None
    else:
        assert verdict.source == "tracer" and verdict.raw is not None


def test_missing_folder_is_a_clear_error(tmp_path) -> None:
    from agentracer.errors import InputError

    with pytest.raises(InputError, match="does not exist"):
        load_model(f"hf:{tmp_path / 'nope'}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="is not a transformers model folder \\(no config.json"):
        load_model(f"hf:{empty}")
    script = tmp_path / "build.py"
    script.write_text("print('hi')\n")
    with pytest.raises(InputError, match="is not a transformers model folder"):
        load_model(f"hf:{script}")


def test_a_model_folder_without_a_tokenizer_names_the_folder(tiny_model_dir: str, tmp_path) -> None:
    import shutil

    from agentracer.errors import InputError

    weights_only = tmp_path / "weights-only"
    weights_only.mkdir()
    shutil.copy(f"{tiny_model_dir}/config.json", weights_only / "config.json")
    with pytest.raises(InputError, match="transformers cannot load a model and tokenizer from .*weights-only"):
        load_model(f"hf:{weights_only}")


def test_a_small_window_holds_the_prompt_and_the_answer(tiny_model_dir: str) -> None:
    small = load_model(f"hf:{tiny_model_dir}", context_window=2048, max_new_tokens=2048)
    method = get_method("agentracer", small)  # it asked for 1024 prompt + 2048 answer tokens: over the window
    assert method.max_prompt_tokens == 1024 and method.params["max_tokens"] == 1024 - 32
    steps = [Step(index=i, agent=["Planner", "Coder"][i % 2], content=f"step {i} " + "code text " * 200)
             for i in range(8)]
    trajectory = Trajectory(id="small-window", task="fix it", steps=steps)
    try:  # the random model answers gibberish; what matters is that it was asked
        verdict = method.locate(trajectory)
    except AnswerError as exc:
        assert exc.raw is not None
    else:
        assert verdict.raw is not None


def test_a_template_that_opens_the_reasoning_gives_answers_that_begin_with_it(tiny_model_dir: str, tmp_path) -> None:
    """A chat template that writes "<think>" into the generation prompt (R1's distills): the text generated lacked
    it, so every verdict of such a model was flagged missing_think, never strict, its reasoning lost."""
    import shutil

    import transformers
    from agentracer.tracer.answer_format import template_answer_start

    folder = tmp_path / "r1-style"
    shutil.copytree(tiny_model_dir, folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = CHATML.replace("assistant\n{% endif %}", "assistant\n<think>\n{% endif %}")
    tokenizer.save_pretrained(folder)
    assert template_answer_start(tokenizer) == "<think>\n"
    opened = load_model(f"hf:{folder}", max_new_tokens=4)
    assert opened.complete(_messages("Which agent failed?"), max_tokens=3).text.startswith("<think>\n")
    plain = load_model(f"hf:{tiny_model_dir}", max_new_tokens=4)
    assert plain.answer_start == "" and not plain.complete(_messages("Which agent failed?"), max_tokens=3
                                                            ).text.startswith("<think>")


def test_a_seeded_sample_is_the_same_alone_or_batched(model) -> None:
    """The seed was set once per batch, and a batch's rows draw from one random stream: the same request with the
    same seed sampled differently depending on what it was batched with."""
    params = {"temperature": 1.0, "seed": 7, "max_tokens": 6}
    asked = _messages("Which agent failed?")
    alone = model.complete(asked, **params)
    batched = asyncio.run(model.abatch([_messages("Step 0 was fine."), asked, _messages("def add(a, b):")], **params))
    assert [r.text for r in batched] == [model.complete(m, **params).text for m in
                                         (_messages("Step 0 was fine."), asked, _messages("def add(a, b):"))]
    assert batched[1].text == alone.text and batched[1].usage == alone.usage
