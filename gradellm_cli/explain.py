"""The explain pipeline: prompt -> targets -> every requested method -> heatmap records.

Targets are decided once per input, independently of the method, so every method explains the same
thing: for classification the label word the model predicts among the task's label words (or the
gold label, or a given word); for generation every token of a given continuation (teacher forcing)
or, without one, every greedily generated token. One forward pass over the whole sequence (prompt
plus continuation) gives every target's logit and fills a key/value cache
(:mod:`gradellm_cli.prefill`) that methods may reuse: Grad-ELLM then only runs the target rows.

Inputs are task fields (``values``, rendered with a task template), or a chat (``messages``, see
:mod:`gradellm_cli.chat`), optionally with a ``continuation``. The continuation is tokenised on its
own and appended to the prompt's tokens: no token spans the boundary, and every template ends where
a reply starts (a chat header ends with a newline; so does the plain-text fallback's ``Assistant:``),
which is also where a model's own reply starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import BadInput
from .lazy import LazyModule
from .models import DEFAULT_MODEL, input_device, load_model, load_tokenizer, pick_device, resolve_model
from .schema import heatmap_record
from .settings import ExplainSettings, MethodOptions  # noqa: F401 - re-exported: the settings of this pipeline

if TYPE_CHECKING:
    from .methods import Targets
    from .prefill import PrefixCache
    from .prompts import Prompt, Task

# imported when an Explainer first needs them, so that `gradellm_cli.Explainer` loads no torch
torch = LazyModule("torch")
chat = LazyModule(".chat", __package__)
methods = LazyModule(".methods", __package__)
prefill = LazyModule(".prefill", __package__)
prompts = LazyModule(".prompts", __package__)
row_pass = LazyModule(".row_pass", __package__)

GENERATED, GIVEN, LABEL = "generated", "given", "label"  # where a record's target came from (``target_source``)


@dataclass
class Prepared:
    """One input, ready for the methods: its prompt, targets and the model's view of each target."""

    record_id: str
    prompt: Prompt
    targets: Targets
    target_logits: list[float]
    target_probs: list[float]
    label: str | None
    label_words: list[str] | None
    label_ids: list[int] | None
    task: str = "sentiment"
    target_source: str = LABEL


