"""Prompts are the ones the model's own chat template makes, token for token, with the user's text flagged."""

from __future__ import annotations

import copy

import pytest

from gradellm_cli.prompts import TASKS, build_prompt

TEXT = "  A great film, truly.  \n"


def _template_ids(tokenizer, task, values: dict[str, str]) -> list[int]:
    """What the chat template itself makes of the task's messages, tokenised."""
    messages = [{"role": "system", "content": task.system}] if task.system else []
    messages.append({"role": "user", "content": task.user.format(**values)})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.fixture(scope="module")
def trimming(smollm2):
    """SmolLM2's tokenizer with a chat template that trims each message's content, as Gemma-IT's does."""
    tokenizer = copy.deepcopy(smollm2.tokenizer)
    assert "message['content']" in tokenizer.chat_template
    tokenizer.chat_template = tokenizer.chat_template.replace("message['content']", "(message['content'] | trim)")
    return tokenizer


@pytest.mark.parametrize("task", ["sentiment", "generate"])
def test_a_trimming_chat_template_gets_its_own_prompt(trimming, task):
    prompt = build_prompt(TASKS[task], trimming, {"text": TEXT})
    assert prompt.input_ids.tolist() == _template_ids(trimming, TASKS[task], {"text": TEXT})
    source = trimming.decode(prompt.input_ids[prompt.source_mask])
    assert source.strip() == TEXT.strip() and not source.endswith((" ", "\n"))


def test_a_template_that_keeps_whitespace_keeps_it(smollm2):
    tokenizer = smollm2.tokenizer
    prompt = build_prompt(TASKS["sentiment"], tokenizer, {"text": TEXT})
    assert prompt.input_ids.tolist() == _template_ids(tokenizer, TASKS["sentiment"], {"text": TEXT})
    assert tokenizer.decode(prompt.input_ids[prompt.source_mask]).endswith("\n")


def test_a_template_decides_bos_and_the_label_follows_its_last_character(explainer):
    """A chat template writes BOS itself or not at all (Gemma's tokenizer would add one by default); a
    generation prompt that ends in "ASSISTANT:" is followed by " Positive", as after the fallback's
    "Answer:", and one that ends in a newline by "Positive"."""
    tokenizer = copy.deepcopy(explainer.tokenizer)
    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}ASSISTANT:"
    task = TASKS["sentiment"]
    prompt = build_prompt(task, tokenizer, {"text": "Fine."})
    assert prompt.chat and prompt.input_ids.tolist() == _template_ids(tokenizer, task, {"text": "Fine."})
    assert prompt.label_prefix == " "
    tokenizer.chat_template += "{{ '\\n' }}"  # a template's own last newline Jinja drops
    assert build_prompt(task, tokenizer, {"text": "Fine."}).label_prefix == ""
