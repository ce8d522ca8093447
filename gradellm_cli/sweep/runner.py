"""Running a sweep: for each model (loaded once), each owned record is prepared once and every
pending method is explained on it, then evaluated, then committed as one unit.

Metric records come from a fresh :class:`~gradellm_cli.metrics.Evaluator` per unit, so a
generation's sequence-level record (step -1) is written with its own unit; the metric engine reuses
the model the explainer loaded. Both explain and evaluate are seeded, so a unit run again after a
kill gives the same records (``seconds`` apart).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import GradellmError
from ..explain import Explainer
from ..metrics import Evaluator, MetricSettings, ModelPool
from ..schema import error_record
from .plan import Group, Plan, SweepOptions, UnitKey
from .progress import unit_progress
from .store import ShardStore


@dataclass
class Outcome:
    """What one process did: units run now, units found done, units whose explain failed (error records)."""

    ran: int = 0
    skipped: int = 0
    failed: int = 0


def run_sweep(plan: Plan, options: SweepOptions, groups: list[Group], done: dict[UnitKey, dict], store: ShardStore, device: str) -> Outcome:
    """Run every pending unit of ``groups`` (this shard's share), committing each to ``store``.

    ``done`` holds the done lines already in the run folder; units that failed in an earlier run
    count as failed again, so a rerun's exit code still says some records could not be explained.
    """
    mine = [unit for group in groups for unit in group.units()]
    outcome = Outcome(skipped=sum(unit in done for unit in mine), failed=sum(bool(done.get(unit, {}).get("failed")) for unit in mine))
    pending = [g for g in groups if any(unit not in done for unit in g.units())]
    total = len(mine)
    measure = options.metrics
    with unit_progress(total, outcome.skipped) as advance:
        for model in plan.models:
            model_groups = [g for g in pending if g.model == model]
            if model_groups:  # nothing left for a model: it is not loaded
                _run_model(plan.specs[model], device, measure, options, model_groups, done, store, outcome, advance)
    return outcome


def _run_model(spec: str, device: str, measure, options, groups: list[Group], done, store, outcome, advance) -> None:
    """One model's groups; the model is freed on return, before the next one loads (large models never meet in memory)."""
    explainer = Explainer(spec, device=device, dtype=options.dtype)
    pool = ModelPool(device, loader=lambda name, dtype, where: explainer.model)  # evaluate reuses the loaded model
    for group in groups:
        _run_group(explainer, pool, measure, options, group, done, store, outcome, advance)


def _run_group(explainer, pool, measure, options, group: Group, done, store, outcome: Outcome, advance: Callable[[str], None]) -> None:
    """Prepare one record once, then explain, evaluate and commit each pending method of it."""
    todo = [unit for unit in group.units() if unit not in done]
    settings = options.explain_settings(group.dataset.task, tuple(unit[2] for unit in todo))
    record = group.record
    try:
        prepared = explainer.prepare(
            str(record["id"]), record["values"], settings, record["label"], continuation=record.get("continuation"),
            messages=record.get("messages"),
        )
    except GradellmError as exc:
        prepared, failure = None, str(exc)
    for unit in todo:
        label = f"{unit[1]} {unit[0]} {unit[2]}"
        if prepared is None:
            _commit_failure(store, unit, failure, outcome)
        else:
            try:
                heatmaps = [_tag(r, unit[0]) for r in explainer.run_method(prepared, unit[2], settings)]
            except GradellmError as exc:
                _commit_failure(store, unit, str(exc), outcome)
            else:
                store.commit(unit, heatmaps, evaluate_unit(heatmaps, measure, pool, unit[0]))
                outcome.ran += 1
        advance(label)


def evaluate_unit(heatmaps: list[dict[str, Any]], measure: MetricSettings, pool: ModelPool, dataset: str) -> list[dict[str, Any]]:
    """Metric records of one unit's heatmaps: per record (generation: every gen_stride-th step), then its sequence record."""
    evaluator = Evaluator(measure, pool)
    out = [evaluator.evaluate(record) for record in heatmaps]
    out = [record for record in out if record is not None] + evaluator.finish()
    return [_tag(record, dataset) for record in out]


def _commit_failure(store: ShardStore, unit: UnitKey, reason: str, outcome: Outcome) -> None:
    """A record explain cannot handle (too long, empty) becomes an error record, committed, so a rerun does not retry it forever."""
    dataset, model, method, record_id = unit
    error = error_record(record_id=record_id, reason=reason, model=model, method=method, step=None, dataset=dataset)
    store.commit(unit, [error], [], failed=True)
    outcome.failed += 1
    print(f"gradellm: skipped: {model} {dataset} {method}: {reason}", file=sys.stderr)


def _tag(record: dict[str, Any], dataset: str) -> dict[str, Any]:
    """Records name their dataset, so reports can group by it and resume can find their unit."""
    return {"dataset": dataset, **record}