class Explainer:
    """Holds one loaded model and explains inputs with it (the Python API behind ``gradellm explain``)."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        dtype: str = "float32",
        trust_remote_code: bool = False,
        attn_implementation: str | None = None,
    ):
        self.source = resolve_model(model)
        self.device = pick_device(device)
        self.dtype = dtype
        self.tokenizer = load_tokenizer(self.source, trust_remote_code)
        self.model = load_model(self.source, self.device, dtype, attn_implementation, trust_remote_code)
        self.input_device = input_device(self.model)  # self.device may be a device map (map:auto)
        config = self.model.config.get_text_config()
        self.context_length = int(getattr(config, "max_position_embeddings", 0) or 0) or None

    @property
    def model_name(self) -> str:
        return self.source.name

    def prepare(
        self,
        record_id: str,
        values: dict[str, str] | None,
        settings: ExplainSettings,
        label: str | None = None,
        *,
        continuation: str | None = None,
        messages: list[dict[str, str]] | None = None,
    ) -> Prepared:
        """Build the prompt and decide the targets of one input (task fields or a chat)."""
        try:
            if messages is not None:
                return self._chat(record_id, messages, continuation, settings)
            task = prompts.get_task(settings.task_for(continuation=continuation is not None))
            if continuation is not None and task.is_classification:
                raise BadInput(f"a continuation needs a generation task (generate or raw), not {task.name}")
            prompt = prompts.build_prompt(task, self.tokenizer, values or {}, self.context_length)
            if task.is_classification:
                return self._classification(record_id, task, prompt, settings, label)
            return self._generation(record_id, task.name, prompt, settings, label, continuation)
        except BadInput as exc:
            exc.record = exc.record or record_id
            raise

    def explain(
        self,
        record_id: str,
        values: dict[str, str] | None,
        settings: ExplainSettings,
        label: str | None = None,
        *,
        continuation: str | None = None,
        messages: list[dict[str, str]] | None = None,
    ) -> list[dict[str, Any]]:
        """Heatmap records of one input for every method and step."""
        prepared = self.prepare(record_id, values, settings, label, continuation=continuation, messages=messages)
        records = []
        for name in settings.methods:
            records.extend(self.run_method(prepared, name, settings))
        return records

    def run_method(self, prepared: Prepared, name: str, settings: ExplainSettings) -> list[dict[str, Any]]:
        method = methods.get_method(name)
        options = settings.options
        started = time.perf_counter()
        result = method.attribute_with_details(self.model, prepared.targets, options)
        seconds = (time.perf_counter() - started) / prepared.targets.steps
        scores = result.scores
        if name == "grad-ellm":  # the only method that reuses the pipeline's cache: let it go
            prepared.targets.prefix = None
        if not torch.isfinite(scores).all():
            raise BadInput(f"method {name} produced NaN or infinite scores", record=prepared.record_id)
        config = self.method_config(settings, name, prepared.task, prepared.target_source)
        records = [self._record(prepared, name, config, step, scores[step], seconds) for step in range(prepared.targets.steps)]
        for record, extra in zip(records, result.details):
            record["details"] = extra
        return records

    # -- targets ---------------------------------------------------------------------------------

    def _forward(
        self, input_ids: torch.Tensor, positions: torch.Tensor, settings: ExplainSettings
    ) -> tuple[PrefixCache | None, torch.Tensor]:
        """One no-grad pass over ``input_ids``: the float32 logits at ``positions`` (S, vocab), and the cache
        it filled when Grad-ELLM's rows path will reuse it (None otherwise: it is not kept).

        Models whose layers the rows path does not know get a plain forward pass instead.
        """
        if row_pass.layer_kinds(self.model.config) is None:
            return None, self._plain_logits(input_ids, positions)
        # the same pass whatever the methods, so the targets and their probabilities never depend on them
        prefix, logits = prefill.fill_cache(self.model, input_ids, positions)
        wanted = "grad-ellm" in settings.methods and settings.options.grad_path == "rows"
        return (prefix if wanted else None), logits

    def _plain_logits(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        keep = input_ids.numel() - int(positions.min())
        with torch.no_grad():
            logits = self.model(input_ids[None].to(self.input_device), use_cache=False, logits_to_keep=keep).logits[0]
        return logits[(positions - int(positions.min())).to(logits.device)].float().cpu()

    def _classification(self, record_id: str, task: Task, prompt: Prompt, settings: ExplainSettings, label: str | None) -> Prepared:
        label_ids = prompts.label_token_ids(task, self.tokenizer, prompt)
        last = torch.tensor([prompt.input_ids.numel() - 1])
        contrast = self._classification_contrast(task, prompt, settings)  # before the forward pass: a bad word costs nothing
        prefix, logits = self._forward(prompt.input_ids, last, settings)
        if settings.target == "predicted":
            target = label_ids[int(logits[0, label_ids].argmax())]
        elif settings.target == "gold":
            target = label_ids[self._gold_index(task, label)]
        else:
            target = prompts.label_token_ids(task, self.tokenizer, prompt, (settings.target,))[0]
        if contrast is not None and int(contrast[0]) == target:
            raise BadInput(f"`contrast` {settings.contrast!r} is the target itself; the explained difference would be 0")
        return self._prepared(record_id, task.name, prompt, last, torch.tensor([target]), logits, prefix, contrast, LABEL, label,
                              list(task.label_words), label_ids)

    def _classification_contrast(self, task: Task, prompt: Prompt, settings: ExplainSettings) -> torch.Tensor | None:
        """The contrast word as the next token, tokenised like the label words."""
        if settings.contrast is None:
            return None
        return torch.tensor(prompts.label_token_ids(task, self.tokenizer, prompt, (settings.contrast,), what="`contrast`"))

    @staticmethod
    def _gold_index(task: Task, label: str | None) -> int:
        if label is None:
            raise BadInput("`target` gold needs a label field in the record")
        normalised = str(label).strip().lower()
        choices = [value.lower() for value in task.labels]
        if normalised not in choices:
            raise BadInput(f"label {label!r} is not one of {', '.join(task.labels)}")
        return choices.index(normalised)

    def _chat(self, record_id: str, messages: Any, continuation: str | None, settings: ExplainSettings) -> Prepared:
        checked = chat.check_messages(messages)
        context, reply = chat.split_reply(checked)
        if reply is not None and continuation is not None:
            raise BadInput("a chat ending with an assistant message already has its continuation; give one or the other")
        prompt = chat.build_chat_prompt(self.tokenizer, context, settings.source_roles, self.context_length)
        return self._generation(record_id, "chat", prompt, settings, None, reply if reply is not None else continuation)

    def _generation(
        self, record_id: str, task: str, prompt: Prompt, settings: ExplainSettings, label: str | None, continuation: str | None
    ) -> Prepared:
        if settings.target not in ("predicted",):
            raise BadInput("generation tasks explain the generated (or given) tokens: use `target` predicted")
        length = prompt.input_ids.numel()
        if continuation is not None:
            generated, source = self.continuation_ids(continuation), GIVEN
            self._check_context(length, generated.numel(), "continuation tokens")
            contrast = self._contrast_ids(settings, generated)
        else:
            if settings.max_new_tokens < 1:
                raise BadInput("`max_new_tokens` must be at least 1")
            self._check_context(length, settings.max_new_tokens, "new tokens")
            self._contrast_ids(settings, None)  # a bad contrast is reported before generating
            generated, source = self._greedy(prompt.input_ids, settings.max_new_tokens), GENERATED
            contrast = self._contrast_ids(settings, generated)
        full = torch.cat([prompt.input_ids, generated])
        positions = torch.arange(length - 1, length - 1 + generated.numel())
        prefix, logits = self._forward(full, positions, settings)
        prompt.input_ids = full
        prompt.source_mask = torch.cat([prompt.source_mask, torch.zeros(generated.numel(), dtype=torch.bool)])
        if prompt.message_index is not None:  # the reply is one more message, after the prompt's
            reply_index = len(prompt.roles or [])
            prompt.message_index = torch.cat([prompt.message_index, torch.full((generated.numel(),), reply_index, dtype=torch.long)])
            prompt.roles = [*(prompt.roles or []), "assistant"]
        return self._prepared(record_id, task, prompt, positions, generated, logits, prefix, contrast, source, label, None, None)

    def continuation_ids(self, continuation: str) -> torch.Tensor:
        """The token ids of a given continuation, tokenised on its own (see the module doc)."""
        if not isinstance(continuation, str):
            raise BadInput(f"the continuation is not text but {type(continuation).__name__}")
        if not continuation:
            raise BadInput("the continuation is empty")
        ids = prompts.text_ids(self.tokenizer, continuation)
        if not ids:
            raise BadInput("the continuation tokenises to no tokens")
        return torch.tensor(ids, dtype=torch.long)

    def _check_context(self, prompt_length: int, extra: int, what: str) -> None:
        if self.context_length and prompt_length + extra > self.context_length:
            raise BadInput(f"prompt of {prompt_length} tokens plus {extra} {what} exceeds the context of {self.context_length}")

    def _contrast_ids(self, settings: ExplainSettings, targets: torch.Tensor | None) -> torch.Tensor | None:
        """The contrast token of each step: one token for every step, or a text of exactly as many tokens.

        ``targets`` None checks the contrast alone (before a generation, whose length is not known yet).
        """
        if settings.contrast is None:
            return None
        ids = prompts.text_ids(self.tokenizer, settings.contrast)
        if not ids:
            raise BadInput("`contrast` is empty")
        if targets is None:
            if len(ids) != 1:
                raise BadInput(
                    f"`contrast` {settings.contrast!r} is {len(ids)} tokens: a contrast of several tokens needs a given continuation"
                )
            return None
        if len(ids) == 1:
            contrast = torch.full_like(targets, ids[0])
        elif len(ids) == targets.numel():
            contrast = torch.tensor(ids, dtype=torch.long)
        else:
            raise BadInput(
                f"`contrast` is {len(ids)} tokens and the continuation {targets.numel()}: give one token, or as many as the continuation"
            )
        if torch.equal(contrast, targets):
            raise BadInput("`contrast` equals the target at every step; the explained difference would be 0")
        return contrast

    def _greedy(self, input_ids: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        """Greedy decoding with transformers' generate; stops after the end-of-sequence token."""
        ids = input_ids[None].to(self.input_device)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.no_grad():
            out = self.model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=pad,
            )
        generated = out[0, ids.shape[1]:].cpu()
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        for index, token in enumerate(generated.tolist()):
            if token in eos_ids:
                return generated[: index + 1]
        return generated

    def _prepared(
        self, record_id, task, prompt, positions, target_ids, logits, prefix, contrast, source, label, label_words, label_ids
    ) -> Prepared:
        log_probs = torch.log_softmax(logits, dim=-1)
        rows = torch.arange(target_ids.numel())
        target_logits = logits[rows, target_ids]
        targets = methods.Targets(
            prompt.input_ids, positions, target_ids, prompt.source_mask, contrast_ids=contrast, prefix=prefix,
            target_logits=target_logits, tokenizer=self.tokenizer, record_id=record_id,
        )
        return Prepared(
            record_id=record_id,
            prompt=prompt,
            targets=targets,
            target_logits=target_logits.tolist(),
            target_probs=log_probs[rows, target_ids].exp().tolist(),
            label=label,
            label_words=label_words,
            label_ids=label_ids,
            task=task,
            target_source=source,
        )

    # -- records ---------------------------------------------------------------------------------

    def method_config(
        self, settings: ExplainSettings, name: str, task: str | None = None, target_source: str | None = None
    ) -> dict[str, Any]:
        """The ``config`` of this method's records: every option that changes its numbers.

        ``task`` and ``target_source`` are the input's (they differ between inputs of one run: a chat,
        a given continuation); by default those of an input with neither.
        """
        return self._config(settings, task or settings.task_for(), target_source) | methods.get_method(name).config(settings.options)

    def _config(self, settings: ExplainSettings, task: str, target_source: str | None) -> dict[str, Any]:
        generated = not prompts.get_task(task).is_classification and target_source != GIVEN
        config = {
            "task": task,
            "target": settings.target,
            "max_new_tokens": settings.max_new_tokens if generated else None,
            "dtype": self.dtype,
            "device": self.device,
            "gradellm_version": __version__,
        }
        if settings.contrast is not None:
            config["contrast"] = settings.contrast
        if task == "chat":
            config["source_roles"] = list(settings.source_roles)
        return config

    def _record(self, prepared: Prepared, method: str, config: dict, step: int, scores: torch.Tensor, seconds: float) -> dict:
        targets = prepared.targets
        end = int(targets.positions[step]) + 1
        ids = targets.input_ids[:end].tolist()
        target_id = int(targets.target_ids[step])
        contrast_id = None if targets.contrast_ids is None else int(targets.contrast_ids[step])
        prompt = prepared.prompt
        return heatmap_record(
            record_id=prepared.record_id,
            model=self.model_name,
            method=method,
            config=config,
            task=prepared.task,
            step=step,
            steps=targets.steps,
            prompt_length=int(targets.positions[0]) + 1,
            input_ids=ids,
            tokens=self.tokenizer.batch_decode([[i] for i in ids]),
            source_mask=targets.source_mask[:end].tolist(),
            target_id=target_id,
            target_token=self.tokenizer.decode([target_id]),
            target_logit=prepared.target_logits[step],
            target_prob=prepared.target_probs[step],
            scores=scores[:end].tolist(),
            seconds=seconds,
            label=prepared.label,
            label_words=prepared.label_words,
            label_ids=prepared.label_ids,
            target_source=prepared.target_source,
            contrast_id=contrast_id,
            contrast_token=None if contrast_id is None else self.tokenizer.decode([contrast_id]),
            message_index=None if prompt.message_index is None else prompt.message_index[:end].tolist(),
            message_roles=prompt.roles,
        )
