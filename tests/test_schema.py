"""The one record schema: builders, the checks every reader uses, and every writer's output validated."""

from __future__ import annotations

import orjson
import pytest

from gradellm_cli.errors import BadInput
from gradellm_cli.explain import ExplainSettings
from gradellm_cli.metrics import Evaluator, MetricSettings, ModelPool
from gradellm_cli.pipelines import evaluate_to, explain_to, jsonl_inputs, read_heatmaps, text_input
from gradellm_cli.schema import (
    ERROR,
    HEATMAP,
    METRIC,
    ErrorRecord,
    HeatmapRecord,
    MetricRecord,
    error_record,
    heatmap_record,
    metric_record,
    not_a_record,
    validate,
)


def _heatmap(**changes) -> dict:
    fields = dict(record_id="r1", model="smollm2", method="random", config={"task": "sentiment"}, task="sentiment", step=0,
                  steps=1, prompt_length=3, input_ids=[1, 2, 3], tokens=["a", "b", "c"], source_mask=[False, True, False],
                  target_id=7, target_token="x", target_logit=1.0, target_prob=0.5, scores=[0.0, 1.0, 0.0], seconds=0.1,
                  label_ids=[7, 8], label_words=["x", "y"])
    return heatmap_record(**(fields | changes))


def test_records_round_trip_through_their_classes_unchanged():
    heatmap = {"dataset": "sst2", **_heatmap(details={"wae": 0.0})}
    assert list(heatmap)[:3] == ["dataset", "schema_version", "kind"]
    assert HeatmapRecord.from_dict(heatmap).to_dict() == heatmap
    assert list(HeatmapRecord.from_dict(heatmap).to_dict()) == list(heatmap)  # field order too
    metric = metric_record(heatmap, {"samples": 1}, {"soft_ns": 0.25})
    assert validate(metric) == METRIC and MetricRecord.from_dict(metric).to_dict() == metric
    error = error_record(record_id="r2", reason="field 'text' is empty", line=4)
    assert validate(error) == ERROR and ErrorRecord.from_dict(error).to_dict() == error


def test_a_record_without_kind_is_refused_by_every_reader_with_one_rule(tmp_path):
    plain = {"id": "r1", "text": "a data record"}
    assert "no 'kind' field" in not_a_record(plain)
    with pytest.raises(BadInput, match="no 'kind' field"):
        validate(plain)
    path = tmp_path / "data.jsonl"
    path.write_bytes(orjson.dumps(plain) + b"\n")
    with pytest.raises(BadInput, match="no 'kind' field"):  # render's reader
        list(read_heatmaps(str(path)))
    evaluator = Evaluator(MetricSettings(metrics=("soft",)), ModelPool("cpu", loader=lambda *a: None))
    summary = evaluate_to(tmp_path / "m.jsonl", path, evaluator)  # evaluate's reader: the line is skipped with the same words
    assert summary.skipped == 1 and "no 'kind' field" in str(summary.errors[0])


@pytest.mark.parametrize(
    "change, words",
    [
        ({"scores": [0.0, 1.0]}, "one entry per token"),
        ({"step": -1}, "non-negative"),
        ({"scores": [0.0, float("nan"), 0.0]}, "finite"),
        ({"label_ids": [7]}, "at least two"),
        ({"schema_version": 9}, "schema_version"),
        ({"source_mask": [0, 1, 0]}, "true/false"),
    ],
)
def test_a_broken_heatmap_record_is_refused_naming_what_is_wrong(change, words):
    with pytest.raises(BadInput, match=words):
        validate(_heatmap() | change)


def test_builders_refuse_lists_of_different_lengths():
    with pytest.raises(ValueError, match="one entry per token"):
        _heatmap(tokens=["a"])


def test_metric_levels_and_error_reasons_are_checked():
    heatmap = _heatmap()
    with pytest.raises(BadInput, match="sequence-level"):
        validate(metric_record(heatmap, None, {}, level="sequence"))  # step 0 is not a sequence record's step
    with pytest.raises(BadInput, match="reason"):
        validate(error_record(record_id="r1", reason=""))


def _lines(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def test_every_record_explain_and_evaluate_write_validates(tmp_path, smollm2):
    settings = ExplainSettings(task=None, methods=["random", "saliency"])
    heatmaps = tmp_path / "heatmaps.jsonl"
    summary = explain_to(heatmaps, text_input("The capital of France is", " Paris, a city on the Seine."), settings, smollm2)
    assert summary.ran == 1
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_bytes(b'{"id": "c1", "text": "a witty film."}\n{broken\n')
    summary = explain_to(heatmaps, jsonl_inputs(str(inputs), settings), settings, smollm2)
    assert summary.ran == 1 and summary.skipped == 1
    written = _lines(heatmaps)
    assert {r["kind"] for r in written} == {HEATMAP} and all(validate(r) == HEATMAP for r in written)
    zero = dict(written[-1], id="all-zero", scores=[0.0] * len(written[-1]["scores"]))  # undefined metrics: an error record
    with heatmaps.open("ab") as handle:
        handle.write(orjson.dumps(zero) + b"\n{broken\n")
    metrics = tmp_path / "metrics.jsonl"
    evaluator = Evaluator(MetricSettings(metrics=("soft",), samples=1), ModelPool("cpu", loader=lambda name, dtype, device: smollm2.model))
    summary = evaluate_to(metrics, heatmaps, evaluator)
    assert summary.skipped == 1 and summary.undefined >= 1
    out = _lines(metrics)
    kinds = {(r["kind"], r.get("level"), "line" in r) for r in out}
    assert ("metric", "token", False) in kinds and ("metric", "sequence", False) in kinds  # steps, and the sequence record
    assert ("error", None, True) in kinds and ("error", None, False) in kinds  # a skipped line; undefined metrics
    for record in out:
        validate(record)


def test_a_sweep_failure_record_validates(monkeypatch):
    from gradellm_cli.sweep import runner

    committed = []

    class Store:
        def commit(self, unit, heatmaps, metrics, failed=False):
            committed.extend(heatmaps)

    monkeypatch.setattr("builtins.print", lambda *a, **k: None)
    runner._commit_failure(Store(), ("sst2", "smollm2", "random", "r9"), "input too long", runner.Outcome())
    (record,) = committed
    assert validate(record) == ERROR and record["dataset"] == "sst2" and record["step"] is None
