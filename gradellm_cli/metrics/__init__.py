"""Faithfulness metrics for heatmap records, independent of the method that made the scores.

Soft-NS/NC and pi-Soft-NS/NC (paper section 3.3, eq. 14-20) and Deletion/Insertion flip curves
(appendix C), with the choices fixed by the method notes. One module per job:

* :mod:`.normalise`: source scores / max (errors for all-zero, negative, NaN, inf);
* :mod:`.pi_levels`: the eps squeeze and alpha by bisection so that mean(s**alpha) = pi;
* :mod:`.distance`: the Hellinger distance between next-token distributions;
* :mod:`.masks`: seeded Bernoulli masks, score rankings, the Deletion/Insertion step sizes;
* :mod:`.engine`: the model under perturbation (batched + prefix-cached, and a one-by-one reference);
* :mod:`.evaluate`: one heatmap record -> one metric record (or error record);
* :mod:`.sequence`: which generation steps are evaluated and their sequence-level average;
* :mod:`.stream`: the :class:`Evaluator` of a stream of heatmap records, each model loaded once (the loop
  over a stream or a file is :mod:`gradellm_cli.pipelines.evaluating`'s);
* :mod:`.settings`, :mod:`.errors`: options, MetricError (records are built and checked in :mod:`gradellm_cli.schema`).
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module (relative to this package); imported on first use, so that the settings (and
# `gradellm evaluate --help`) load no torch
_EXPORTS = {
    "SEQUENCE_STEP": "..schema",
    "check_heatmap": "..schema",
    "record_key": "..schema",
    "BatchedEngine": ".engine",
    "OneByOneEngine": ".engine",
    "measure": ".engine",
    "MetricError": ".errors",
    "compute_metrics": ".evaluate",
    "evaluate_record": ".evaluate",
    "make_engine": ".evaluate",
    "hellinger": ".distance",
    "normalise_scores": ".normalise",
    "pi_transform": ".pi_levels",
    "solve_alpha": ".pi_levels",
    "squeeze": ".pi_levels",
    "sequence_record": ".sequence",
    "DEFAULT_PI_GRID": ".settings",
    "METRICS": ".settings",
    "MetricSettings": ".settings",
    "parse_metrics": ".settings",
    "parse_pi_grid": ".settings",
    "Evaluator": ".stream",
    "ModelPool": ".stream",
}


__all__ = [
    "DEFAULT_PI_GRID",
    "METRICS",
    "SEQUENCE_STEP",
    "BatchedEngine",
    "Evaluator",
    "MetricError",
    "MetricSettings",
    "ModelPool",
    "OneByOneEngine",
    "check_heatmap",
    "compute_metrics",
    "evaluate_record",
    "hellinger",
    "make_engine",
    "measure",
    "normalise_scores",
    "parse_metrics",
    "parse_pi_grid",
    "pi_transform",
    "record_key",
    "sequence_record",
    "solve_alpha",
    "squeeze",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value
