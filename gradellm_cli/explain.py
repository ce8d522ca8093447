"""The explain pipeline: prompt -> targets -> every requested method -> heatmap records.

Targets are decided once per input, independently of the method, so every method explains the same
thing: for classification the label word the model predicts among the task's label words (or the
gold label, or a given word); for generation every greedily generated token. All steps of one
generation are then explained from one forward pass over prompt plus generated tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from . import __version__
from .errors import BadInput
from .methods import MethodOptions, Targets, get_method
from .models import DEFAULT_MODEL, input_device, load_model, load_tokenizer, pick_device, resolve_model
from .prompts import Prompt, Task, build_prompt, get_task, label_token_ids
from .records import heatmap_record


@dataclass
class ExplainSettings:
    """Everything that decides what is explained and how; written into each record's ``config``."""

    task: str = "sentiment"
    target: str = "predicted"  # predicted | gold | a word
    max_new_tokens: int = 20
    methods: list[str] = field(default_factory=lambda: ["grad-ellm"])
    options: MethodOptions = field(default_factory=MethodOptions)


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

    def prepare(self, record_id: str, values: dict[str, str], settings: ExplainSettings, label: str | None = None) -> Prepared:
        """Build the prompt and decide the targets of one input."""
        task = get_task(settings.task)
        try:
            prompt = build_prompt(task, self.tokenizer, values, self.context_length)
            if task.is_classification:
                return self._classification(record_id, task, prompt, settings, label)
            return self._generation(record_id, prompt, settings, label)
        except BadInput as exc:
            exc.record = exc.record or record_id
            raise

    def explain(self, record_id: str, values: dict[str, str], settings: ExplainSettings, label: str | None = None) -> list[dict[str, Any]]:
        """Heatmap records of one input for every method and step."""
        prepared = self.prepare(record_id, values, settings, label)
        records = []
        for name in settings.methods:
            records.extend(self.run_method(prepared, name, settings))
        return records

    def run_method(self, prepared: Prepared, name: str, settings: ExplainSettings) -> list[dict[str, Any]]:
        method = get_method(name)
        options = settings.options
        options.record_id = prepared.record_id
        started = time.perf_counter()
        scores = method.attribute(self.model, prepared.targets, options)
        seconds = (time.perf_counter() - started) / prepared.targets.steps
        if not torch.isfinite(scores).all():
            raise BadInput(f"method {name} produced NaN or infinite scores", record=prepared.record_id)
        config = self.method_config(settings, name)
        return [self._record(prepared, name, config, step, scores[step], seconds) for step in range(prepared.targets.steps)]

    # -- targets ---------------------------------------------------------------------------------

    @torch.no_grad()
    def _logits_at(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Plain forward pass; the float32 logits at ``positions`` (S, vocab)."""
        keep = input_ids.numel() - int(positions.min())
        logits = self.model(input_ids[None].to(self.input_device), use_cache=False, logits_to_keep=keep).logits[0]
        return logits[(positions - int(positions.min())).to(logits.device)].float().cpu()

    def _classification(self, record_id: str, task: Task, prompt: Prompt, settings: ExplainSettings, label: str | None) -> Prepared:
        label_ids = label_token_ids(task, self.tokenizer, prompt)
        last = torch.tensor([prompt.input_ids.numel() - 1])
        logits = self._logits_at(prompt.input_ids, last)[0]
        if settings.target == "predicted":
            target = label_ids[int(logits[label_ids].argmax())]
        elif settings.target == "gold":
            target = label_ids[self._gold_index(task, label)]
        else:
            target = label_token_ids(task, self.tokenizer, prompt, (settings.target,))[0]
        return self._prepared(record_id, prompt, last, torch.tensor([target]), logits[None], label, list(task.label_words), label_ids)

    @staticmethod
    def _gold_index(task: Task, label: str | None) -> int:
        if label is None:
            raise BadInput("--target gold needs a label field in the record")
        normalised = str(label).strip().lower()
        choices = [value.lower() for value in task.labels]
        if normalised not in choices:
            raise BadInput(f"label {label!r} is not one of {', '.join(task.labels)}")
        return choices.index(normalised)

    def _generation(self, record_id: str, prompt: Prompt, settings: ExplainSettings, label: str | None) -> Prepared:
        if settings.max_new_tokens < 1:
            raise BadInput("--max-new-tokens must be at least 1")
        length = prompt.input_ids.numel()
        if self.context_length and length + settings.max_new_tokens > self.context_length:
            raise BadInput(
                f"prompt of {length} tokens plus {settings.max_new_tokens} new tokens exceeds the context of {self.context_length}"
            )
        generated = self._greedy(prompt.input_ids, settings.max_new_tokens)
        if settings.target not in ("predicted",):
            raise BadInput("generation tasks explain the generated tokens: use --target predicted")
        full = torch.cat([prompt.input_ids, generated])
        positions = torch.arange(length - 1, length - 1 + generated.numel())
        logits = self._logits_at(full, positions)
        prompt.input_ids, prompt.source_mask = full, torch.cat([prompt.source_mask, torch.zeros(generated.numel(), dtype=torch.bool)])
        return self._prepared(record_id, prompt, positions, generated, logits, label, None, None)

    @torch.no_grad()
    def _greedy(self, input_ids: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        """Greedy decoding with transformers' generate; stops after the end-of-sequence token."""
        ids = input_ids[None].to(self.input_device)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
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

    def _prepared(self, record_id, prompt, positions, target_ids, logits, label, label_words, label_ids) -> Prepared:
        log_probs = torch.log_softmax(logits, dim=-1)
        rows = torch.arange(target_ids.numel())
        targets = Targets(prompt.input_ids, positions, target_ids, prompt.source_mask)
        return Prepared(
            record_id=record_id,
            prompt=prompt,
            targets=targets,
            target_logits=logits[rows, target_ids].tolist(),
            target_probs=log_probs[rows, target_ids].exp().tolist(),
            label=label,
            label_words=label_words,
            label_ids=label_ids,
        )

    # -- records ---------------------------------------------------------------------------------

    def method_config(self, settings: ExplainSettings, name: str) -> dict[str, Any]:
        """The ``config`` of this method's records: every option that changes its numbers."""
        return self._config(settings) | get_method(name).config(settings.options)

    def _config(self, settings: ExplainSettings) -> dict[str, Any]:
        return {
            "task": settings.task,
            "target": settings.target,
            "max_new_tokens": settings.max_new_tokens if not get_task(settings.task).is_classification else None,
            "dtype": self.dtype,
            "device": self.device,
            "gradellm_version": __version__,
        }

    def _record(self, prepared: Prepared, method: str, config: dict, step: int, scores: torch.Tensor, seconds: float) -> dict:
        targets = prepared.targets
        end = int(targets.positions[step]) + 1
        ids = targets.input_ids[:end].tolist()
        target_id = int(targets.target_ids[step])
        return heatmap_record(
            record_id=prepared.record_id,
            model=self.model_name,
            method=method,
            config=config,
            task=config["task"],
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
        )
