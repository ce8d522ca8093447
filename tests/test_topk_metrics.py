"""Log-odds, Comprehensiveness, Sufficiency and WAE against slow one-perturbation references."""

from __future__ import annotations

import math

import pytest
import torch

from gradellm_cli.errors import BadInput
from gradellm_cli.explain import ExplainSettings
from gradellm_cli.methods import MethodOptions
from gradellm_cli.metrics import MetricSettings, evaluate_record, parse_metrics, sequence_record
from gradellm_cli.metrics.topk import top_positions

TEXT = "a gorgeous, witty, seductive movie that never lets go."


def record_with(explainer, scores_of=None, task="sentiment", **settings) -> dict:
    """A real heatmap record (random scores), optionally with scores replaced."""
    options = ExplainSettings(task=task, methods=["random"], options=MethodOptions(), **settings)
    record = explainer.explain("topk", {"text": TEXT}, options)[0]
    if scores_of is not None:
        record["scores"] = [scores_of(i) for i in range(len(record["scores"]))]
    return record


@torch.inference_mode()
def probability(model, ids: list[int], target: int) -> float:
    """p(target) after ``ids``, by a plain model call on token ids (the reference's own route)."""
    logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].float()
    return float(torch.softmax(logits, dim=-1)[target])


def test_top_positions_take_the_floor_of_the_share_and_break_ties_by_position():
    record = {"source_mask": [False] + [True] * 10 + [False], "scores": [9.0] + [1, 5, 5, 2, 0, 0, 3, 0, 0, 0] + [9.0]}
    assert top_positions(record, 0.2).tolist() == [2, 3]  # floor(10 * 0.2) = 2; the tie at 5 goes to the earlier
    assert top_positions(record, 0.35).tolist() == [2, 3, 7]
    assert top_positions(record, 0.05).tolist() == []


def test_each_metric_equals_a_one_perturbation_reference(explainer):
    """Token-id perturbations and plain model calls, one per metric, against the embedding route."""
    record = record_with(explainer, scores_of=lambda i: float((7 * i) % 11))
    settings = MetricSettings(metrics=("log-odds", "comprehensiveness", "sufficiency"), topk=0.3)
    tokenizer = explainer.tokenizer
    baseline = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else tokenizer.unk_token_id
    got = evaluate_record(explainer.model, record, settings, baseline_id=baseline)
    ids, target = record["input_ids"], record["target_id"]
    source = [i for i, flag in enumerate(record["source_mask"][:-1]) if flag]
    ranked = sorted(source, key=lambda i: (-record["scores"][i], i))
    top = set(ranked[: int(len(source) * 0.3 + 1e-9)])
    assert got["topk_tokens"] == len(top) > 0
    p = probability(explainer.model, ids, target)
    replaced = [baseline if i in top else t for i, t in enumerate(ids)]
    deleted = [t for i, t in enumerate(ids) if i not in top]
    kept = [t for i, t in enumerate(ids) if i in top or i not in source]
    assert got["log_odds"] == pytest.approx(math.log(probability(explainer.model, replaced, target)) - math.log(p), abs=1e-4)
    assert got["comprehensiveness"] == pytest.approx(p - probability(explainer.model, deleted, target), abs=1e-5)
    assert got["sufficiency"] == pytest.approx(p - probability(explainer.model, kept, target), abs=1e-5)
    assert got["config"]["topk"] == 0.3 and "engine" not in got  # no perturbation engine was needed


def test_too_few_source_tokens_perturb_nothing_and_say_so(smollm2):
    record = record_with(smollm2)
    record["source_mask"] = [False] * (len(record["source_mask"]) - 4) + [True] * 3 + [False]
    got = evaluate_record(smollm2.model, record, MetricSettings(metrics=("log-odds", "comprehensiveness", "sufficiency")),
                          baseline_id=0)
    assert got["topk_tokens"] == 0 and got["log_odds"] == got["comprehensiveness"] == got["sufficiency"] == 0.0


def test_wae_comes_from_the_path_and_is_undefined_without_one(smollm2):
    record = record_with(smollm2)
    settings = MetricSettings(metrics=("wae",))
    assert evaluate_record(smollm2.model, record, settings)["kind"] == "error"
    record["details"] = {"wae": 0.25}
    assert evaluate_record(smollm2.model, record, settings)["wae"] == 0.25
    both = evaluate_record(smollm2.model, {**record, "details": None}, MetricSettings(metrics=("wae", "comprehensiveness")))
    assert both["kind"] == "metric" and "wae" not in both and "comprehensiveness" in both


def test_sequence_records_average_the_new_metrics():
    steps = [{"kind": "metric", "step": s, "task": "generate", "config": {}, "log_odds": v, "comprehensiveness": 2 * v,
              "sufficiency": -v, "topk_tokens": 2, "wae": 1.0} for s, v in ((0, 1.0), (5, 3.0))]
    out = sequence_record(("x", "smollm2", "udig"), steps)
    assert (out["log_odds"], out["comprehensiveness"], out["sufficiency"], out["wae"]) == (2.0, 4.0, -2.0, 1.0)


def test_metric_names_and_bad_settings():
    assert parse_metrics("all")[-4:] == ("log-odds", "comprehensiveness", "sufficiency", "wae")
    assert parse_metrics("sufficiency,log-odds") == ("log-odds", "sufficiency")
    with pytest.raises(BadInput, match="`topk`"):
        MetricSettings(topk=0)
    with pytest.raises(BadInput, match="unknown metric"):
        parse_metrics("log_odds")


def test_a_data_record_given_to_evaluate_is_named_as_such():
    from gradellm_cli.schema import check_heatmap

    with pytest.raises(BadInput, match="no 'kind' field.*a data file"):
        check_heatmap({"id": "sst2-test-1", "text": "a fine film", "label": 1})
    with pytest.raises(BadInput, match="is a 'metric' record"):
        check_heatmap({"id": "x", "kind": "metric"})
