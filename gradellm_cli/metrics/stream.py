"""A stream of heatmap records -> metric records, loading each model once.

:class:`Evaluator` keeps what a stream needs across records: the loaded models
(:class:`ModelPool`) and, for generation, the per-step results of each (id, model, method), from
which :meth:`Evaluator.finish` makes the sequence-level records (see :mod:`.sequence`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..schema import SEQUENCE_STEP, check_heatmap, is_classification, record_key
from .evaluate import evaluate_record
from .sequence import evaluated_step, sequence_record
from .settings import MetricSettings

Key = tuple[str, str, str, int]


class ModelPool:
    """Models by the name heatmap records give them, each loaded once (with the record's dtype).

    A record's ``model`` is resolved with :func:`~gradellm_cli.models.resolve_model` (aliases like
    ``smollm2``, hub ids); ``specs`` maps other names (a .gguf file's stem, a folder's name) to what
    to load, e.g. ``{"my-model": "/models/my-model.gguf"}``.
    """

    def __init__(self, device: str = "auto", specs: dict[str, str] | None = None, loader: Callable | None = None,
                 tokenizer_loader: Callable | None = None):
        from ..models import pick_device

        self.device = pick_device(device)
        self.specs = dict(specs or {})
        self._loader = loader
        self._tokenizer_loader = tokenizer_loader
        self._models: dict[tuple[str, str], Any] = {}
        self._baselines: dict[tuple[str, str | None], int | None] = {}

    def baseline_id(self, record: dict[str, Any], name: str | None) -> int | None:
        """The id of the baseline token ``name`` (None: the model's default, see ``methods.discretized``)
        in the vocabulary of the record's model; None when its tokenizer cannot be loaded."""
        from ..methods.discretized import baseline_token_id

        key = (str(record["model"]), name)
        if key not in self._baselines:
            tokenizer = self._tokenizer(str(record["model"]))
            self._baselines[key] = None if tokenizer is None else baseline_token_id(tokenizer, name)
        return self._baselines[key]

    def _tokenizer(self, name: str):
        if self._tokenizer_loader is not None:
            return self._tokenizer_loader(name)
        from ..models import load_tokenizer, resolve_model

        try:
            return load_tokenizer(resolve_model(self.specs.get(name, name)))
        except OSError:
            return None

    def get(self, record: dict[str, Any]):
        name = str(record["model"])
        dtype = str((record.get("config") or {}).get("dtype") or "float32")
        key = (name, dtype)
        if key not in self._models:
            self._models[key] = self._load(name, dtype)
        return self._models[key]

    def _load(self, name: str, dtype: str):
        if self._loader is not None:
            return self._loader(name, dtype, self.device)
        from ..models import load_model, resolve_model

        return load_model(resolve_model(self.specs.get(name, name)), self.device, dtype)


class Evaluator:
    """Evaluates heatmap records one at a time; :meth:`finish` adds the generation summaries."""

    def __init__(self, settings: MetricSettings, pool: ModelPool):
        self.settings = settings
        self.pool = pool
        self.groups: dict[tuple[str, str, str], dict[int, dict[str, Any] | None]] = {}

    def wants(self, record: dict[str, Any]) -> bool:
        """Classification records always; generation records at steps 0, gen_stride, 2*gen_stride, ..."""
        return is_classification(record) or evaluated_step(int(record["step"]), self.settings.gen_stride)

    def note(self, record: dict[str, Any], result: dict[str, Any] | None) -> None:
        """Remember a generation step's result (None: not produced yet) for its sequence record."""
        if not is_classification(record):
            key = record_key(record)
            self.groups.setdefault(key[:3], {})[key[3]] = result

    def evaluate(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """The metric or error record of one heatmap record; None for a generation step not evaluated."""
        check_heatmap(record)
        if not self.wants(record):
            return None
        baseline = self.pool.baseline_id(record, self.settings.baseline_token) if "log-odds" in self.settings.metrics else None
        result = evaluate_record(self.pool.get(record), record, self.settings, baseline_id=baseline)
        self.note(record, result)
        return result

    def finish(self, existing: dict[Key, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Sequence records of every generation seen whose steps all have results and that has none yet."""
        existing = existing or {}
        out = []
        for group, steps in self.groups.items():
            if (*group, SEQUENCE_STEP) in existing:
                continue
            results = [steps[step] or existing.get((*group, step)) for step in sorted(steps)]
            if any(result is None for result in results):
                continue  # a step was skipped as malformed: no honest average
            out.append(sequence_record(group, results))
        return out
