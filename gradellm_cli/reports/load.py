"""Collect metric records for the reports: from a run folder or JSONL files, one row per evaluated unit.

Which records count. The paper scores open generation at the sequence level and classification at its
single token, so a generation contributes only its sequence-level record (``step`` -1, ``level``
"sequence") and a classification only its token-level record; the per-step records of a generation are
passed over. A generation is a record of a task without label words (``generate``, ``raw``) or of an
input that has a sequence-level record. A unit met twice keeps one record; met with two settings (two variants under one method
name), or among records of other metric settings (pi grid, samples, ...), it is refused: those numbers do
not compare. The one named variant is the paper's ablation, Grad-ELLM with softmax attention, reported
as ``grad-ellm (w/o l)`` (:data:`VARIANTS`). A folder with no metric files of its own stands for its
subfolders (a run and its ablation run side by side). Error records are not averaged but counted, per
(model, dataset, method), so a table can say how many inputs a mean leaves out: undefined metrics
(from the metric files) and, in a sweep run folder, inputs that could not be explained at all (their
error records, ``step`` null, are in the heatmap files).

Which data set a record belongs to, first match wins (heatmap records name only the prompt template,
and SST-2 and IMDb share one):

1. a ``dataset`` field on the record, or ``dataset`` in its ``config`` or ``config.heatmap``;
2. ``dataset_of``, a mapping from record id to data set given by the caller, or else the one in the
   run's ``manifest.json`` (``plan.datasets.NAME.ids``, as ``gradellm sweep`` writes it);
3. the id's first ``-``-separated word when it names a built-in data set: the built-in loaders and the
   files in ``shared/data`` give ids such as ``sst2-test-1354`` or ``boolq-eraser-test-7940``;
4. the record's task (``sentiment``, ``boolq``, ``generate``), so records of one custom file still group.

Error records carry no task; they take the data set their id has among the metric records of the same model.

Cost. Every row keeps its metric record's ``seconds`` (the evaluation of that input; a generation's
sequence record sums its steps). Rows from a ``gradellm sweep`` run folder also get ``explain_seconds``:
the method's time for the whole input, the sum of ``seconds`` over the input's heatmap records (each
holds the method's time divided by the steps). Plain metric files have no heatmaps, hence no
``explain_seconds``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..errors import BadInput, NotFound
from ..jsonl import whole_lines
from ..schema import ERROR, HEATMAP, METRIC, SEQUENCE_STEP
from ..sweep.manifest import first_difference

GENERATION_TASKS = frozenset({"generate", "raw", "chat"})  # the tasks without label words (a test checks prompts.TASKS)
# The built-in data set names of ``gradellm_cli.data.BUILTINS`` (importing that module loads transformers;
# a test checks the two agree).
BUILTIN_DATASETS = ("sst2", "imdb", "boolq", "tellmewhy", "wikibio")
METRIC_GLOB = "metrics*.jsonl"

CellKey = tuple[str, str, str]  # (model, dataset, method)


@dataclass
class Collection:
    """The metric rows that enter the reports, the errors per cell, and what was read."""

    rows: list[dict[str, Any]]
    errors: Counter[CellKey] = field(default_factory=Counter)
    sources: list[Path] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)  # column order: the manifest's, else first seen
    generation: set[str] = field(default_factory=set)  # data sets scored at the sequence level
    passed_over: int = 0  # per-step records of generations, and duplicates

    @property
    def models(self) -> list[str]:
        return _ordered(row["model"] for row in self.rows)

    @property
    def methods(self) -> list[str]:
        """grad-ellm first (the paper's method), then its variants, then the baselines, each by name (not
        the order first seen, which a sharded run or reordered files would change)."""
        names = _ordered(row["method"] for row in self.rows)
        return sorted(names, key=lambda name: (name != "grad-ellm", not name.startswith("grad-ellm"), name))

    def select(self, model: str, dataset: str, method: str) -> list[dict[str, Any]]:
        """One cell's rows in input order (id, step), not file order: a bootstrap resamples positions, so
        the same records read from a sharded run, an unsharded one or reordered files must come in one
        order to give the same intervals."""
        rows = [r for r in self.rows if r["model"] == model and r["dataset"] == dataset and r["method"] == method]
        return sorted(rows, key=lambda r: (str(r.get("id")), int(r.get("step") or 0)))


def metric_files(source: Path) -> list[Path]:
    """The metric files of ``source``: itself if a file, else the folder's ``metrics*.jsonl`` (shards included)."""
    if not source.exists():
        raise NotFound(f"{source} does not exist")
    if source.is_file():
        return [source]
    files = sorted(source.glob(METRIC_GLOB))  # a folder of run folders is split up first (expand_sources)
    if not files:
        raise NotFound(f"{source} holds no {METRIC_GLOB} file")
    return files


