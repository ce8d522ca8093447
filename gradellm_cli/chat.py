"""Chats: a list of ``{"role", "content"}`` messages as a prompt, with the chosen roles' content as source.

The messages are rendered with the model's chat template and a generation prompt (the header of
the assistant's turn). Where the model has no template (Gemma-3 base), a plain-text fallback writes
each message as ``Role:``, a newline and the content, blank lines between, and ends with ``Assistant:``
and a newline (a newline, unlike a space, never merges with the text after it into one token).
If the last message is the assistant's, its content is the continuation to explain and the messages
before it are the prompt; otherwise the model generates the reply.

Which tokens are which, as for task prompts (:mod:`.prompts`): each message's content is rendered as
a unique placeholder first, so after rendering the characters of every content are known exactly.
Tokens inside a content belong to that message (``message_index``); template tokens get -1. Tokens of
the messages whose role is in ``source_roles`` are the source (attributed and perturbed), except
special tokens typed into a content. A template that trims content (``| trim``) gets trimmed content.
"""

from __future__ import annotations

from typing import Any

import torch

from .errors import BadInput
from .prompts import Prompt, _template_trims, check_length, fill_slots, placeholder, tokenise_spans
from .settings import DEFAULT_SOURCE_ROLES  # noqa: F401 - re-exported

ROLES = ("system", "user", "assistant", "tool")
FALLBACK_REPLY = "Assistant:\n"  # the plain-text fallback's generation prompt


def parse_source_roles(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``user``, ``system,user`` or ``all`` -> the roles whose content is the source (checked)."""
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [part.strip().lower() for part in parts if part.strip()]
    if names == ["all"]:
        return ROLES
    unknown = [name for name in names if name not in ROLES]
    if unknown or not names:
        raise BadInput(f"`source_roles` {unknown[0] if unknown else spec!r}: use all, or roles among {', '.join(ROLES)}")
    return tuple(dict.fromkeys(names))


def check_messages(messages: Any) -> list[dict[str, str]]:
    """The messages as plain ``{"role", "content"}`` dicts; BadInput naming what is wrong."""
    if not isinstance(messages, list) or not messages:
        raise BadInput("messages must be a non-empty list of {role, content} objects")
    out = []
    for number, message in enumerate(messages, 1):
        if not isinstance(message, dict):
            raise BadInput(f"message {number} is not an object with role and content")
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str):
            raise BadInput(f"message {number} has no role")
        if role not in ROLES:
            raise BadInput(f"message {number} has the unknown role {role!r}: use {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise BadInput(f"message {number} has no text content")
        out.append({"role": role, "content": content})
    return out


def split_reply(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], str | None]:
    """(the prompt's messages, the assistant reply to explain or None when the model is to generate it)."""
    if messages[-1]["role"] == "assistant":
        if len(messages) == 1:
            raise BadInput("a chat needs a message before the assistant's reply")
        return messages[:-1], messages[-1]["content"]
    return messages, None


def check_chat(messages: Any, source_roles: tuple[str, ...]) -> None:
    """The checks of a chat that need no model (structure, roles, a source message before the reply)."""
    context, _ = split_reply(check_messages(messages))
    _need_source(context, source_roles)


def _need_source(messages: list[dict[str, str]], source_roles: tuple[str, ...]) -> None:
    if not any(message["role"] in source_roles for message in messages):
        raise BadInput(f"no message before the reply has a source role ({', '.join(source_roles)}); see `source_roles`")


def build_chat_prompt(
    tokenizer, messages: list[dict[str, str]], source_roles: tuple[str, ...], max_tokens: int | None = None
) -> Prompt:
    """Render ``messages`` (the prompt part of a chat) with a generation prompt, tokenise and flag them."""
    _need_source(messages, source_roles)
    slots = [placeholder(i, "MESSAGE") for i in range(len(messages))]
    rendered, chat = _render(tokenizer, messages, slots)
    contents = [message["content"] for message in messages]
    if chat and _template_trims(tokenizer):
        contents = [content.strip() for content in contents]
    for i, slot in enumerate(slots):
        if rendered.count(slot) != 1:
            raise BadInput(f"the model's chat template does not show message {i + 1} ({messages[i]['role']}) as it is")
    text, spans = fill_slots(rendered, list(zip(slots, contents)))
    ids, inside, special = tokenise_spans(tokenizer, text, spans, bos=not chat)
    check_length(len(ids), max_tokens)
    source = [k >= 0 and messages[k]["role"] in source_roles and not s for k, s in zip(inside, special)]
    if not any(source):
        raise BadInput(f"the source messages ({', '.join(source_roles)}) hold no text")
    return Prompt(
        text=text,
        input_ids=torch.tensor(ids, dtype=torch.long),
        source_mask=torch.tensor(source, dtype=torch.bool),
        chat=chat,
        label_prefix="",
        message_index=torch.tensor(inside, dtype=torch.long),
        roles=[message["role"] for message in messages],
    )


def _render(tokenizer, messages: list[dict[str, str]], slots: list[str]) -> tuple[str, bool]:
    """The prompt text with placeholders for the contents, and whether a chat template made it."""
    templated = [{"role": message["role"], "content": slot} for message, slot in zip(messages, slots)]
    if getattr(tokenizer, "chat_template", None):
        try:
            return tokenizer.apply_chat_template(templated, tokenize=False, add_generation_prompt=True), True
        except Exception as exc:  # noqa: BLE001 - jinja2's TemplateError and whatever a template raises
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BadInput(f"the model's chat template rejects these messages: {reason}") from None
    blocks = [f"{message['role'].capitalize()}:\n{slot}" for message, slot in zip(messages, slots)]
    return "\n\n".join(blocks) + "\n\n" + FALLBACK_REPLY, False
