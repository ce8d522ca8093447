"""Generation records: which steps are evaluated, and the sequence-level record that averages them.

The paper evaluates open generation at the sequence level: pi-Soft-NS/NC "every five tokens",
averaged over those steps. Here that is:

* steps 0, 5, 10, ... (``step % gen_stride == 0``; step 0 is the first generated token, so every
  generation has at least one) each get their own metric record (``level: "token"``), exactly like
  a classification record, so "one metric record per evaluated heatmap record" holds; other steps
  get no record;
* once a generation's evaluated steps are all done, one more record with ``step: -1`` and
  ``level: "sequence"`` holds the mean of every scalar metric and, per pi, of the curves, over
  the steps that have metrics (``steps_evaluated``); steps whose metrics were undefined are listed in
  ``steps_failed`` and left out of the mean. If none has metrics, it is an error record.

The AUC of the mean curve equals the mean of the AUCs (the trapezoid rule is linear).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..schema import METRIC, SEQUENCE_STEP, error_record, metric_record

_SCALARS = ("delta0", "soft_ns", "soft_nc", "expected_kept", "auc_pi_soft_ns", "auc_pi_soft_nc", "source_tokens",
            "log_odds", "comprehensiveness", "sufficiency", "topk_tokens", "wae")
_CURVES = ("pi_soft_ns", "pi_soft_nc", "achieved_pi")


def evaluated_step(step: int, gen_stride: int) -> bool:
    """Whether a generation step gets metrics: 0, gen_stride, 2*gen_stride, ..."""
    return step % gen_stride == 0


def sequence_record(group: tuple[str, str, str], steps: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The sequence-level record of one (id, model, method) generation from its per-step records."""
    record_id, model, method = group
    steps = sorted(steps, key=lambda r: r["step"])
    good = [r for r in steps if r.get("kind") == METRIC]
    failed = [r["step"] for r in steps if r.get("kind") != METRIC]
    head = {"id": record_id, "model": model, "method": method, "step": SEQUENCE_STEP}
    if not good:
        reasons = sorted({r.get("error", "unknown") for r in steps})
        configs = [r["config"] for r in steps if r.get("config") is not None]
        context = {"config": configs[0]} if configs else {}
        return error_record(record_id=record_id, reason=f"no evaluated step has metrics ({'; '.join(reasons)})", model=model,
                            method=method, step=SEQUENCE_STEP, **context, steps_failed=failed)
    first = good[0]
    values: dict[str, Any] = {"steps_evaluated": [r["step"] for r in good], "steps_failed": failed}
    for name in _SCALARS:
        if name in first:
            values[name] = float(np.mean([r[name] for r in good]))
    if "pi_grid" in first:
        values["pi_grid"] = first["pi_grid"]
    for name in _CURVES:
        if name in first:
            values[name] = np.mean([r[name] for r in good], axis=0).tolist()
    values["engine"] = first.get("engine")
    values["seconds"] = float(sum(r.get("seconds", 0.0) for r in good))
    return metric_record({**head, "task": first.get("task")}, first.get("config"), values, level="sequence")