def collect(sources: Path | Iterable[Path], dataset_of: Mapping[str, str] | None = None) -> Collection:
    """Read every metric and error record of ``sources`` (files, run folders, or a folder of run folders)
    into a :class:`Collection`."""
    paths = expand_sources([sources] if isinstance(sources, Path) else [Path(s) for s in sources])
    files = [file for path in paths for file in metric_files(path)]
    raw = [record for path in paths for record in _labelled(list(_records(path)))]
    metrics = [r for r in raw if r.get("kind") == METRIC]
    if not metrics:
        raise BadInput(f"no metric records in {', '.join(str(f) for f in files)} (run `gradellm evaluate` first)")
    collection = Collection(rows=[], sources=files)
    mapping = {**_manifest_ids(paths), **(dataset_of or {})}
    _add_metric_rows(collection, metrics, mapping)
    from ..sweep.store import read_run_heatmaps

    heatmaps = [record for path in filter(_is_run_folder, paths) for record in _labelled(read_run_heatmaps(path))]
    _add_explain_seconds(collection, heatmaps)
    # an input the sweep could not explain (too long, empty) has its error record among the heatmaps
    errors = [r for r in raw + heatmaps if r.get("kind") == ERROR]
    _count_errors(collection, errors, mapping)
    collection.datasets = _dataset_order(collection, paths)
    return collection


def _is_run_folder(path: Path) -> bool:
    return path.is_dir() and any(path.glob("done*.jsonl"))


def expand_sources(paths: list[Path]) -> list[Path]:
    """A folder with no metric files of its own stands for its subfolders that have some (say a run and
    its ablation run side by side), each read as itself: a run folder through its done logs."""
    expanded: list[Path] = []
    for path in paths:
        if path.is_dir() and not _is_run_folder(path) and not any(path.glob(METRIC_GLOB)):
            subfolders = sorted(p for p in path.iterdir() if p.is_dir() and any(p.glob(METRIC_GLOB)))
            expanded += subfolders or [path]
        else:
            expanded.append(path)
    return expanded


# Named variants of a method, reported as rows of their own beside it: (method, the heatmap settings
# that make it, label). The first whose settings all match a record's heatmap config wins. "w/o l" is
# the paper's ablation (softmax, not loosened); "port" is ``--variant port`` (the authors' code as a
# public port computes Grad-ELLM); "all layers" the attention baseline averaged over layers, inseq's
# default; "last layer" Value Zeroing of the last layer alone.
VARIANTS: tuple[tuple[str, dict[str, str], str], ...] = (
    ("grad-ellm", {"attention": "softmax"}, "w/o l"),
    ("grad-ellm", {"similarity": "raw-cosine", "grad_at": "post-o", "kv_expansion": "tiled", "layers": "last:1"}, "port"),
    ("attention", {"attention_layers": "all"}, "all layers"),
    ("value-zeroing", {"vz_layers": "last"}, "last layer"),
)


def method_label(method: str, heatmap_config: Any) -> str:
    """The method's name in the tables: ``NAME (LABEL)`` for a named variant (:data:`VARIANTS`), as the
    paper's Tables 4-5 show ``grad-ellm (w/o l)`` beside the method; the plain name otherwise."""
    config = heatmap_config if isinstance(heatmap_config, dict) else {}
    for name, settings, label in VARIANTS:
        if method == name and all(config.get(key) == value for key, value in settings.items()):
            return f"{method} ({label})"
    return method


def _heatmap_config(record: dict[str, Any]) -> Any:
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    return config if record.get("kind") == HEATMAP else config.get("heatmap")


