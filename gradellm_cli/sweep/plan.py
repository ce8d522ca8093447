"""The unit plan of a sweep: which (model, dataset, method, record) units exist, in a fixed order.

Datasets are loaded once here (selection is seeded, so the plan is the same on every rerun and in
every shard); a unit's key names it in the run folder's done logs, and records carry the same four
fields (``dataset`` is added by the sweep), so every record can be traced to its unit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..errors import BadInput
from ..metrics.settings import MetricSettings
from ..settings import ExplainSettings, MethodOptions
from .store import UnitKey


@dataclass(frozen=True)
class DataSelection:
    """Which records of each data set a sweep takes, and which fields of a data file hold what."""

    limits: dict[str, int | None] = field(default_factory=dict)  # dataset -> limit (None: all records)
    offset: int = 0
    shuffle_seed: int | None = None
    balanced: bool = False
    boolq_context: str | None = None
    data_dir: str | None = None
    text_field: str = "text"
    label_field: str | None = None
    id_field: str = "id"
    continuation_field: str = "continuation"
    messages_field: str = "messages"


@dataclass(frozen=True)
class SweepOptions:
    """Every sweep option that changes which records are written or their numbers: the models, data sets
    and methods, and the settings of selecting, explaining and measuring, composed (not copied). The
    run manifest's ``options`` are :meth:`as_dict`: ``dataclasses.asdict`` of this, JSON-ready."""

    models: tuple[str, ...]
    datasets: tuple[str, ...]
    methods: tuple[str, ...]
    data: DataSelection = field(default_factory=DataSelection)
    explain: ExplainSettings = field(default_factory=lambda: ExplainSettings(task=None, methods=[]))
    metrics: MetricSettings = field(default_factory=MetricSettings)
    dtype: str = "float32"
    device: str = "auto"

    @classmethod
    def from_flat(cls, **flat: Any) -> SweepOptions:
        """From the command line's option names (one flat namespace, as ``gradellm sweep`` takes them and
        as manifests before 0.5.0 wrote them); ``seed`` seeds the methods and the metrics alike, and
        ``baseline_token`` is the path methods' and Log-odds' baseline alike."""
        flat = dict(flat)
        take = lambda names: {name: flat.pop(name) for name in names if name in flat}  # noqa: E731
        data = DataSelection(**take(f.name for f in fields(DataSelection)))
        seed, baseline = flat.get("seed", 0), flat.get("baseline_token")
        method_names = [f.name for f in fields(MethodOptions) if f.name not in ("extra",)]
        options = MethodOptions(**take(method_names))
        explain = ExplainSettings(task=None, methods=[], options=options, **take(("target", "max_new_tokens")),
                                  source_roles=tuple(flat.pop("source_roles", ("user",))))
        metric_flat = take(("metrics", "pi_grid", "samples", "mask_unit", "gen_stride", "topk"))
        if "metric_batch_size" in flat:
            metric_flat["batch_size"] = flat.pop("metric_batch_size")
        metric_flat = {k: tuple(v) if isinstance(v, list) else v for k, v in metric_flat.items()}
        metrics = MetricSettings(**metric_flat, seed=seed, baseline_token=baseline)
        head = take(("models", "datasets", "methods", "dtype", "device"))
        head = {k: tuple(v) if isinstance(v, list) else v for k, v in head.items()}
        if flat:
            raise TypeError(f"unknown sweep option(s): {', '.join(sorted(flat))}")
        return cls(**head, data=data, explain=explain, metrics=metrics)

    def explain_settings(self, task: str, methods: tuple[str, ...]) -> ExplainSettings:
        """The explain settings of one data set's records: the sweep's, with that data set's task."""
        return replace(self.explain, task=task, methods=list(methods))

    def as_dict(self) -> dict[str, Any]:
        """The manifest's ``options``: ``dataclasses.asdict``, JSON-ready (tuples as lists), so a reread manifest compares equal."""
        return json.loads(json.dumps(asdict(self)))


@dataclass
class DatasetPlan:
    """One loaded dataset: its name in records, its task, where it came from, and its selected records."""

    name: str
    task: str
    source: str
    records: list[dict[str, Any]]


@dataclass(frozen=True)
class Group:
    """One record of one dataset for one model: prepared once, then every method runs on it."""

    index: int  # position in the plan; the shard rule uses it
    model: str
    dataset: DatasetPlan
    record: dict[str, Any]
    methods: tuple[str, ...]

    def units(self) -> Iterator[UnitKey]:
        for method in self.methods:
            yield (self.dataset.name, self.model, method, str(self.record["id"]))


