"""``gradellm evaluate`` end to end through Typer's CliRunner, on heatmap records made by the Explainer."""

from __future__ import annotations

import orjson
import pytest
import typer
from typer.testing import CliRunner

from gradellm_cli.cli import _one_line
from gradellm_cli.commands.evaluate import evaluate
from gradellm_cli.explain import ExplainSettings
from gradellm_cli.metrics import ModelPool

app = typer.Typer(pretty_exceptions_enable=False)
app.command()(_one_line(evaluate))  # as the CLI registers it: errors become one line and an exit code
FAST = ["--pi-grid", "0.3,0.7", "--samples", "1", "--device", "cpu"]


def _write(path, records):
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))


def _read(path):
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def heatmaps(smollm2):
    settings = ExplainSettings(task="sentiment")
    records = smollm2.explain("pos", {"text": "A gorgeous, witty, seductive movie."}, settings)
    records += smollm2.explain("neg", {"text": "Dull, flat and far too long."}, settings)
    zeros = records[0] | {"method": "zeros", "scores": [0.0] * len(records[0]["scores"])}
    return records + [zeros]


@pytest.fixture
def shared_model(monkeypatch, smollm2):
    """Reuse the session's SmolLM2 instead of loading it again (loading is tested once, below)."""
    monkeypatch.setattr(ModelPool, "_load", lambda self, name, dtype: smollm2.model)


def test_metric_record_per_heatmap_and_error_for_zero_scores(tmp_path, heatmaps):
    source, output = tmp_path / "heatmaps.jsonl", tmp_path / "metrics.jsonl"
    _write(source, heatmaps)
    result = CliRunner().invoke(app, ["--heatmaps", str(source), "--output", str(output), *FAST])
    assert result.exit_code == 0, result.output
    records = _read(output)
    assert [(r["id"], r["method"], r["kind"]) for r in records] == [
        ("pos", "grad-ellm", "metric"),
        ("neg", "grad-ellm", "metric"),
        ("pos", "zeros", "error"),
    ]
    metric = records[0]
    for field in (
        "delta0",
        "soft_ns",
        "soft_nc",
        "expected_kept",
        "pi_soft_ns",
        "auc_pi_soft_nc",
        "deletion_auc",
        "insertion_curve",
        "seconds",
    ):
        assert field in metric
    assert metric["config"]["pi_grid"] == [0.3, 0.7] and metric["config"]["heatmap"] == heatmaps[0]["config"]
    assert metric["step"] == 0 and metric["model"] == "smollm2" and metric["schema_version"] == 1
    assert "zero" in records[2]["error"]
    assert "1 record(s) have undefined metrics" in result.stderr

    again = CliRunner().invoke(app, ["--heatmaps", str(source), "--output", str(output), *FAST])
    assert again.exit_code == 0 and len(_read(output)) == 3  # resumed: nothing new

    other = CliRunner().invoke(app, ["--heatmaps", str(source), "--output", str(output), *FAST, "--seed", "1"])
    assert other.exit_code == 2 and "other settings" in other.stderr and len(other.stderr.strip().splitlines()) == 1


@pytest.mark.usefixtures("shared_model")
def test_malformed_line_stop_and_skip(tmp_path, heatmaps):
    source, output = tmp_path / "heatmaps.jsonl", tmp_path / "metrics.jsonl"
    source.write_bytes(orjson.dumps(heatmaps[0]) + b"\n{not json\n" + orjson.dumps(heatmaps[1]) + b"\n")
    stop = CliRunner().invoke(app, ["--heatmaps", str(source), "--output", str(output), "--metrics", "soft", "--on-error", "stop", *FAST])
    assert stop.exit_code == 2
    assert stop.stderr.strip().splitlines() == [stop.stderr.strip()]
    assert stop.stderr.startswith("gradellm: error: line 2 is not valid JSON") and "Traceback" not in stop.output
    assert [r["id"] for r in _read(output)] == ["pos"]

    skip = CliRunner().invoke(app, ["--heatmaps", str(source), "--output", str(output), "--metrics", "soft", *FAST])
    assert skip.exit_code == 5 and "gradellm: skipped: line 2 is not valid JSON" in skip.stderr
    records = _read(output)
    assert [(r["id"], r["kind"]) for r in records] == [("pos", "metric"), (None, "error"), ("neg", "metric")]
    assert records[1]["line"] == 2