def _labelled(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of one source with their method labels (:func:`method_label`). An error record
    without a config (explain's, or one made before 0.2.0) takes the label its method has among the
    source's metric records when that is one label (a source holds one configuration: a run folder,
    an evaluate output)."""
    labels: dict[str, set[str]] = {}
    out = []
    for record in records:
        if record.get("kind") in (METRIC, HEATMAP) or isinstance(_heatmap_config(record), dict):
            label = method_label(str(record.get("method")), _heatmap_config(record))
            labels.setdefault(str(record.get("method")), set()).add(label)
            record = {**record, "method": label}
        out.append(record)
    for index, record in enumerate(out):
        known = labels.get(str(record.get("method")), set())
        if record.get("kind") == ERROR and len(known) == 1:
            out[index] = {**record, "method": next(iter(known))}
    return out


def _add_explain_seconds(collection: Collection, heatmaps: list[dict[str, Any]]) -> None:
    """``explain_seconds`` on the rows of sweep run folders (see the module docstring), from their heatmaps."""
    from ..sweep.store import unit_of

    totals: dict[tuple[str, str, str, str], float] = {}
    for record in heatmaps:
        if record.get("kind") != HEATMAP:
            continue
        seconds = record.get("seconds")
        if isinstance(seconds, (int, float)) and math.isfinite(seconds):
            key = unit_of(record)
            totals[key] = totals.get(key, 0.0) + float(seconds)
    for row in collection.rows:
        key = (row["dataset"], row["model"], row["method"], row["id"])
        if key in totals:
            row["explain_seconds"] = totals[key]


def _records(path: Path) -> Iterable[dict[str, Any]]:
    """The records of a file or folder. A ``gradellm sweep`` run folder (it has ``done*.jsonl``) is read
    through :func:`gradellm_cli.sweep.store.read_run_metrics`: finished units only, every shard merged, no
    duplicates, so a report made during a run or after a kill never counts a half-written unit."""
    if _is_run_folder(path):
        from ..sweep.store import read_run_metrics

        return read_run_metrics(path)
    return [record for file in metric_files(path) for record in whole_lines(file)]


def is_generation(record: dict[str, Any]) -> bool:
    """Generation records: the ``generate`` task, or a sequence-level record."""
    return record.get("level") == "sequence" or record.get("task") in GENERATION_TASKS


def dataset_name(record: dict[str, Any], dataset_of: Mapping[str, str]) -> str:
    """The data set of ``record`` by the rules in the module docstring."""
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    heatmap = config.get("heatmap") if isinstance(config.get("heatmap"), dict) else {}
    for candidate in (record.get("dataset"), config.get("dataset"), heatmap.get("dataset"), dataset_of.get(str(record.get("id")))):
        if candidate:
            return str(candidate)
    prefix = str(record.get("id", "")).split("-", 1)[0].lower()
    if prefix in BUILTIN_DATASETS:
        return prefix
    return str(record.get("task") or heatmap.get("task") or "unknown")


NOT_SETTINGS = ("device", "gradellm_version")  # where, and by which release, a heatmap was made


# Metric settings that records began to name in a later release, with the value every earlier record
# was computed with: a record without the key compares as having that value. 0.2.0 named the pi
# squeeze formula, unchanged since 0.1.0; 0.4.0 added the top-k metrics, whose settings earlier records
# (which hold no top-k numbers) compare equal to the defaults.
NAMED_LATER = {"pi_squeeze": "eps + (1 - 2 eps) s", "topk": 0.2, "baseline_token": "auto"}


def metric_settings(record: dict[str, Any]) -> dict[str, Any]:
    """What makes two records' metric values comparable: the metric settings of ``config`` (pi grid,
    samples, mask unit, seed, ...), without the list of metrics computed and the heatmap's settings;
    a setting named only in later releases takes its earlier value (:data:`NAMED_LATER`)."""
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    settings = {key: value for key, value in config.items() if key not in ("heatmap", "metrics")}
    if settings:
        settings = {**NAMED_LATER, **settings}
    return settings


def method_settings(record: dict[str, Any]) -> dict[str, Any]:
    """The heatmap settings of a metric record (``config.heatmap``: task, target, attention, target_fn,
    ...), without the device and the gradellm release."""
    heatmap = _heatmap_config(record)
    return {key: value for key, value in heatmap.items() if key not in NOT_SETTINGS} if isinstance(heatmap, dict) else {}


def _describe(row: dict[str, Any]) -> str:
    return f"{row['id']} ({row['model']}, {row['method']})"


def _difference(first: dict[str, Any], row: dict[str, Any], settings) -> str | None:
    """The first difference between two rows' settings; None when equal or when either has none
    (hand-made or older records without a config are not compared)."""
    mine, theirs = settings(first), settings(row)
    if not mine or not theirs:
        return None
    return first_difference(mine, theirs, labels=(f"for {_describe(first)}", f"for {_describe(row)}"))


def _check_comparable(first: dict[str, Any], row: dict[str, Any]) -> None:
    """One report, one set of metric settings: AUCs over other pi grids or sample counts do not compare."""
    difference = _difference(first, row, metric_settings)
    if difference:
        raise BadInput(f"the metric records were made with different settings ({difference}); report them separately")


def _check_one_variant(first: dict[str, Any], row: dict[str, Any]) -> None:
    """One cell (model, data set, method), one variant of the method: another ``--target-fn`` or other
    ``--layers`` must not be averaged or replace each other (the paper's ablation has a label of its own,
    so it lands in a cell of its own)."""
    difference = _difference(first, row, method_settings)
    if difference:
        raise BadInput(f"{row['method']} on {row['dataset']} was explained with two settings ({difference}); "
                       "variants of one method do not average: report the runs separately")


def _add_metric_rows(collection: Collection, metrics: list[dict[str, Any]], dataset_of: Mapping[str, str]) -> None:
    """Keep the level each task is scored at; a repeated unit keeps its last record; other metric
    settings, or two variants of a method in one cell, are refused (BadInput)."""
    chosen: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    first: dict[str, Any] | None = None
    first_in_cell: dict[CellKey, dict[str, Any]] = {}
    # an input with a sequence-level record is a generation, whatever its task is called
    sequenced = {_input_key(r) for r in metrics if r.get("level") == "sequence"}
    for record in metrics:
        wanted_level = "sequence" if is_generation(record) or _input_key(record) in sequenced else "token"
        if record.get("level", "token") != wanted_level:
            collection.passed_over += 1
            continue
        row = {**record, "id": str(record.get("id")), "model": str(record.get("model")), "method": str(record.get("method"))}
        row["dataset"] = dataset_name(record, dataset_of)
        first = first or row
        _check_comparable(first, row)
        _check_one_variant(first_in_cell.setdefault((row["model"], row["dataset"], row["method"]), row), row)
        key = (row["id"], row["model"], row["method"], int(record.get("step", 0)))
        collection.passed_over += key in chosen
        chosen[key] = row
        if wanted_level == "sequence":
            collection.generation.add(row["dataset"])
    collection.rows = list(chosen.values())


def _input_key(record: dict[str, Any]) -> tuple[str, str, str]:
    return str(record.get("id")), str(record.get("model")), str(record.get("method"))


def _count_errors(collection: Collection, errors: list[dict[str, Any]], dataset_of: Mapping[str, str]) -> None:
    """Count an error against its cell when it stands for a missing row: a sequence-level error for a
    generation, a token-level one for a classification (per-step generation errors are averaged over),
    and a sweep's explain error (``step`` null: the input could not be explained at all)."""
    known = {(row["id"], row["model"]): row["dataset"] for row in collection.rows}
    for record in errors:
        model, record_id = str(record.get("model")), str(record.get("id"))
        dataset = known.get((record_id, model)) or dataset_name(record, dataset_of)
        step = record.get("step", 0)
        sequence = dataset in collection.generation
        if step is None or (sequence and step == SEQUENCE_STEP) or (not sequence and step != SEQUENCE_STEP):
            collection.errors[(model, dataset, str(record.get("method")))] += 1