@dataclass
class Plan:
    """All groups, model-major (model, dataset, record; methods inside a group), so each model loads once."""

    models: list[str]
    specs: dict[str, str]  # model name in records -> what --models said (what to load)
    datasets: list[DatasetPlan]
    methods: tuple[str, ...]
    groups: list[Group]

    @property
    def unit_count(self) -> int:
        return len(self.groups) * len(self.methods)

    def summary(self) -> dict[str, Any]:
        """What the manifest records of the plan: enough to tell two plans apart, without the texts."""
        return {
            "order": "model, dataset, record, method",
            "models": self.models,
            "methods": list(self.methods),
            "datasets": {d.name: {"task": d.task, "ids": [str(r["id"]) for r in d.records]} for d in self.datasets},
            "units": self.unit_count,
        }


def split_list(spec: str, what: str) -> tuple[str, ...]:
    """``a,b,c`` -> ("a", "b", "c"); an empty list or a repeated name is a one-line error."""
    names = tuple(part.strip() for part in spec.split(",") if part.strip())
    if not names:
        raise BadInput(f"--{what} is empty")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BadInput(f"--{what} names {repeated[0]!r} twice")
    return names


def parse_limits(spec: str | None, generation: int | None, datasets: tuple[str, ...], tasks: dict[str, str]) -> dict[str, int | None]:
    """Per-dataset limits from ``--limit`` (``20`` or ``20,tellmewhy=10``) and ``--limit-generation``.

    A bare number applies to every dataset; ``name=N`` overrides it for one; ``--limit-generation``
    applies to generation datasets that have no ``name=N`` of their own.
    """
    default, named = None, {}
    for part in (p.strip() for p in (spec or "").split(",") if p.strip()):
        name, _, value = part.rpartition("=")
        number = _positive(value, part)
        if not name:
            default = number
        elif name not in datasets:
            raise BadInput(f"`limit` names {name!r}, which is not in `datasets`")
        else:
            named[name] = number
    if generation is not None and generation < 1:
        raise BadInput("`limit_generation` must be at least 1")
    limits = {}
    for name in datasets:
        fallback = generation if generation is not None and not _classifies(tasks[name]) else default
        limits[name] = named.get(name, fallback)
    return limits


def _positive(value: str, part: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise BadInput(f"cannot read `limit` {part!r}: use N or DATASET=N") from None
    if number < 1:
        raise BadInput(f"`limit` {part!r} must be at least 1")
    return number


def _classifies(task: str) -> bool:
    from ..prompts import get_task

    return get_task(task).is_classification


def dataset_task(name: str, continuation_field: str = "continuation", messages_field: str = "messages") -> str:
    """The task a dataset brings: a built-in's own; for a file, as `gradellm explain --dataset` reads it
    (chat with a messages column, generate with a continuation column, else sentiment)."""
    from ..data import BUILTINS, file_task

    builtin = BUILTINS.get(name.lower())
    return builtin.task if builtin else file_task(name, continuation_field, messages_field)


def load_datasets(options: SweepOptions) -> list[DatasetPlan]:
    """Each dataset loaded and selected once; duplicate ids in one dataset are an error (units would collide).

    ``balanced`` applies to classification datasets only, so one sweep can mix them with generation ones.
    """
    from ..data import load_records

    data = options.data
    plans = []
    for spec in options.datasets:
        loaded = load_records(
            spec,
            data_dir=data.data_dir,
            text_field=data.text_field,
            label_field=data.label_field,
            id_field=data.id_field,
            limit=data.limits.get(spec),
            offset=data.offset,
            seed=data.shuffle_seed,
            balanced=data.balanced and _classifies(dataset_task(spec, data.continuation_field, data.messages_field)),
            boolq_context=data.boolq_context,
            continuation_field=data.continuation_field,
            messages_field=data.messages_field,
        )
        ids = [str(r["id"]) for r in loaded.records]
        if len(set(ids)) != len(ids):
            raise BadInput(f"dataset {spec} holds the same id twice; give each record its own `id_field` value")
        if any(plan.name == loaded.name for plan in plans):
            raise BadInput(f"two datasets are both named {loaded.name!r}")
        plans.append(DatasetPlan(loaded.name, loaded.task, loaded.source, loaded.records))
    return plans


def build_plan(options: SweepOptions) -> Plan:
    """The full plan; model names are resolved (not loaded) so unknown models fail before any work."""
    from ..methods import parse_methods
    from ..models import resolve_model

    methods = tuple(parse_methods(",".join(options.methods)))
    specs = {resolve_model(spec).name: spec for spec in options.models}
    models = list(specs)
    if len(models) != len(options.models):
        raise BadInput("`models` names the same model twice")
    datasets = load_datasets(options)
    groups = []
    for model in models:
        for dataset in datasets:
            for record in dataset.records:
                groups.append(Group(len(groups), model, dataset, record, methods))
    return Plan(models, specs, datasets, methods, groups)
