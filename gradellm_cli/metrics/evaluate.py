"""One heatmap record -> one metric record: Soft-NS/NC, pi-Soft-NS/NC and Deletion/Insertion.

Definitions (method notes; ``s`` = source scores / max, m source tokens, ``D(x)`` = Hellinger
distance between the unperturbed next-token distribution at the target position and the one for
input ``x``; ``D0`` = D(all source embeddings zeroed)):

* Soft-NS = mean over ``samples`` draws of ``max(0, D0 - D(keep))/D0``, keep-mask ``e_i ~ Bernoulli(s_i)``;
  Soft-NC = mean of ``D(remove)/D0``, keep-mask ``e_i ~ Bernoulli(1 - s_i)`` (not clipped).
  The raw scores are used (no transform) and ``expected_kept = sum(s_i)``. The notes fix one draw
  per token but not how many perturbed texts; we use ``samples`` (3, as for pi), averaged.
* pi-Soft-NS/NC at each pi of the grid: the same with ``s`` replaced by ``s'**alpha`` (see
  :mod:`.pi_transform`), ``samples`` draws per pi, averaged per pi; the AUC is the trapezoid rule
  over the grid as given (x from its first to its last value, not rescaled).
* Deletion / Insertion (classification records only): the source tokens ranked by ``s`` (ties:
  earlier token first); at step j = 1..20, ``k_j = floor(j*m/20 + 1/2)`` tokens (see
  :func:`.masks.step_counts`). Deletion zeroes the top ``k_j``; Insertion starts from all source
  zeroed and restores the top ``k_j``. The curve holds 1 where the winning label word (argmax of the
  logits over ``label_ids``) differs from the unperturbed input's, else 0; the AUC is its mean.

``D0`` below 1e-6, scores that are all zero, negative, NaN or inf, or a record with no source
token make the metrics undefined: :class:`MetricError`, which :func:`evaluate_record` turns into an
error record.

Perturbations of one record are drawn in one fixed order (zero baseline; raw keep/remove per
sample; per pi: keep/remove per sample; deletion steps; insertion steps) from one seeded generator.
The raw draws are made (and not measured) when only pi is asked for, so every metric gets the same
draws whatever ``--metrics`` selects: records of runs with other metric lists compare, pairs included.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..schema import check_heatmap, is_classification, metric_error, metric_record
from .engine import BatchedEngine, OneByOneEngine, measure
from .errors import MetricError
from .masks import Bernoulli, Fixed, draw, mask_seed, ranking, step_counts, top_k_mask
from .normalise import normalise_scores
from .pi_levels import pi_transform
from .settings import DELTA0_MIN, PERTURBATION_METRICS, MetricSettings
from .topk import topk_metrics, word_approximation_error


def make_engine(model, record: dict[str, Any], settings: MetricSettings):
    """The engine ``settings`` asks for, set up for this record's input."""
    if settings.engine == "one-by-one":
        return OneByOneEngine(model, record["input_ids"], record["source_mask"])
    return BatchedEngine(model, record["input_ids"], record["source_mask"], prefix_cache=settings.prefix_cache)


def applicable_metrics(record: dict[str, Any], settings: MetricSettings) -> tuple[str, ...]:
    """The requested metrics that apply to this record: Deletion/Insertion needs label words, WAE a
    path method's record; MetricError when none does."""
    def applies(name: str) -> bool:
        if name == "deletion-insertion":
            return is_classification(record)
        if name == "wae":
            return isinstance(record.get("details"), dict) and "wae" in record["details"]
        return True

    names = tuple(name for name in settings.metrics if applies(name))
    if not names:
        raise MetricError(f"none of the metrics asked for ({', '.join(settings.metrics)}) is defined for this record: "
                          "Deletion/Insertion needs a classification record, WAE a path method's (udig, dig)")
    return names


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


def soft_ns_nc(delta0: float, keep: np.ndarray, remove: np.ndarray) -> tuple[float, float]:
    """(Soft-NS, Soft-NC) from the distances of the keep and the removal perturbations, averaged over
    samples: Soft-NS = max(0, Delta_0 - Delta_keep) / Delta_0 (clipped, as the method notes), Soft-NC =
    Delta_remove / Delta_0 (not clipped: it can exceed 1). Delta_0: every source token zeroed."""
    return float(np.mean(np.maximum(0.0, delta0 - keep) / delta0)), float(np.mean(remove / delta0))