def _dataset_order(collection: Collection, paths: list[Path]) -> list[str]:
    """The manifest's data set order when a run folder has one, then any others in the order first seen."""
    seen = _ordered(row["dataset"] for row in collection.rows)
    listed: list[str] = []
    for path in paths:
        listed += _manifest_datasets(_manifest_path(path))
    return [name for name in _ordered(listed) if name in seen] + [name for name in seen if name not in listed]


def _manifest(path: Path) -> dict[str, Any]:
    """A sweep's ``manifest.json`` next to the metric files, or {} (reports work without one)."""
    try:
        manifest = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def run_progress(path: Path) -> tuple[int, int] | None:
    """(units done, units planned) of a sweep run folder; None for a file or a folder without a planned
    unit count. Reports made while a sweep runs (or after it stopped) use it to say they are partial."""
    if not path.is_dir():
        return None
    plan = _manifest(path / "manifest.json").get("plan")
    planned = plan.get("units") if isinstance(plan, dict) else None
    if not isinstance(planned, int):
        return None
    from ..sweep.store import done_units

    return len(done_units(path)), planned


def _manifest_path(path: Path) -> Path:
    return path / "manifest.json" if path.is_dir() else path.parent / "manifest.json"


def _manifest_ids(paths: list[Path]) -> dict[str, str]:
    """Record id -> data set from a sweep manifest's plan (``plan.datasets.NAME.ids``), for records
    that do not name their data set themselves."""
    mapping: dict[str, str] = {}
    for path in paths:
        plan = _manifest(_manifest_path(path)).get("plan")
        datasets = plan.get("datasets") if isinstance(plan, dict) else None
        for name, entry in (datasets.items() if isinstance(datasets, dict) else []):
            ids = entry.get("ids") if isinstance(entry, dict) else None
            mapping.update({str(i): str(name) for i in ids or []})
    return mapping


def _manifest_datasets(path: Path) -> list[str]:
    """Data set names a sweep manifest lists (``datasets`` or ``options.datasets``: names, or objects with ``name``)."""
    manifest = _manifest(path)
    options = manifest.get("options") if isinstance(manifest.get("options"), dict) else {}
    names = manifest.get("datasets") or options.get("datasets")
    if isinstance(names, dict):
        return [str(name) for name in names]
    if isinstance(names, list):
        return [str(n.get("name") if isinstance(n, dict) else n) for n in names if n]
    return []


def _ordered(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
