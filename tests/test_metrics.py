"""The metric definitions, pinned: pi transform, normalisation, Hellinger, Soft-NS/NC, Deletion/Insertion,
seeding, and the batched + prefix-cached engine against the one-by-one reference on both models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from gradellm_cli.commands.options import PI_GRID_DEFAULT
from gradellm_cli.errors import BadInput
from gradellm_cli.explain import ExplainSettings
from gradellm_cli.metrics import (
    DEFAULT_PI_GRID,
    BatchedEngine,
    MetricError,
    MetricSettings,
    OneByOneEngine,
    evaluate_record,
    hellinger,
    measure,
    normalise_scores,
    parse_metrics,
    parse_pi_grid,
    pi_transform,
    sequence_record,
    solve_alpha,
    squeeze,
)
from gradellm_cli.metrics.distance import probabilities
from gradellm_cli.metrics.evaluate import soft_ns_nc
from gradellm_cli.metrics.masks import Bernoulli, draw, mask_seed, ranking, step_counts

SMALL = {"pi_grid": (0.25, 0.75), "samples": 2}
TEXT = "A great movie, I loved it! The actors were wonderful."


# -- pi transform ------------------------------------------------------------------------------


def _vectors():
    rng = np.random.default_rng(0)
    for m in (1, 3, 17, 200):
        s = rng.random(m)
        s[rng.random(m) < 0.3] = 0.0
        s[rng.random(m) < 0.2] = 1.0
        s[0] = 1.0  # normalised scores always hold a 1
        yield s
    yield np.ones(40)  # every token tied at the max
    yield np.r_[1.0, np.zeros(99)]  # one token carries everything
    yield rng.random(500) ** 8 / 1.0


@pytest.mark.parametrize("pi", DEFAULT_PI_GRID + (0.001, 0.999))
def test_pi_transform_hits_pi(pi):
    for scores in _vectors():
        scores = scores / scores.max()
        probs, alpha, achieved = pi_transform(scores, pi)
        assert alpha >= 0
        assert abs(probs.mean() - pi) <= 1e-4
        assert achieved == pytest.approx(probs.mean(), abs=1e-12)
        assert probs.max() < 1  # the top token too (the eps ceiling), so small pi are reachable


def test_pi_transform_squeeze_and_order():
    scores = np.array([0.0, 0.25, 1.0])
    assert squeeze(scores).tolist() == pytest.approx([1e-6, 1e-6 + (1 - 2e-6) * 0.25, 1 - 1e-6], abs=1e-15)
    alphas = [solve_alpha(squeeze(np.linspace(0, 1, 11)), pi)[0] for pi in (0.1, 0.5, 0.9)]
    assert alphas[0] > alphas[1] > alphas[2] > 0  # smaller pi needs a larger alpha
    probs, _, _ = pi_transform(np.linspace(0, 1, 11), 0.5)
    assert (np.diff(probs) > 0).all()  # the transform keeps the order of the scores
    assert solve_alpha(squeeze(scores), 1.0) == (0.0, 1.0)


# -- normalisation -----------------------------------------------------------------------------


def test_normalise_uses_source_tokens_only():
    scores = [100.0, 2.0, 4.0, 0.0, 7.0]
    mask = [False, True, True, True, False]
    assert normalise_scores(scores, mask).tolist() == [0.5, 1.0, 0.0]


@pytest.mark.parametrize(
    "scores, reason",
    [
        ([0.0, 0.0, 0.0], "all source scores are zero"),
        ([1.0, math.nan, 2.0], "NaN"),
        ([1.0, math.inf, 0.0], "infinite"),
        ([1.0, -0.5, 2.0], "negative"),
    ],
)
def test_normalise_errors(scores, reason):
    with pytest.raises(MetricError, match=reason):
        normalise_scores(scores, [True, True, True])


def test_normalise_no_source():
    with pytest.raises(MetricError, match="no source tokens"):
        normalise_scores([1.0, 2.0], [False, False])


# -- Hellinger ---------------------------------------------------------------------------------


def test_hellinger_closed_form():
    p, q = 0.3, 0.8
    expected = math.sqrt(1 - (math.sqrt(p * q) + math.sqrt((1 - p) * (1 - q))))
    value = hellinger(torch.tensor([p, 1 - p], dtype=torch.float64), torch.tensor([q, 1 - q], dtype=torch.float64))
    assert float(value) == pytest.approx(expected, abs=1e-15)
    assert float(hellinger(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))) == pytest.approx(1.0)
    rng = torch.Generator().manual_seed(0)
    a = probabilities(torch.randn(50, 1000, generator=rng) * 3)
    b = probabilities(torch.randn(50, 1000, generator=rng) * 3)
    distance = hellinger(a, b)
    bhattacharyya = (a * b).sqrt().sum(-1)
    assert torch.allclose(distance, (1 - bhattacharyya).clamp_min(0).sqrt(), atol=1e-12)
    assert ((distance >= 0) & (distance <= 1)).all()
    assert float(hellinger(a[0], a[0])) == 0.0


# -- a fake model: constructed cases -----------------------------------------------------------


class FakeEngine:
    """Logits that depend on which source tokens are kept, with no model.

    Label 0 wins iff token ``critical`` is kept; the rest of the distribution moves with the fraction
    of tokens kept, so every perturbation changes the distribution a little.
    """

    name = "fake"
    prefix_cached = False

    def __init__(self, m: int, critical: int | None = 0, constant: bool = False):
        self.source_count, self.hidden, self.critical, self.constant = m, 4, critical, constant

    def batch_limit(self, batch_size):
        return batch_size

    def logits(self, masks):
        rows = []
        for mask in masks:
            kept = (mask if mask.dim() == 1 else mask.all(dim=1)).double()
            row = torch.zeros(6, dtype=torch.float64)
            if not self.constant:
                row[0] = 2.0 if kept[self.critical] else 0.0
                row[2:] = kept.mean() * torch.arange(4, dtype=torch.float64)
            row[1] = 1.0
            rows.append(row.float())
        return torch.stack(rows)


def _fake_record(scores, classification=True, **fields):
    m = len(scores)
    record = {
        "schema_version": 1,
        "kind": "heatmap",
        "id": "fake-1",
        "model": "fake",
        "method": "test",
        "task": "sentiment" if classification else "generate",
        "config": {"task": "sentiment"},
        "step": 0,
        "steps": 1,
        "input_ids": list(range(m + 2)),
        "source_mask": [False] + [True] * m + [False],
        "scores": [5.0] + list(scores) + [5.0],
        "target_id": 0,
        "label_ids": [0, 1] if classification else None,
    }
    return record | fields


def test_deletion_insertion_flip_exactly_where_expected():
    # token 4 has the third-highest score; the label flips iff it is removed
    scores = [0.1, 0.9, 0.2, 0.3, 0.8, 0.05, 1.0, 0.0, 0.4, 0.15]
    assert ranking(np.array(scores))[:3].tolist() == [6, 1, 4]
    record = _fake_record(scores)
    out = evaluate_record(None, record, MetricSettings(metrics=("deletion-insertion",)), engine=FakeEngine(10, critical=4))
    assert out["kind"] == "metric"
    assert out["deletion_k"] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10]
    assert out["deletion_curve"] == [0] * 4 + [1] * 16  # flipped from the step that first removes 3 tokens
    assert out["insertion_curve"] == [1] * 4 + [0] * 16  # until the step that first restores 3 tokens
    assert out["deletion_auc"] == 0.8 and out["insertion_auc"] == 0.2
    assert out["predicted_id"] == 0


def test_step_counts_round_half_up():
    assert step_counts(20) == list(range(1, 21))
    assert step_counts(100) == [5 * j for j in range(1, 21)]
    assert step_counts(1) == [0] * 9 + [1] * 11  # j*1/20 >= 0.5 from j = 10
    assert step_counts(7)[-1] == 7 and step_counts(7)[:3] == [0, 1, 1]  # 0.35 -> 0, 0.7 -> 1, 1.05 -> 1


def test_all_ones_scores_soft_ns_1_and_soft_nc_1():
    """All-ones scores keep every token (Soft-NS = 1) and remove every token (keep prob 1 - s = 0, so
    the removal perturbation is the zero baseline: Soft-NC = Delta_0 / Delta_0 = 1)."""
    out = evaluate_record(None, _fake_record([1.0] * 6), MetricSettings(metrics=("soft",), samples=3), engine=FakeEngine(6))
    assert out["soft_ns"] == 1.0 and out["soft_nc"] == 1.0
    assert out["expected_kept"] == 6.0


def test_zero_keep_probabilities_soft_ns_0_and_soft_nc_0():
    """The other end, which normalised scores cannot reach (their max is 1), pinned on the masks: keep
    probability 0 everywhere keeps nothing (Delta = Delta_0, Soft-NS 0) and its removal perturbation
    (keep probability 1) removes nothing (Delta = 0, Soft-NC 0)."""
    engine = FakeEngine(6)
    zeros = torch.zeros(6, dtype=torch.float64)
    masks = list(draw([Bernoulli(zeros), Bernoulli(1 - zeros)], torch.Generator().manual_seed(1), "token", engine.hidden))
    assert not masks[0].any() and masks[1].all()
    measured = measure(engine, [torch.zeros(6, dtype=torch.bool), *masks])
    delta0, keep, remove = measured.hellinger
    assert delta0 > 0 and keep == delta0 and remove == 0.0
    assert soft_ns_nc(delta0, np.array([keep]), np.array([remove])) == (0.0, 0.0)


def _soft_by_hand(prob: torch.Tensor, seed: int, samples: int, critical: int, skip: int = 0) -> tuple[float, float, float]:
    """(Delta_0, Soft-NS, Soft-NC) of the fake record's keep probabilities ``prob``, from scratch: the
    same seeded draws (keep then remove, ``samples`` times, after ``skip`` draws made for something
    else) through a FakeEngine."""
    m = prob.numel()
    generator = torch.Generator().manual_seed(mask_seed(seed, "fake-1", "fake", 0))
    for _ in range(skip):
        torch.rand(m, generator=generator, dtype=torch.float64)
    masks = [torch.rand(m, generator=generator, dtype=torch.float64) < p for _ in range(samples) for p in (prob, 1 - prob)]
    engine = FakeEngine(m, critical=critical)
    reference = probabilities(engine.logits([torch.ones(m, dtype=torch.bool)]))
    distances = hellinger(probabilities(engine.logits([torch.zeros(m, dtype=torch.bool), *masks])), reference).tolist()
    delta0 = distances[0]
    ns = float(np.mean([max(0.0, delta0 - d) / delta0 for d in distances[1::2]]))
    nc = float(np.mean([d / delta0 for d in distances[2::2]]))
    return delta0, ns, nc


def test_soft_metrics_on_the_fake_model_by_hand():
    scores = [1.0, 0.5, 0.25, 0.0]
    settings = MetricSettings(metrics=("soft",), samples=2, seed=7)
    record = _fake_record(scores)
    out = evaluate_record(None, record, settings, engine=FakeEngine(4, critical=0))
    delta0, ns, nc = _soft_by_hand(torch.tensor(scores, dtype=torch.float64), seed=7, samples=2, critical=0)
    assert out["delta0"] == pytest.approx(delta0, abs=1e-12)
    assert out["soft_ns"] == pytest.approx(ns, abs=1e-12)
    assert out["soft_nc"] == pytest.approx(nc, abs=1e-12)
    assert out["expected_kept"] == 1.75


def test_pi_auc_is_the_trapezoid_over_the_grid():
    out = evaluate_record(
        None, _fake_record([1.0, 0.6, 0.3, 0.1, 0.0]), MetricSettings(metrics=("pi",), pi_grid=(0.2, 0.5, 0.6)), engine=FakeEngine(5)
    )
    y, x = out["pi_soft_ns"], out["pi_grid"]
    assert out["auc_pi_soft_ns"] == pytest.approx(0.5 * (y[0] + y[1]) * 0.3 + 0.5 * (y[1] + y[2]) * 0.1, abs=1e-12)
    assert x == [0.2, 0.5, 0.6] and len(out["alpha"]) == 3
    assert all(abs(a - p) <= 1e-4 for a, p in zip(out["achieved_pi"], x))


def test_pi_point_by_hand_uses_the_transformed_scores():
    """One point of the pi curves recomputed from scratch: keep probabilities (eps + (1 - 2 eps) s)**alpha
    with mean pi, the same seeded draws (after the raw Soft-NS/NC draws, made even with --metrics pi),
    Soft-NS/NC at that pi. Raw scores in place of the transformed ones, or another pi's draws, would
    give other values."""
    scores, samples, pi = [1.0, 0.6, 0.3, 0.1, 0.0], 2, 0.35
    settings = MetricSettings(metrics=("pi",), pi_grid=(pi, 0.5), samples=samples, seed=3)
    out = evaluate_record(None, _fake_record(scores), settings, engine=FakeEngine(5, critical=1))
    squeezed = 1e-6 + (1 - 2e-6) * np.array(scores)
    low, high = 1e-6, 1e6  # bisection for alpha with mean(squeezed**alpha) = pi, independent of solve_alpha
    for _ in range(200):
        alpha = math.sqrt(low * high)
        low, high = (alpha, high) if np.mean(squeezed**alpha) > pi else (low, alpha)
    prob = torch.from_numpy(squeezed**alpha)
    assert float(prob.mean()) == pytest.approx(pi, abs=1e-4)
    _, ns, nc = _soft_by_hand(prob, seed=3, samples=samples, critical=1, skip=2 * samples)
    assert out["alpha"][0] == pytest.approx(alpha, rel=1e-3)
    assert out["pi_soft_ns"][0] == pytest.approx(ns, abs=1e-12)
    assert out["pi_soft_nc"][0] == pytest.approx(nc, abs=1e-12)


def test_each_metric_gets_the_same_draws_whatever_metrics_are_asked_for():
    """--metrics pi measures the pi masks of --metrics all (the raw draws are made and dropped), so runs
    with other metric lists compare; and it measures nothing it does not report."""
    record = _fake_record([0.3, 1.0, 0.2, 0.7, 0.05, 0.5])
    full = evaluate_record(None, record, MetricSettings(**SMALL), engine=FakeEngine(6))
    for metrics, fields in ((("pi",), ("pi_soft_ns", "pi_soft_nc", "auc_pi_soft_ns")), (("soft",), ("soft_ns", "soft_nc")),
                            (("deletion-insertion",), ("deletion_curve", "insertion_curve"))):
        alone = evaluate_record(None, record, MetricSettings(metrics=metrics, **SMALL), engine=FakeEngine(6))
        assert {field: alone[field] for field in fields} == {field: full[field] for field in fields}
    pi_only = evaluate_record(None, record, MetricSettings(metrics=("pi",), **SMALL), engine=FakeEngine(6))
    assert pi_only["perturbations"] == 1 + 2 * SMALL["samples"] * len(SMALL["pi_grid"])


def test_undefined_metrics_give_error_records():
    settings = MetricSettings(metrics=("soft", "pi"), **SMALL)
    zeros = evaluate_record(None, _fake_record([0.0, 0.0, 0.0]), settings, engine=FakeEngine(3))
    assert zeros["kind"] == "error" and "zero" in zeros["error"]
    assert {"id", "model", "method", "step", "schema_version"} <= zeros.keys()
    # the settings it was evaluated with, as in a metric record, so reports can tell configurations apart
    assert zeros["config"] == settings.config() | {"heatmap": _fake_record([1.0]).get("config")}
    assert zeros["config"]["pi_squeeze"] == "eps + (1 - 2 eps) s"
    flat = evaluate_record(None, _fake_record([0.3, 1.0, 0.2]), settings, engine=FakeEngine(3, constant=True))
    assert flat["kind"] == "error" and "Delta_0" in flat["error"]
    generation = evaluate_record(
        None, _fake_record([0.3, 1.0], classification=False), MetricSettings(metrics=("deletion-insertion",)), engine=FakeEngine(2)
    )
    assert generation["kind"] == "error" and "classification" in generation["error"]
    # with other metrics asked for, a generation record simply has no Deletion/Insertion fields
    both = evaluate_record(None, _fake_record([0.3, 1.0], classification=False), MetricSettings(**SMALL), engine=FakeEngine(2))
    assert both["kind"] == "metric" and "deletion_auc" not in both and "auc_pi_soft_nc" in both


def test_malformed_heatmap_is_bad_input():
    with pytest.raises(BadInput, match="one entry per token"):
        evaluate_record(None, _fake_record([1.0]) | {"scores": [1.0]}, engine=FakeEngine(1))
    with pytest.raises(BadInput, match="not a heatmap"):
        evaluate_record(None, {"kind": "metric", "id": "x"}, engine=FakeEngine(1))


def test_element_masks_draw_per_element():
    prob = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    (mask,) = draw([Bernoulli(prob)], torch.Generator().manual_seed(0), "element", 1000)
    assert mask.shape == (3, 1000)
    assert not mask[0].any() and mask[2].all() and 400 < int(mask[1].sum()) < 600


def test_masks_do_not_depend_on_batch_size_or_method():
    record = _fake_record([1.0, 0.6, 0.3, 0.1, 0.0])
    outs = [
        evaluate_record(None, record | {"method": method}, MetricSettings(batch_size=size, **SMALL), engine=FakeEngine(5))
        for method, size in (("a", 1), ("a", 3), ("b", 32))
    ]
    for other in outs[1:]:
        for key in ("soft_ns", "soft_nc", "pi_soft_ns", "pi_soft_nc", "deletion_curve"):
            assert other[key] == outs[0][key]


# -- generation: sequence-level records --------------------------------------------------------


def test_sequence_record_averages_evaluated_steps():
    def step(n, ns, curve):
        return {
            "kind": "metric",
            "step": n,
            "task": "generate",
            "config": {},
            "delta0": 0.5,
            "soft_ns": ns,
            "soft_nc": 1.0,
            "pi_grid": [0.2, 0.4],
            "pi_soft_ns": curve,
            "pi_soft_nc": curve,
            "auc_pi_soft_ns": sum(curve),
            "seconds": 1.0,
        }

    steps = [step(0, 0.2, [0.0, 1.0]), step(5, 0.4, [1.0, 1.0]), {"kind": "error", "step": 10, "error": "Delta_0 = 0"}]
    out = sequence_record(("g", "smollm2", "grad-ellm"), steps)
    assert out["kind"] == "metric" and out["step"] == -1 and out["level"] == "sequence"
    assert out["steps_evaluated"] == [0, 5] and out["steps_failed"] == [10]
    assert out["soft_ns"] == pytest.approx(0.3) and out["pi_soft_ns"] == [0.5, 1.0] and out["auc_pi_soft_ns"] == 1.5
    failed = sequence_record(("g", "smollm2", "grad-ellm"), steps[2:])
    assert failed["kind"] == "error" and "Delta_0" in failed["error"] and "config" not in failed
    configured = sequence_record(("g", "smollm2", "grad-ellm"), [steps[2] | {"config": {"samples": 3}}])
    assert configured["kind"] == "error" and configured["config"] == {"samples": 3}


# -- settings ----------------------------------------------------------------------------------


def test_parse_settings():
    assert parse_pi_grid("0.05:0.95:0.05") == DEFAULT_PI_GRID
    assert parse_pi_grid(PI_GRID_DEFAULT) == MetricSettings().pi_grid  # the CLI's --pi-grid default is the settings' grid
    assert parse_pi_grid("0.1, 0.5,0.9") == (0.1, 0.5, 0.9)
    for bad in ("0.5", "0:1:0.5", "0.5,0.2", "a:b:c", "0.1:0.9:0"):
        with pytest.raises(BadInput):
            parse_pi_grid(bad)
    assert parse_metrics("all") == ("soft", "pi", "deletion-insertion", "log-odds", "comprehensiveness", "sufficiency", "wae")
    assert parse_metrics("deletion-insertion,soft") == ("soft", "deletion-insertion")
    with pytest.raises(BadInput, match="unknown metric"):
        parse_metrics("soft,completeness")
    with pytest.raises(BadInput):
        MetricSettings(mask_unit="word")


# -- real models -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_records(explainer):
    return explainer.explain("real-1", {"text": TEXT}, ExplainSettings(task="sentiment"))


def _close(a: dict, b: dict, tol: float) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key in ("seconds", "engine", "forward_rows"):
            continue
        if key in ("deletion_curve", "insertion_curve", "deletion_k", "predicted_id", "pi_grid", "config"):
            assert a[key] == b[key], key
        elif isinstance(a[key], (float, list)):
            assert np.allclose(np.asarray(a[key], dtype=float), np.asarray(b[key], dtype=float), rtol=0, atol=tol), key
        else:
            assert a[key] == b[key], key


def test_batched_cached_equals_one_by_one(explainer, real_records):
    """Every metric on SmolLM2; on Gemma-3 (slower on CPU) the soft and pi masks, which exercise the same engine."""
    record = real_records[0]
    metrics = ("soft", "pi", "deletion-insertion") if explainer.model_name == "smollm2" else ("soft", "pi")
    settings = MetricSettings(metrics=metrics, pi_grid=(0.1, 0.5, 0.9), samples=2, batch_size=8)
    fast = evaluate_record(explainer.model, record, settings)
    slow = evaluate_record(
        explainer.model, record, MetricSettings(metrics=metrics, pi_grid=(0.1, 0.5, 0.9), samples=2, engine="one-by-one")
    )
    assert fast["kind"] == slow["kind"] == "metric"
    assert fast["engine"] == "batched+prefix-cache" and slow["engine"] == "one-by-one"
    assert fast["forward_rows"] < slow["forward_rows"] == fast["perturbations"]
    _close(fast, slow, 1e-5)


def test_batched_cached_equals_one_by_one_element_masks(smollm2):
    record = smollm2.explain("real-2", {"text": "Dull and far too long."}, ExplainSettings(task="sentiment"))[0]
    make = lambda engine: MetricSettings(metrics=("soft", "pi"), mask_unit="element", engine=engine, **SMALL)  # noqa: E731
    _close(evaluate_record(smollm2.model, record, make("batched")), evaluate_record(smollm2.model, record, make("one-by-one")), 1e-5)


def test_same_seed_bit_identical(smollm2):
    record = smollm2.explain("real-3", {"text": TEXT}, ExplainSettings(task="sentiment"))[0]
    settings = MetricSettings(metrics=("soft", "pi"), **SMALL)
    first, second = (evaluate_record(smollm2.model, record, settings) for _ in range(2))
    first.pop("seconds"), second.pop("seconds")
    assert json.dumps(first) == json.dumps(second)
    other = evaluate_record(smollm2.model, record, MetricSettings(metrics=("soft", "pi"), seed=1, **SMALL))
    assert other["pi_soft_ns"] != first["pi_soft_ns"] or other["soft_ns"] != first["soft_ns"]


def test_all_ones_scores_on_a_real_record(smollm2):
    record = smollm2.explain("real-4", {"text": TEXT}, ExplainSettings(task="sentiment"))[0]
    record = record | {"scores": [1.0] * len(record["scores"])}
    out = evaluate_record(smollm2.model, record, MetricSettings(metrics=("soft",)))
    assert out["soft_ns"] == 1.0 and out["soft_nc"] == 1.0 and out["forward_rows"] == 1  # only the zero baseline runs
    assert out["expected_kept"] == sum(record["source_mask"])


def test_sliding_window_prefix_cache_is_exact(gemma3):
    """Gemma-3's sliding layers (window 512) keep only the last 511 prefix positions in the cache: a
    prefix longer than the window must still give the same distributions as the full forward pass."""
    window = gemma3.model.config.sliding_window
    ids = gemma3.tokenizer(" ".join(["the film was long and the plot was thin"] * 80))["input_ids"][: window + 40]
    for start, stop in ((window + 20, window + 35), (5, window + 30)):
        mask = [start <= i < stop for i in range(len(ids))]
        masks = [torch.rand(stop - start, generator=torch.Generator().manual_seed(i)) < 0.5 for i in range(2)]
        engine = BatchedEngine(gemma3.model, ids, mask)
        assert engine.prefix_cached and engine.start == start
        fast, slow = engine.logits(masks), OneByOneEngine(gemma3.model, ids, mask).logits(masks)
        assert float(hellinger(probabilities(fast), probabilities(slow)).max()) < 1e-5


def test_the_explained_row_is_never_perturbed_whatever_the_model(gemma3, smollm2):
    """One rule: the record's last position (whose next-token prediction is explained) is never a
    perturbed source token. Behind SmolLM2's chat template it is template anyway; in Gemma-3's plain
    prompt it is the user's last token at a generation's first step, and is left out there too."""
    from gradellm_cli.metrics.normalise import source_positions

    assert source_positions([False, True, True, True]).tolist() == [1, 2]
    for explainer, last_is_source in ((gemma3, True), (smollm2, False)):
        settings = ExplainSettings(task="generate", max_new_tokens=2, methods=["random"])
        first = explainer.explain("g", {"text": "The cat sat on the"}, settings)[0]
        assert first["source_mask"][-1] is last_is_source
        metric = evaluate_record(explainer.model, first, MetricSettings(metrics=("soft",), samples=1))
        assert metric["kind"] == "metric"
        assert metric["source_tokens"] == sum(first["source_mask"]) - (1 if last_is_source else 0)
