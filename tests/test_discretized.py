"""UDIG and DIG: their paths, their integral, and what the records say about both, on both embedded models."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients

sys.path.insert(0, str(Path(__file__).parent))
import reference_dig as ref  # noqa: E402

from gradellm_cli.errors import BadInput  # noqa: E402
from gradellm_cli.explain import ExplainSettings
from gradellm_cli.methods import MethodOptions, get_method, method_names
from gradellm_cli.methods.base import input_embeddings
from gradellm_cli.methods.captum_common import TargetScore
from gradellm_cli.methods.discretized import (
    PathSettings,
    baseline_token_id,
    monotone_path,
    moving_positions,
    path_points,
    paths_for,
    vocabulary,
    word_approximation_error,
)

TEXT = "a gorgeous, witty, seductive movie."
SMALL = PathSettings(steps=6, neighbours=8)


@pytest.fixture(scope="module")
def prepared(explainer):
    return explainer.prepare("dig-test", {"text": TEXT}, ExplainSettings(task="sentiment"))


def source_words(prepared) -> list[int]:
    moving = moving_positions(prepared.targets, 0)
    return sorted({int(prepared.targets.input_ids[p]) for p in torch.nonzero(moving).flatten()})


def test_both_methods_are_registered():
    assert {"udig", "dig"} <= set(method_names())


def test_nearest_rows_are_exact(smollm2):
    """The batched search finds what brute force finds, and a point that is a row is at distance 0."""
    vocab = vocabulary(smollm2.model)
    rows = vocab.rows([1500, 500, 5000])  # ordinary words (a few special tokens share one row)
    points = torch.cat([rows, rows + 0.01 * torch.randn(rows.shape, generator=torch.Generator().manual_seed(0))])
    ids, distances = vocab.nearest(points, 4)
    brute = torch.cdist(points.double(), vocab.rows(torch.arange(vocab.size)).double())
    torch.testing.assert_close(distances.double(), brute.topk(4, largest=False).values, rtol=1e-5, atol=1e-6)
    assert ids[:3, 0].tolist() == [1500, 500, 5000] and distances[:3, 0].abs().max() == 0
    assert word_approximation_error(vocab, rows) == 0.0


@pytest.mark.parametrize("kind", ["udig", "dig"])
@pytest.mark.parametrize("strategy", ["greedy", "maxcount"])
def test_paths_are_monotone_from_the_baseline_to_the_word(explainer, prepared, kind, strategy):
    """Every path starts at the baseline, ends at the word, and moves one way in every dimension; its
    interior anchors are vocabulary rows, neither the word nor (until the path gives out) the baseline."""
    vocab = vocabulary(explainer.model)
    baseline = baseline_token_id(explainer.tokenizer, None)
    settings = PathSettings(steps=6, neighbours=8, strategy=strategy, upscale=1)
    words = source_words(prepared)
    for word, path in paths_for(vocab, kind, words, baseline, settings).items():
        points = path.points
        assert points.shape[0] == settings.points == 15
        b, w = vocab.rows([baseline, word]).cpu()
        torch.testing.assert_close(points[0], b, rtol=0, atol=0)
        torch.testing.assert_close(points[-1], w, rtol=0, atol=0)
        direction = torch.sign(w - b)
        assert bool(((points[1:] - points[:-1]) * direction >= 0).all())
        assert bool((torch.minimum(b, w) <= points).all() and (points <= torch.maximum(b, w)).all())
        assert len(path.anchors) == 6 and word not in path.anchors
        interior = [a for a in path.anchors if a != baseline]
        assert len(set(interior)) == len(interior)
        first_baseline = path.anchors.index(baseline) if baseline in path.anchors else len(path.anchors)
        assert all(a == baseline for a in path.anchors[first_baseline:])
        model_rows = input_embeddings(explainer.model, torch.tensor(interior or [word]))[0].detach().float().cpu()
        torch.testing.assert_close(vocab.rows(interior or [word]).cpu(), model_rows)


@pytest.mark.parametrize("kind", ["udig", "dig"])
@pytest.mark.parametrize("strategy", ["greedy", "maxcount"])
def test_anchors_and_points_equal_the_slow_reference(smollm2, kind, strategy):
    """Anchors and path points against NumPy float64 with explicit loops (SmolLM2: a brute-force search
    over Gemma-3's 262k rows per point would take minutes)."""
    vocab = vocabulary(smollm2.model)
    table = vocab.rows(torch.arange(vocab.size)).double().numpy()
    baseline = baseline_token_id(smollm2.tokenizer, None)
    settings = PathSettings(steps=5, neighbours=6, strategy=strategy)
    words = source_words(smollm2.prepare("dig-test", {"text": TEXT}, ExplainSettings(task="sentiment")))[:4]
    ours = paths_for(vocab, kind, words, baseline, settings)
    for word in words:
        expected = ref.anchors(table, kind, word, baseline, settings.steps, settings.neighbours, strategy)
        assert ours[word].anchors == expected
        points = ref.path_points(table, word, baseline, expected, settings.steps)
        np.testing.assert_allclose(ours[word].points.double().numpy(), points, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def double_model(explainer):
    """The model in float64: batched and one-at-a-time passes then agree far below 1e-5, so the
    comparison tests the integral, not float32 kernels (which move f by about 1e-5 between shapes)."""
    return copy.deepcopy(explainer.model).double()


@pytest.mark.parametrize("kind", ["udig", "dig"])
def test_the_integral_equals_the_slow_reference(explainer, prepared, double_model, kind):
    """Batched path points against one plain forward+backward per point, segment by segment: to 1e-5."""
    targets = prepared.targets
    result = get_method(kind).attribute_with_details(double_model, targets, MethodOptions(dig_steps=4, neighbours=6))
    baseline = baseline_token_id(explainer.tokenizer, None)
    vocab = vocabulary(double_model)
    moving = moving_positions(targets, 0)
    words = sorted({int(targets.input_ids[p]) for p in torch.nonzero(moving).flatten()})
    paths = paths_for(vocab, kind, words, baseline, PathSettings(steps=4, neighbours=6))
    embeddings = input_embeddings(double_model, targets.input_ids)[0].detach().float()
    by_position = {int(p): paths[int(targets.input_ids[p])].points.double().numpy() for p in torch.nonzero(moving).flatten()}
    raw, values = ref.integrate(double_model, embeddings, by_position, int(targets.target_ids[0]))
    expected = raw.norm(dim=-1)
    torch.testing.assert_close(result.scores[0], expected, rtol=1e-5, atol=1e-5 * float(expected.max()))
    details = result.details[0]
    assert details["f_input"] == pytest.approx(values[-1], rel=1e-5)
    assert details["f_baseline"] == pytest.approx(values[0], rel=1e-5)
    assert details["completeness_gap"] == pytest.approx(float(raw.sum()) - (values[-1] - values[0]), rel=1e-5, abs=1e-9)
    assert details["f_input"] == pytest.approx(prepared.target_probs[0], rel=1e-4)
    assert bool((result.scores[0][~moving] == 0).all())


def test_a_straight_path_is_a_left_riemann_sum_of_integrated_gradients(smollm2):
    """With the anchors replaced by evenly spaced points of the straight line (the test hook), the
    integral is integrated gradients' left Riemann sum over the same points (Captum's, independent)."""
    prepared = smollm2.prepare("dig-test", {"text": TEXT}, ExplainSettings(task="sentiment"))
    targets, model = prepared.targets, smollm2.model
    vocab = vocabulary(model)
    baseline = baseline_token_id(smollm2.tokenizer, None)
    settings = PathSettings(steps=7)
    moving = moving_positions(targets, 0)
    words = sorted({int(targets.input_ids[p]) for p in torch.nonzero(moving).flatten()})
    points = path_points(model, targets.input_ids, moving, paths_for(vocab, "straight", words, baseline, settings))
    from gradellm_cli.methods.discretized import integrate

    raw, _ = integrate(model, points, int(targets.target_ids[0]), "probability", 16)
    embeddings = input_embeddings(model, targets.input_ids).detach()
    baselines = embeddings.clone()
    baselines[0, moving] = vocab.rows([baseline])[0]
    captum = IntegratedGradients(TargetScore(model, int(targets.target_ids[0])))
    expected = captum.attribute(embeddings, baselines=baselines, n_steps=settings.points - 1, method="riemann_left")[0]
    torch.testing.assert_close(raw, expected.float(), rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


def test_records_carry_the_completeness_gap_and_the_word_approximation_error(smollm2):
    settings = ExplainSettings(task="sentiment", methods=["udig"], options=MethodOptions(dig_steps=3, neighbours=4))
    (record,) = smollm2.explain("r", {"text": "a fine film"}, settings)
    details = record["details"]
    assert set(details) == {"baseline_id", "f_input", "f_baseline", "completeness_gap", "wae"}
    assert details["f_input"] == pytest.approx(record["target_prob"], rel=1e-5)
    assert details["wae"] > 0
    wanted = {"dig_steps": 3, "neighbours": 4, "strategy": "greedy", "upscale": 0, "baseline_token": "auto", "target_fn": "probability"}
    assert {key: record["config"][key] for key in wanted} == wanted


def test_monotone_rows_make_a_path_of_exact_rows_with_no_approximation_error(smollm2):
    """A path whose anchors need no monotonising is made of vocabulary rows exactly: WAE 0."""
    vocab = vocabulary(smollm2.model)
    base, word = vocab.rows([0]).cpu()[0], vocab.rows([1]).cpu()[0]
    # rows lying between the two in every dimension would be anchors as they are; build that case directly
    path = monotone_path(vocab, 1, 0, [1, 0], PathSettings(steps=2))
    assert word_approximation_error(vocab, path) == 0.0
    torch.testing.assert_close(path[0], base)
    torch.testing.assert_close(path[-1], word)


def test_bad_options_are_one_line_errors(smollm2):
    with pytest.raises(BadInput, match="`strategy`"):
        PathSettings(strategy="random")
    with pytest.raises(BadInput, match="`dig_steps`"):
        PathSettings(steps=0)
    with pytest.raises(BadInput, match="not one token"):
        baseline_token_id(smollm2.tokenizer, "no such token here at all")
    assert baseline_token_id(smollm2.tokenizer, "<|endoftext|>") == 0
    assert baseline_token_id(smollm2.tokenizer, None) == smollm2.tokenizer.unk_token_id


@pytest.mark.parametrize("kind", ["udig", "dig"])
def test_contract_at_every_generation_step(explainer, kind):
    """Shape, finite, zero after each target and on everything but the moving source tokens, at every step."""
    prepared = explainer.prepare("gen", {"text": "The capital of France is"}, ExplainSettings(task="generate", max_new_tokens=2))
    targets = prepared.targets
    result = get_method(kind).attribute_with_details(explainer.model, targets, MethodOptions(dig_steps=3, neighbours=4))
    assert result.scores.shape == (targets.steps, targets.input_ids.numel()) and torch.isfinite(result.scores).all()
    assert len(result.details) == targets.steps
    for step in range(targets.steps):
        moving = torch.zeros(targets.input_ids.numel(), dtype=torch.bool)
        moving[: int(targets.positions[step]) + 1] = moving_positions(targets, step)
        assert (result.scores[step][~moving] == 0).all() and result.scores[step][moving].abs().sum() > 0