@pytest.mark.usefixtures("shared_model")
def test_bad_record_names_it(tmp_path, heatmaps):
    source = tmp_path / "heatmaps.jsonl"
    _write(source, [heatmaps[0] | {"scores": [1.0]}])
    result = CliRunner().invoke(app, ["--heatmaps", str(source), "--output", "-", "--on-error", "stop", *FAST])
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == "gradellm: error: line 1: record pos: input_ids, source_mask and scores must be lists with one entry per token"
    )


@pytest.mark.usefixtures("shared_model")
def test_generation_steps_and_sequence_record(tmp_path, smollm2):
    records = smollm2.explain("gen", {"text": "The capital of France is"}, ExplainSettings(task="generate", max_new_tokens=6))
    assert len(records) == 6
    source = tmp_path / "heatmaps.jsonl"
    _write(source, records)
    result = CliRunner().invoke(app, ["--heatmaps", str(source), "--output", "-", "--metrics", "all", *FAST])
    assert result.exit_code == 0, result.output
    out = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [(r["step"], r.get("level")) for r in out] == [(0, "token"), (5, "token"), (-1, "sequence")]
    steps, sequence = out[:2], out[2]
    assert "deletion_auc" not in steps[0]  # classification only
    assert sequence["steps_evaluated"] == [0, 5]
    assert sequence["auc_pi_soft_ns"] == pytest.approx((steps[0]["auc_pi_soft_ns"] + steps[1]["auc_pi_soft_ns"]) / 2)


def test_bad_options_are_one_line(tmp_path):
    source = tmp_path / "heatmaps.jsonl"
    source.write_text("")
    for args, text in (
        (["--pi-grid", "0.5"], "pi grid"),
        (["--metrics", "nope"], "unknown metric"),
        (["--on-error", "maybe"], "--on-error"),
    ):
        result = CliRunner().invoke(app, ["--heatmaps", str(source), *args])
        assert result.exit_code == 2 and text in result.stderr and len(result.stderr.strip().splitlines()) == 1
    missing = CliRunner().invoke(app, ["--heatmaps", str(tmp_path / "absent.jsonl")])
    assert missing.exit_code == 3 and "does not exist" in missing.stderr


@pytest.mark.usefixtures("shared_model")
def test_python_api_over_a_jsonl_file(tmp_path, heatmaps):
    from gradellm_cli.metrics import MetricSettings
    from gradellm_cli.pipelines.evaluating import evaluate_jsonl

    source = tmp_path / "heatmaps.jsonl"
    _write(source, [heatmaps[1], {"schema_version": 1, "kind": "error", "id": "x", "error": "explain failed"}])
    out = list(evaluate_jsonl(str(source), MetricSettings(metrics=("soft",), samples=1), device="cpu"))
    assert [(r["id"], r["kind"]) for r in out] == [("neg", "metric")]
    assert out[0]["config"]["metrics"] == ["soft"] and "pi_soft_ns" not in out[0]


@pytest.mark.usefixtures("shared_model")
def test_resume_refuses_metrics_of_remade_heatmaps_or_other_settings(tmp_path, heatmaps):
    """Resuming keeps what --output holds only when it was made from these heatmaps with these settings."""
    source, output = tmp_path / "heatmaps.jsonl", tmp_path / "metrics.jsonl"
    _write(source, heatmaps)
    first = CliRunner().invoke(app, ["--heatmaps", str(source), "--output", str(output), "--on-error", "skip", *FAST])
    assert first.exit_code == 0, first.output
    before = output.read_bytes()
    remade = [r | {"config": r["config"] | {"ig_steps": 7}} for r in heatmaps]  # explain --overwrite, other options
    _write(source, remade)
    again = CliRunner().invoke(app, ["--heatmaps", str(source), "--output", str(output), "--on-error", "skip", *FAST])
    assert again.exit_code == 2 and "heatmaps made with other options" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and output.read_bytes() == before  # nothing written, even with skip
    fresh = CliRunner().invoke(app, ["--heatmaps", str(source), "--output", str(output), "--overwrite", *FAST])
    assert fresh.exit_code == 0, fresh.output
    assert [r["config"]["heatmap"]["ig_steps"] for r in _read(output) if r["kind"] == "metric"] == [7, 7]  # only the new ones

    only_error = tmp_path / "errors.jsonl"  # an undefined-metrics error record alone, made with seed 0
    only_error.write_bytes(b"".join(line + b"\n" for line in before.splitlines() if b'"error"' in line))
    _write(source, heatmaps[-1:])
    other = CliRunner().invoke(app, ["--heatmaps", str(source), "--output", str(only_error), *FAST, "--seed", "1"])
    assert other.exit_code == 2 and "other settings" in other.stderr
