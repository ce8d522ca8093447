"""Faithfulness metrics for heatmap records, independent of the method that made the scores.

Soft-NS/NC and pi-Soft-NS/NC (paper section 3.3, eq. 14-20) and Deletion/Insertion flip curves
(appendix C), with the choices fixed by the method notes. One module per job:

* :mod:`.normalise`: source scores / max (errors for all-zero, negative, NaN, inf);
* :mod:`.pi_transform`: the eps squeeze and alpha by bisection so that mean(s**alpha) = pi;
* :mod:`.hellinger`: the distance between next-token distributions;
* :mod:`.masks`: seeded Bernoulli masks, score rankings, the Deletion/Insertion step sizes;
* :mod:`.engine`: the model under perturbation (batched + prefix-cached, and a one-by-one reference);
* :mod:`.evaluate`: one heatmap record -> one metric record (or error record);
* :mod:`.sequence`: which generation steps are evaluated and their sequence-level average;
* :mod:`.stream`: a stream of heatmap records, each model loaded once;
* :mod:`.records`, :mod:`.settings`, :mod:`.errors`: record checks/builders, options, MetricError.
"""

from __future__ import annotations

from .engine import BatchedEngine, OneByOneEngine, measure
from .errors import MetricError
from .evaluate import compute_metrics, evaluate_record, make_engine
from .hellinger import hellinger
from .normalise import normalise_scores
from .pi_transform import pi_transform, solve_alpha, squeeze
from .records import SEQUENCE_STEP, check_heatmap, record_key
from .sequence import sequence_record
from .settings import DEFAULT_PI_GRID, METRICS, MetricSettings, parse_metrics, parse_pi_grid
from .stream import Evaluator, ModelPool, evaluate_jsonl, evaluate_stream

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
    "evaluate_jsonl",
    "evaluate_record",
    "evaluate_stream",
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