def compute_metrics(record: dict[str, Any], settings: MetricSettings, engine) -> dict[str, Any]:
    """The perturbation metrics (soft, pi, Deletion/Insertion) of one checked heatmap record, measured
    with ``engine``; raises MetricError."""
    names = tuple(name for name in applicable_metrics(record, settings) if name in PERTURBATION_METRICS)
    scores = normalise_scores(record["scores"], record["source_mask"])
    m = scores.size
    samples = settings.samples
    specs: list = [Fixed(torch.zeros(m, dtype=torch.bool))]  # D0
    out: dict[str, Any] = {"source_tokens": m}

    raw_at = len(specs)
    prob = torch.from_numpy(scores)
    raw_specs = [spec for _ in range(samples) for spec in (Bernoulli(prob), Bernoulli(1.0 - prob))]
    if "soft" in names:
        specs += raw_specs
    pi_at = len(specs)
    if "pi" in names:
        alphas, achieved = [], []
        for pi in settings.pi_grid:
            transformed, alpha, mean = pi_transform(scores, pi, settings.eps)
            alphas.append(alpha)
            achieved.append(mean)
            prob = torch.from_numpy(transformed)
            for _ in range(samples):
                specs += [Bernoulli(prob), Bernoulli(1.0 - prob)]
    deletion_at = len(specs)
    if "deletion-insertion" in names:
        order = ranking(scores)
        counts = step_counts(m)
        specs += [Fixed(top_k_mask(order, k, keep_top=False)) for k in counts]
        specs += [Fixed(top_k_mask(order, k, keep_top=True)) for k in counts]

    generator = torch.Generator().manual_seed(mask_seed(settings.seed, str(record["id"]), str(record["model"]), int(record["step"])))
    if "pi" in names and "soft" not in names:  # draw (and drop) the raw masks: the pi masks stay those of --metrics all
        for _ in draw(raw_specs, generator, settings.mask_unit, engine.hidden):
            pass
    masks = draw(specs, generator, settings.mask_unit, engine.hidden)
    labels = record.get("label_ids") if "deletion-insertion" in names else None
    measured = measure(engine, masks, labels, settings.batch_size, dedupe=settings.engine == "batched")
    distance = measured.hellinger

    delta0 = float(distance[0])
    out["delta0"] = delta0
    if ("soft" in names or "pi" in names) and not delta0 >= DELTA0_MIN:
        raise MetricError(f"Delta_0 = {delta0:.3g}: zeroing every source token leaves the prediction unchanged; Soft-NS/NC are undefined")

    def soft_pair(start: int) -> tuple[float, float]:
        return soft_ns_nc(delta0, distance[start : start + 2 * samples : 2], distance[start + 1 : start + 2 * samples : 2])

    if "soft" in names:
        out["soft_ns"], out["soft_nc"] = soft_pair(raw_at)
        out["expected_kept"] = float(scores.sum())
    if "pi" in names:
        grid = np.asarray(settings.pi_grid, dtype=np.float64)
        pairs = [soft_pair(pi_at + 2 * samples * i) for i in range(grid.size)]
        ns, nc = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
        out |= {
            "pi_grid": list(settings.pi_grid),
            "alpha": alphas,
            "achieved_pi": achieved,
            "pi_soft_ns": ns.tolist(),
            "pi_soft_nc": nc.tolist(),
            "auc_pi_soft_ns": _trapezoid(ns, grid),
            "auc_pi_soft_nc": _trapezoid(nc, grid),
        }
    if "deletion-insertion" in names:
        steps = len(counts)
        choice = measured.label_choice[deletion_at:]
        flips = (choice != measured.reference_choice).astype(int)
        deletion, insertion = flips[:steps], flips[steps:]
        out |= {
            "predicted_id": int(record["label_ids"][measured.reference_choice]),
            "deletion_k": counts,
            "deletion_curve": deletion.tolist(),
            "insertion_curve": insertion.tolist(),
            "deletion_auc": float(deletion.mean()),
            "insertion_auc": float(insertion.mean()),
        }
    out["perturbations"] = len(specs)
    out["forward_rows"] = measured.rows
    return out


def evaluate_record(
    model, record: dict[str, Any], settings: MetricSettings | None = None, engine=None, baseline_id: int | None = None
) -> dict[str, Any]:
    """The metric record of one heatmap record, or an error record saying why its metrics are undefined.

    Raises :class:`~gradellm_cli.errors.BadInput` for a record that is not a usable heatmap record.
    ``engine`` overrides the one ``settings`` would build (tests pass a fake one; ``model`` is then unused
    unless a top-k metric is asked for). ``baseline_id``: the token Log-odds puts in (see :mod:`.topk`).
    """
    settings = settings or MetricSettings()
    check_heatmap(record)
    started = time.perf_counter()
    config = settings.config() | {"heatmap": record.get("config")}
    values: dict[str, Any] = {"target_id": record["target_id"]}
    try:
        names = applicable_metrics(record, settings)
        if any(name in PERTURBATION_METRICS for name in names):
            engine = engine or make_engine(model, record, settings)
            values |= compute_metrics(record, settings, engine)
            values["engine"] = engine.name
        values |= topk_metrics(model, record, names, settings.topk, baseline_id)
        if "wae" in names:
            values["wae"] = word_approximation_error(record)
    except MetricError as exc:
        return metric_error(record, exc.message, config)
    values["seconds"] = time.perf_counter() - started
    return metric_record(record, config, values)
