"""Task templates (the paper's Table 3) and the token-level source mask.

A prompt is rendered through the model's chat template when it has one, and through a plain-text
fallback otherwise (Gemma-3 base has none). User-supplied fields are rendered as unique placeholders
first, so that after rendering we know exactly which characters are the user's text (the *source*)
and which are template; the tokenizer's character offsets then give a source flag per token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import BadInput, NotFound

SENTIMENT_SYSTEM = (
    "You are a helpful sentiment classifier. Please help to do the sentiment classification of the given "
    "text and respond ONLY with the single word Positive or Negative."
)
BOOLQ_SYSTEM = (
    "You are a factual question answering system. Determine if the given passage supports the question "
    "being true. Respond ONLY with the single word 'true' or 'false' in lowercase, without any punctuation "
    "or additional text."
)


@dataclass(frozen=True)
class Task:
    """A prompt template: system text, user content with ``{field}`` slots, and label words if any."""

    name: str
    fields: tuple[str, ...]
    user: str
    system: str | None = None
    label_words: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()  # dataset label values, in the order of label_words

    @property
    def is_classification(self) -> bool:
        return bool(self.label_words)


TASKS: dict[str, Task] = {
    "sentiment": Task(
        "sentiment",
        ("text",),
        "Text: {text}",
        SENTIMENT_SYSTEM,
        ("Positive", "Negative"),
        ("positive", "negative"),
    ),
    "boolq": Task(
        "boolq",
        ("passage", "question"),
        "Passage: {passage}\n\nQuestion: {question}",
        BOOLQ_SYSTEM,
        ("true", "false"),
        ("true", "false"),
    ),
    "generate": Task("generate", ("text",), "{text}"),
    "raw": Task("raw", ("text",), "{text}"),
    # a list of messages rendered with the model's chat template (:mod:`gradellm_cli.chat`), no fields
    "chat": Task("chat", (), ""),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise NotFound(f"unknown task {name!r}: use one of {', '.join(TASKS)}")
    return TASKS[name]


@dataclass
class Prompt:
    """A tokenised prompt with one source flag per token."""

    text: str
    input_ids: torch.Tensor  # (T,) long
    source_mask: torch.Tensor  # (T,) bool
    chat: bool  # rendered through a chat template
    label_prefix: str  # what precedes a label word as the next token ("" after a chat header)
    message_index: torch.Tensor | None = None  # (T,) long, chats only: the message each token's text is in, -1 for template
    roles: list[str] | None = None  # chats only: the role of each message


def _placeholder(i: int) -> str:
    return placeholder(i)


def placeholder(i: int, kind: str = "FIELD") -> str:
    """A marker no user text contains, rendered in place of user text and replaced afterwards."""
    return f"\u2063GRADELLM_{kind}_{i}\u2063"


def _render(task: Task, tokenizer, values: dict[str, str]) -> tuple[str, bool]:
    """Render the template with placeholders in place of the user fields."""
    slots = {name: _placeholder(i) for i, name in enumerate(task.fields)}
    user = task.user.format(**slots)
    if task.name == "raw":
        return user, False
    if getattr(tokenizer, "chat_template", None):
        messages = ([{"role": "system", "content": task.system}] if task.system else []) + [
            {"role": "user", "content": user}
        ]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text, True
    parts = [task.system, user] if task.system else [user]
    text = "\n\n".join(parts)
    if task.is_classification:
        text += "\nAnswer:"
    return text, False


def build_prompt(task: Task, tokenizer, values: dict[str, str], max_tokens: int | None = None) -> Prompt:
    """Render, tokenise and flag the source tokens of one input."""
    if task.name == "chat":
        raise BadInput("the chat task takes a list of messages (a messages field), not text")
    for name in task.fields:
        value = values.get(name)
        if not isinstance(value, str) or not value.strip():
            raise BadInput(f"field {name!r} is empty or missing")
    rendered, chat = _render(task, tokenizer, values)
    if chat and _template_trims(tokenizer):
        values = _trimmed_edges(task, values)
    text, spans = _fill(rendered, task.fields, values)
    ids, source = _tokenise(tokenizer, text, spans, bos=not chat)
    check_length(len(ids), max_tokens)
    return Prompt(
        text=text,
        input_ids=torch.tensor(ids, dtype=torch.long),
        source_mask=torch.tensor(source, dtype=torch.bool),
        chat=chat,
        # the label word as the next token: " Positive" after "Answer:" (or a template's "[/INST]"),
        # "Positive" at the start of a line (after "<|im_start|>assistant\n")
        label_prefix="" if text[-1:].isspace() else " ",
    )


def check_length(tokens: int, max_tokens: int | None) -> None:
    """A prompt longer than the model's context is bad input (None: no known limit)."""
    if max_tokens is not None and tokens > max_tokens:
        raise BadInput(f"input is {tokens} tokens, longer than the model's context of {max_tokens}")


_TRIMS: dict[str, bool] = {}  # by chat template: trimming is the template's, whatever the tokenizer
_PROBE = "\u2063GRADELLM_PROBE\u2063"


def _template_trims(tokenizer) -> bool:
    """Whether the chat template trims a message's content (``| trim``, as Gemma's instruction models
    do): the user's text must then lose the whitespace at the message's edges too, or our prompt would
    not be the one the model's own template makes."""
    key = str(tokenizer.chat_template)
    if key not in _TRIMS:
        try:
            text = tokenizer.apply_chat_template([{"role": "user", "content": f" {_PROBE} "}], tokenize=False, add_generation_prompt=True)
            _TRIMS[key] = _PROBE in text and f" {_PROBE} " not in text
        except Exception:  # a template that wants other messages: assume it keeps the content as it is
            _TRIMS[key] = False
    return _TRIMS[key]


def _trimmed_edges(task: Task, values: dict[str, str]) -> dict[str, str]:
    """The values with the whitespace a trimming template removes: before a field that opens the user
    message and after one that closes it."""
    out = dict(values)
    for name in task.fields:
        if task.user.startswith(f"{{{name}}}"):
            out[name] = out[name].lstrip()
        if task.user.endswith(f"{{{name}}}"):
            out[name] = out[name].rstrip()
    return out


def fill_slots(rendered: str, slots: list[tuple[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """Replace each (placeholder, value) in ``rendered``; return the text and each value's character
    span, in the order of ``slots``."""
    order = sorted(range(len(slots)), key=lambda i: rendered.index(slots[i][0]))
    out, spans, pos, length = [], [(0, 0)] * len(slots), 0, 0
    for i in order:
        placeholder, value = slots[i]
        start = rendered.index(placeholder)
        out.append(rendered[pos:start])
        length += start - pos
        spans[i] = (length, length + len(value))
        out.append(value)
        length += len(value)
        pos = start + len(placeholder)
    out.append(rendered[pos:])
    return "".join(out), spans


def _fill(rendered: str, fields: tuple[str, ...], values: dict[str, str]) -> tuple[str, list[tuple[int, int]]]:
    """Replace the task's field placeholders with the user's text; return the text and each field's span."""
    return fill_slots(rendered, [(_placeholder(i), values[name]) for i, name in enumerate(fields)])


def tokenise_spans(tokenizer, text: str, spans: list[tuple[int, int]], bos: bool) -> tuple[list[int], list[int], list[bool]]:
    """Ids of ``text``, the index of the span each token lies in (-1: none) and which ids are special.

    ``bos``: put the tokenizer's BOS in front where it adds one by default (the plain-text fallback);
    a chat template writes its own BOS or none, as the model expects.
    """
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(encoded["input_ids"]), list(encoded["offset_mapping"])
    if bos and _adds_bos(tokenizer) and (not ids or ids[0] != tokenizer.bos_token_id):
        ids.insert(0, tokenizer.bos_token_id)
        offsets.insert(0, (0, 0))
    inside = [next((k for k, (start, end) in enumerate(spans) if s < end and e > start and e > s), -1) for s, e in offsets]
    special = set(tokenizer.all_special_ids)
    return ids, inside, [i in special for i in ids]


def _tokenise(tokenizer, text: str, spans: list[tuple[int, int]], bos: bool) -> tuple[list[int], list[bool]]:
    """Ids and source flags of ``text``: a token is source when it lies in one of ``spans``.

    A special token the user typed (say "<|im_end|>") is tokenised as one, and the method notes keep
    special tokens out of the source: neither scored for the metrics nor perturbed.
    """
    ids, inside, special = tokenise_spans(tokenizer, text, spans, bos)
    return ids, [span >= 0 and not is_special for span, is_special in zip(inside, special)]


_ANCHOR = "\n"


def text_ids(tokenizer, text: str) -> list[int]:
    """The ids of ``text`` as it continues a prompt, tokenised on its own.

    SentencePiece tokenizers with a dummy prefix (Llama-2, Mistral) would read the text as the start
    of a document and put a word-start marker in front ("Paris" -> "▁Paris"), which is not what follows
    a prompt. For those the text is tokenised after a newline anchor, whose tokens are then dropped; the
    byte-level BPE of SmolLM2 and the tokenizer of Gemma-3 add no such prefix and tokenise it as it is.
    """
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not _adds_dummy_prefix(tokenizer):
        return list(ids)
    anchor = tokenizer(_ANCHOR, add_special_tokens=False)["input_ids"]
    anchored = tokenizer(_ANCHOR + text, add_special_tokens=False)["input_ids"]
    if anchored[: len(anchor)] != anchor:  # the anchor merged with the text: keep the plain ids
        return list(ids)
    return list(anchored[len(anchor) :])


def _adds_dummy_prefix(tokenizer) -> bool:
    """Whether tokenising "a" alone gives a token that starts with SentencePiece's word marker."""
    ids = tokenizer("a", add_special_tokens=False)["input_ids"]
    return bool(ids) and str(tokenizer.convert_ids_to_tokens(ids[0])).startswith("\u2581")


def _adds_bos(tokenizer) -> bool:
    """Whether the tokenizer puts a BOS token in front by default (Gemma does, SmolLM2 does not)."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(probe) and probe[0] == bos


def label_token_ids(
    task: Task, tokenizer, prompt: Prompt, words: tuple[str, ...] | None = None, what: str = "label word"
) -> list[int]:
    """The single token id of each label word as the model's next token; error (naming it as ``what``)
    when it is not one token."""
    result = []
    for word in words or task.label_words:
        ids = tokenizer(prompt.label_prefix + word, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise BadInput(f"{what} {word!r} is {len(ids)} tokens for this model, not one")
        result.append(ids[0])
    return result
