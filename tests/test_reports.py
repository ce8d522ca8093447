"""Reports over metric records (``gradellm_cli.reports``, ``gradellm render --table/--plot``).

Metric records are synthetic, with known values, so these tests load no model and run in seconds:
table means, ranks and marks; seeded bootstrap intervals; the paired test; sequence-level records
for generation; error counts; the Markdown/CSV files; the plot files; and one-line errors.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from gradellm_cli.errors import BadInput, GradellmError, NotFound
from gradellm_cli.reports import collect, report_tables, write_reports
from gradellm_cli.reports.load import BUILTIN_DATASETS, dataset_name
from gradellm_cli.reports.plot import mean_curves
from gradellm_cli.reports.stats import (
    bootstrap_ci,
    bootstrap_ci_of_means,
    competition_ranks,
    holm_adjusted,
    paired_sign_flip_test,
)
from gradellm_cli.reports.tables import AUC_NC, AUC_NS, AVERAGE, DELETION, INSERTION, Column

PI = [0.1, 0.3, 0.5, 0.7, 0.9]
# method -> offset added to every metric (higher = more faithful), so the ranking is known
OFFSETS = {"grad-ellm": 0.3, "saliency": 0.2, "attention": 0.1, "random": 0.0}


def metric(record_id: str, method: str, task: str = "sentiment", step: int = 0, level: str = "token", model: str = "smollm2",
           value: float = 0.5, **extra) -> dict:
    """A metric record whose scalar metrics are all ``value`` (insertion: 1 - value) and curves constant."""
    record = {
        "schema_version": 1, "kind": "metric", "id": record_id, "model": model, "method": method, "step": step, "task": task,
        "level": level, "config": {"heatmap": {"task": task}}, "auc_pi_soft_ns": value, "auc_pi_soft_nc": value + 0.01,
        "soft_ns": value, "soft_nc": value, "expected_kept": 10 * value, "pi_grid": PI,
        "pi_soft_ns": [value * p for p in PI], "pi_soft_nc": [value * (1 - p) for p in PI],
    }
    if task != "generate":
        record |= {"deletion_auc": value, "insertion_auc": 1 - value, "deletion_curve": [0, 1], "insertion_curve": [1, 0]}
    return record | extra


def run_records(inputs: int = 6, noise: float = 0.0, seed: int = 1) -> list[dict]:
    """sst2 and boolq (classification) and tellmewhy (generation: two token-level steps that must be
    ignored, plus the sequence-level record) for the four methods of OFFSETS."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(inputs):
        for method, offset in OFFSETS.items():
            shared = 0.1 * (i % 3)  # per-input difficulty, shared by all methods (what pairing removes)
            for name, task in (("sst2-test", "sentiment"), ("boolq-eraser-test", "boolq")):
                value = 0.2 + offset + shared + noise * rng.standard_normal()
                records.append(metric(f"{name}-{i}", method, task, value=value))
            for step in (0, 5):  # token-level generation steps: wildly off, must not count
                records.append(metric(f"tellmewhy-unknown-{i}", method, "generate", step=step, value=9.0))
            records.append(metric(f"tellmewhy-unknown-{i}", method, "generate", step=-1, level="sequence", value=0.1 + offset + shared))
    return records


def write(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def table(tables, key: str, model: str = "smollm2"):
    return next(t for t in tables if t.key == key and t.model == model)


# --- tables --------------------------------------------------------------------------------------------


def test_table1_means_ranks_and_averages(tmp_path):
    tables = report_tables(collect(write(tmp_path / "m.jsonl", run_records())))
    t1 = table(tables, "table1")
    assert t1.methods == ["grad-ellm", "attention", "random", "saliency"]  # grad-ellm first, then by name
    assert [c.dataset for c in t1.columns] == ["sst2", "sst2", "boolq", "boolq", "tellmewhy", "tellmewhy", AVERAGE, AVERAGE]
    sst2 = t1.cells[("grad-ellm", Column("sst2", AUC_NS))]
    assert sst2.mean == pytest.approx(0.2 + 0.3 + 0.1) and sst2.n == 6 and sst2.rank == 1  # shared: mean of 0, .1, .2
    assert t1.cells[("grad-ellm", Column("sst2", AUC_NC))].mean == pytest.approx(0.61)
    assert t1.cells[("grad-ellm", Column("tellmewhy", AUC_NS))].mean == pytest.approx(0.1 + 0.3 + 0.1)
    average = t1.cells[("saliency", Column(AVERAGE, AUC_NS))]
    assert average.mean == pytest.approx((0.5 + 0.5 + 0.4) / 3) and average.n == 18
    for column in t1.columns:
        assert [t1.cells[(m, column)].rank for m in OFFSETS] == [1, 2, 3, 4]


def test_deletion_insertion_classification_only_and_insertion_lower_is_better(tmp_path):
    tables = report_tables(collect(write(tmp_path / "m.jsonl", run_records())))
    t4, t5 = table(tables, "table4"), table(tables, "table5")
    assert {c.dataset for c in t4.columns} == {"sst2", "boolq", AVERAGE}  # no generation data set
    assert t5.cells[("grad-ellm", Column("sst2", INSERTION))].mean == pytest.approx(1 - 0.6)
    assert t5.cells[("grad-ellm", Column("sst2", INSERTION))].rank == 1  # the lowest insertion AUC is best
    assert t4.cells[("random", Column("boolq", DELETION))].rank == 4


def test_competition_ranks_share_ties_and_skip_nan():
    assert competition_ranks([0.5, 0.9, 0.5, math.nan], higher_is_better=True) == [2, 1, 2, None]
    assert competition_ranks([0.5, 0.9, 0.1], higher_is_better=False) == [2, 3, 1]


def test_generation_uses_only_sequence_level_records(tmp_path):
    collection = collect(write(tmp_path / "m.jsonl", run_records(inputs=3)))
    generation = [r for r in collection.rows if r["dataset"] == "tellmewhy"]
    assert generation and all(r["step"] == -1 and r["level"] == "sequence" for r in generation)
    assert collection.generation == {"tellmewhy"}
    assert collection.passed_over == 3 * 4 * 2  # the per-step records
    assert all(r["level"] == "token" for r in collection.rows if r["dataset"] != "tellmewhy")


def test_ranks_follow_the_printed_means(tmp_path):
    """0.4004 and 0.4001 both print as 0.400: they share first place instead of being marked best and 2nd."""
    records = [metric("sst2-test-0", method, value=value) for method, value in
               (("grad-ellm", 0.4001), ("saliency", 0.4004), ("random", 0.3))]
    t1 = table(report_tables(collect(write(tmp_path / "m.jsonl", records))), "table1")
    assert [t1.cells[(m, Column("sst2", AUC_NS))].rank for m in ("grad-ellm", "saliency", "random")] == [1, 1, 3]


def test_generations_with_failed_steps_are_counted_as_partial(tmp_path):
    """A sequence record averaged over fewer steps than planned (``steps_failed``) counts in n and is
    flagged beside it, in Markdown and CSV."""
    records = [metric(f"tellmewhy-unknown-{i}", "grad-ellm", "generate", step=-1, level="sequence", value=0.5,
                      **({"steps_failed": [5]} if i == 0 else {})) for i in range(3)]
    run = write(tmp_path / "run" / "metrics.jsonl", records)
    t1 = table(report_tables(collect(run)), "table1")
    cell = t1.cells[("grad-ellm", Column("tellmewhy", AUC_NS))]
    assert (cell.n, cell.partial, cell.errors) == (3, 1, 0)
    with_sst2 = collect(write(tmp_path / "both" / "metrics.jsonl", records + [metric("sst2-test-0", "grad-ellm")]))
    average = table(report_tables(with_sst2), "table1").cells[("grad-ellm", Column(AVERAGE, AUC_NS))]
    assert (average.n, average.partial) == (4, 1)  # the average column adds up its data sets' counts
    write_reports(run, tmp_path / "out")
    assert "| `grad-ellm` | 3 (1 partial) |" in (tmp_path / "out" / "table1.md").read_text()
    rows = list(csv.DictReader((tmp_path / "out" / "table1.csv").open()))
    assert {row["partial"] for row in rows if row["dataset"] == "tellmewhy"} == {"1"}


def test_error_records_are_counted_per_cell(tmp_path):
    records = run_records(inputs=3) + [
        {"kind": "error", "id": "sst2-test-99", "model": "smollm2", "method": "saliency", "step": 0, "error": "all-zero scores"},
        {"kind": "error", "id": "tellmewhy-unknown-7", "model": "smollm2", "method": "random", "step": 5, "error": "x"},  # a step: no
        {"kind": "error", "id": "tellmewhy-unknown-7", "model": "smollm2", "method": "random", "step": -1, "error": "x"},
    ]
    collection = collect(write(tmp_path / "m.jsonl", records))
    assert collection.errors == {("smollm2", "sst2", "saliency"): 1, ("smollm2", "tellmewhy", "random"): 1}
    t1 = table(report_tables(collection), "table1")
    assert t1.cells[("saliency", Column("sst2", AUC_NS))].errors == 1


def test_a_raw_task_generation_is_one_row(tmp_path):
    """``--task raw`` generates like ``generate``: its per-step records are passed over and its
    sequence record is its one row, as for any input that has a sequence record."""
    steps = [metric("line-1", "grad-ellm", "raw", step=s, value=0.1 * (s + 1)) for s in (0, 5, 10)]
    steps.append(metric("line-1", "grad-ellm", "raw", step=-1, level="sequence", value=0.2))
    custom = [metric("line-2", "grad-ellm", "story", step=s, value=9.0) for s in (0, 5)]  # no task name to go by
    custom.append(metric("line-2", "grad-ellm", "story", step=-1, level="sequence", value=0.4))
    collection = collect(write(tmp_path / "m.jsonl", steps + custom))
    assert sorted((r["id"], r["step"]) for r in collection.rows) == [("line-1", -1), ("line-2", -1)]
    assert collection.passed_over == 5


def test_generation_tasks_are_the_tasks_without_label_words():
    from gradellm_cli.prompts import TASKS
    from gradellm_cli.reports.load import GENERATION_TASKS

    assert GENERATION_TASKS == {name for name, task in TASKS.items() if not task.is_classification}


def test_inputs_a_sweep_could_not_explain_are_counted_as_errors(tmp_path):
    """A sweep commits an input it cannot explain (too long, empty) as an error record with step null
    in its heatmaps file; the report counts it in the cell it is missing from."""
    run = tmp_path / "run"
    records = [metric(f"sst2-test-{i}", "grad-ellm") | {"dataset": "sst2"} for i in range(2)]
    records.append(metric("tellmewhy-unknown-0", "grad-ellm", "generate", step=-1, level="sequence") | {"dataset": "tellmewhy"})
    write(run / "metrics.jsonl", records)
    failed = [{"schema_version": 1, "kind": "error", "dataset": dataset, "id": record_id, "model": "smollm2", "method": "grad-ellm",
               "step": None, "error": "the input is longer than the model's context"}
              for dataset, record_id in (("sst2", "sst2-test-9"), ("tellmewhy", "tellmewhy-unknown-9"))]
    write(run / "heatmaps.jsonl", failed)
    units = [(r["dataset"], r["id"]) for r in records + failed]
    write(run / "done.jsonl", [{"unit": [dataset, "smollm2", "grad-ellm", record_id]} for dataset, record_id in units])
    collection = collect(run)
    assert collection.errors == {("smollm2", "sst2", "grad-ellm"): 1, ("smollm2", "tellmewhy", "grad-ellm"): 1}
    assert len(collection.rows) == 3


def test_an_error_record_with_a_config_counts_against_its_own_variant(tmp_path):
    """One file holding Grad-ELLM and its "w/o l" ablation: an error record that carries its config is
    counted in the ablation's cell; without a config its method has two labels here and it stays plain."""
    softmax = {"heatmap": {"task": "sentiment", "attention": "softmax"}}
    error = {"schema_version": 1, "kind": "error", "id": "sst2-test-2", "model": "smollm2", "method": "grad-ellm", "step": 0,
             "error": "Delta_0 = 0"}
    records = [metric(f"sst2-test-{i}", "grad-ellm", config={"heatmap": {"task": "sentiment", "attention": "loosened"}})
               for i in range(3)]
    records += [metric(f"sst2-test-{i}", "grad-ellm", config=softmax) for i in range(2)]
    labelled = collect(write(tmp_path / "a.jsonl", records + [error | {"config": softmax}]))
    assert labelled.errors == {("smollm2", "sst2", "grad-ellm (w/o l)"): 1}
    unlabelled = collect(write(tmp_path / "b.jsonl", records + [error]))
    assert unlabelled.errors == {("smollm2", "sst2", "grad-ellm"): 1}


def test_dataset_names_from_config_mapping_id_prefix_and_task():
    base = {"id": "line-3", "task": "sentiment", "config": {"heatmap": {"task": "sentiment"}}}
    assert dataset_name(base, {}) == "sentiment"  # custom file: grouped by task
    assert dataset_name(base, {"line-3": "reviews"}) == "reviews"
    assert dataset_name({**base, "id": "imdb-test-neg-1_2"}, {}) == "imdb"
    assert dataset_name({**base, "config": {"heatmap": {"dataset": "mine"}}}, {"line-3": "other"}) == "mine"
    assert dataset_name({**base, "dataset": "top"}, {}) == "top"


def test_dataset_from_a_sweep_manifest_plan(tmp_path):
    run = tmp_path / "run"
    write(run / "metrics.jsonl", [metric(f"row-{i}", m, value=0.5) for i in range(2) for m in ("grad-ellm", "random")])
    plan = {"plan": {"datasets": {"reviews.csv": {"task": "sentiment", "ids": ["row-0", "row-1"]}}}}
    (run / "manifest.json").write_bytes(orjson.dumps(plan))
    assert {r["dataset"] for r in collect(run).rows} == {"reviews.csv"}


def test_builtin_names_match_the_data_module():
    from gradellm_cli.data import BUILTINS

    assert set(BUILTIN_DATASETS) == set(BUILTINS)


# --- statistics ----------------------------------------------------------------------------------------


def test_bootstrap_interval_is_the_95_percent_interval_of_the_mean():
    """For 400 normal values the percentile bootstrap matches mean +- 1.96 SE: a 90% interval (width
    ratio 0.84), resampling the wrong axis or a standard-deviation-wide interval would not."""
    values = np.random.default_rng(0).normal(0.4, 0.1, size=400)
    standard_error = values.std(ddof=1) / math.sqrt(values.size)
    low, high = bootstrap_ci(values, seed=7)
    assert (high - low) / (2 * 1.96 * standard_error) == pytest.approx(1.0, abs=0.07)
    assert abs((low + high) / 2 - values.mean()) < 0.2 * standard_error
    groups = [values[:200], np.random.default_rng(1).normal(0.8, 0.3, size=100)]  # the Average column
    errors = [g.std(ddof=1) / math.sqrt(g.size) for g in groups]
    low2, high2 = bootstrap_ci_of_means(groups, seed=7)
    assert (high2 - low2) / (2 * 1.96 * math.hypot(*errors) / 2) == pytest.approx(1.0, abs=0.07)
    assert abs((low2 + high2) / 2 - np.mean([g.mean() for g in groups])) < 0.2 * math.hypot(*errors) / 2


def test_bootstrap_interval_contains_the_mean_and_is_seeded():
    values = np.random.default_rng(0).normal(0.4, 0.1, size=40)
    low, high = bootstrap_ci(values, seed=7)
    assert low < values.mean() < high and high - low < 0.1
    assert bootstrap_ci(values, seed=7) == (low, high)
    assert bootstrap_ci(values, seed=8) != (low, high)
    assert bootstrap_ci([0.3] * 5, seed=1) == pytest.approx((0.3, 0.3))


def test_paired_test_small_p_for_a_consistent_difference_large_p_for_none():
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 1, size=30)
    better = base + 0.05 + rng.normal(0, 0.01, size=30)
    assert paired_sign_flip_test(better, base, seed=0) < 0.001  # Monte Carlo path (30 pairs)
    assert paired_sign_flip_test(better[:10], base[:10], seed=0) == pytest.approx(2 / 2**10)  # exact: all 10 signs agree
    same = base + rng.normal(0, 0.05, size=30)
    assert paired_sign_flip_test(same, base, seed=0) > 0.05
    assert paired_sign_flip_test(base, base, seed=0) == 1.0
    assert paired_sign_flip_test(better, base, seed=5) == paired_sign_flip_test(better, base, seed=5)


def test_holm_adjustment_by_hand():
    """Sorted 0.01, 0.03, 0.04 times 3, 2, 1 = 0.03, 0.06, 0.04; kept monotone: 0.03, 0.06, 0.06; capped at 1."""
    assert holm_adjusted([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjusted([0.6, 0.02]) == pytest.approx([0.6, 0.04])
    assert holm_adjusted([0.7, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm_adjusted([0.2]) == [0.2] and holm_adjusted([]) == []


def test_paired_tests_are_holm_adjusted_per_column(tmp_path):
    t1 = table(report_tables(collect(write(tmp_path / "m.jsonl", run_records(inputs=8, noise=0.05)))), "table1")
    for dataset, metric_ in dict.fromkeys((t.dataset, t.metric) for t in t1.tests):
        family = [t for t in t1.tests if (t.dataset, t.metric) == (dataset, metric_)]
        assert len(family) == 3  # saliency, attention, random
        assert [t.p_holm for t in family] == pytest.approx(holm_adjusted([t.p_value for t in family]))
        assert all(t.p_value <= t.p_holm <= 1.0 for t in family)
    write_reports(write(tmp_path / "run" / "metrics.jsonl", run_records(inputs=8, noise=0.05)))
    rows = [r for r in csv.DictReader((tmp_path / "run" / "table1.csv").open()) if r["p_value"]]
    assert rows and all(float(r["p_value"]) <= float(r["p_holm"]) for r in rows)
    assert ", Holm " in (tmp_path / "run" / "table1.md").read_text()


def test_tables_do_not_depend_on_the_order_of_the_records(tmp_path):
    """A sharded run, an unsharded one or a reordered file hold the same records in other orders; the
    bootstrap resamples positions, so its intervals must not follow the file order."""
    records = run_records(inputs=12, noise=0.2)
    shuffled = [records[i] for i in np.random.default_rng(4).permutation(len(records))]
    first = report_tables(collect(write(tmp_path / "a.jsonl", records)))
    second = report_tables(collect(write(tmp_path / "b.jsonl", shuffled)))
    for key in ("table1", "table2"):
        a, b = table(first, key), table(second, key)
        assert a.methods == b.methods and set(a.columns) == set(b.columns)  # rows by name; columns as first seen
        for cell_key, cell in a.cells.items():
            other = b.cells[cell_key]
            assert (cell.low, cell.high) == (other.low, other.high) and cell.mean == pytest.approx(other.mean, abs=1e-12)


def test_table1_paired_tests_on_the_same_inputs(tmp_path):
    t1 = table(report_tables(collect(write(tmp_path / "m.jsonl", run_records(inputs=8, noise=0.01)))), "table1")
    tests = {(t.baseline, t.dataset, t.metric): t for t in t1.tests}
    assert {t.baseline for t in t1.tests} == {"saliency", "attention", "random"}
    vs_random = tests[("random", "sst2", AUC_NS)]
    assert vs_random.pairs == 8 and vs_random.difference == pytest.approx(0.3, abs=0.02) and vs_random.p_value < 0.01


def test_table1_pairs_records_by_input(tmp_path):
    """Inputs differ by far more (0 to 1) than the methods do (grad-ellm 0.02 above random on every
    input): paired by input, all 10 differences are +0.02 and p = 2 / 2**10; paired any other way,
    the differences would be swamped by the inputs' spread."""
    difficulty = np.random.default_rng(5).uniform(0, 1, size=10)
    records = [metric(f"sst2-test-{i}", method, value=float(d) + gap) for i, d in enumerate(difficulty) for method, gap in
               (("grad-ellm", 0.02), ("random", 0.0))]
    records.reverse()  # file order must not matter either
    t1 = table(report_tables(collect(write(tmp_path / "m.jsonl", records))), "table1")
    test = next(t for t in t1.tests if t.baseline == "random" and t.metric == AUC_NS)
    assert test.pairs == 10 and test.difference == pytest.approx(0.02, abs=1e-9)
    assert test.p_value == pytest.approx(2 / 2**10)


def test_paired_test_impossible_gives_a_note(tmp_path):
    records = [metric("sst2-test-0", m, value=0.5) for m in OFFSETS] + [metric("sst2-test-1", "random", value=0.4)]
    t1 = table(report_tables(collect(write(tmp_path / "m.jsonl", records))), "table1")
    assert all(t.p_value is None and "too few" in t.note for t in t1.tests)
    no_ours = [r for r in run_records(inputs=3) if r["method"] != "grad-ellm"]
    write_reports(write(tmp_path / "b" / "metrics.jsonl", no_ours))
    assert "no grad-ellm records" in (tmp_path / "b" / "table1.md").read_text()


# --- files and the command -----------------------------------------------------------------------------


def test_write_reports_reads_shards_and_writes_markdown_and_csv(tmp_path):
    records = run_records(inputs=4)
    run = tmp_path / "run"
    write(run / "metrics.shard-0-of-2.jsonl", records[::2])
    write(run / "metrics.shard-1-of-2.jsonl", records[1::2])
    write(run / "heatmaps.shard-0-of-2.jsonl", [{"kind": "heatmap", "id": "x"}])  # not a metrics file: not read
    (run / "manifest.json").write_bytes(orjson.dumps({"options": {"datasets": ["tellmewhy", "boolq", "sst2"]}}))
    written = write_reports(run)
    stems = ("table1", "table2", "deletion_insertion", "cost")
    assert sorted(p.name for p in written) == sorted(f"{s}.{e}" for s in stems for e in ("md", "csv"))
    assert not list(run.glob(".*.tmp"))  # each table written whole, then renamed into place
    rows = list(csv.DictReader((run / "table1.csv").open()))
    cell = next(r for r in rows if r["method"] == "grad-ellm" and r["dataset"] == "boolq" and r["metric"] == "auc_pi_soft_ns")
    assert float(cell["mean"]) == pytest.approx(0.2 + 0.3 + 0.075) and cell["n"] == "4" and cell["rank"] == "1"
    assert float(cell["ci_low"]) <= float(cell["mean"]) <= float(cell["ci_high"])
    baseline = next(r for r in rows if r["method"] == "random" and r["dataset"] == "sst2" and r["metric"] == "auc_pi_soft_nc")
    assert float(baseline["diff_grad_ellm_minus_method"]) == pytest.approx(0.3) and baseline["pairs"] == "4"
    markdown = (run / "table1.md").read_text()
    assert markdown.index("tellmewhy: AUC pi-Soft-NS") < markdown.index("boolq: AUC pi-Soft-NS")  # the manifest's order
    assert "| `grad-ellm` | **0.475** [" in markdown and "| `saliency` | <u>0.375</u> [" in markdown and "Paired sign-flip test" in markdown
    table2 = list(csv.DictReader((run / "table2.csv").open()))
    assert {r["metric"] for r in table2} == {"soft_ns", "soft_nc", "expected_kept"}
    assert all(r["rank"] == "" for r in table2 if r["metric"] == "expected_kept")
    deletion = (run / "deletion_insertion.md").read_text()
    assert "Deletion AUC" in deletion and "Insertion AUC" in deletion and "tellmewhy" not in deletion


def invoke(app, *args: str):
    return CliRunner().invoke(app, list(args))


def test_render_table_prints_and_writes_files(app, tmp_path):
    metrics = write(tmp_path / "in" / "metrics.jsonl", run_records(inputs=4))
    out = tmp_path / "reports"
    result = invoke(app, "render", "--table", str(metrics), "--table-out", str(out))
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Table 1" in result.stdout and "grad-ellm" in result.stdout and "Paired sign-flip test" in result.stdout
    assert (out / "table1.md").exists() and (out / "deletion_insertion.csv").exists()
    assert "wrote" in result.stderr


@pytest.mark.parametrize("suffix, signature", [(".png", b"\x89PNG\r\n\x1a\n"), (".svg", b"<svg")])
def test_render_plot_writes_png_and_svg(app, tmp_path, suffix, signature):
    metrics = write(tmp_path / "metrics.jsonl", run_records(inputs=3))
    target = tmp_path / f"curves{suffix}"
    result = invoke(app, "render", str(metrics), "--plot", str(target))
    assert result.exit_code == 0, (result.output, result.exception)
    data = target.read_bytes()
    assert len(data) > 5000 and signature in data[:400]


def test_render_plot_picks_data_sets_and_models(app, tmp_path, monkeypatch):
    """--dataset imdb --model smollm2 draws the paper's Figure 2 from a run of several data sets and models."""
    import gradellm_cli.reports as reports

    drawn = []
    monkeypatch.setattr(reports, "plot_pi_curves", lambda collection, path, title=None: drawn.append(collection.rows) or path)
    records = run_records(inputs=2) + [r | {"model": "gemma3"} for r in run_records(inputs=2)]
    metrics = write(tmp_path / "metrics.jsonl", records)
    result = invoke(app, "render", str(metrics), "--plot", str(tmp_path / "f.png"), "--dataset", "boolq,sst2", "--model", "gemma3")
    assert result.exit_code == 0, (result.output, result.exception)
    assert {(r["dataset"], r["model"]) for r in drawn[0]} == {("boolq", "gemma3"), ("sst2", "gemma3")} and len(drawn[0]) == 4 * 4
    failure(invoke(app, "render", str(metrics), "--plot", str(tmp_path / "f.png"), "--dataset", "imdb"), NotFound)
    assert "--plot" in failure(invoke(app, "render", str(metrics), "--model", "gemma3"), BadInput)


def test_mean_curves_average_per_method(tmp_path):
    collection = collect(write(tmp_path / "metrics.jsonl", run_records(inputs=3)))
    grid, curves, counts, left_out = mean_curves(collection.rows)
    assert grid == PI and counts["grad-ellm"] == 9 and left_out == 0  # 3 inputs x (sst2, boolq, tellmewhy sequence)
    expected = np.mean([0.2 + 0.3 + s for s in (0, 0.1, 0.2)] * 2 + [0.1 + 0.3 + s for s in (0, 0.1, 0.2)])
    assert curves["grad-ellm"]["pi_soft_ns"] == pytest.approx([expected * p for p in PI])


def test_mean_curves_keep_models_apart(tmp_path):
    records = run_records(inputs=2) + [r | {"model": "gemma3"} for r in run_records(inputs=2)]
    _, curves, counts, _ = mean_curves(collect(write(tmp_path / "metrics.jsonl", records)).rows)
    assert list(curves)[:2] == ["gemma3/grad-ellm", "smollm2/grad-ellm"] and counts["gemma3/random"] == 6


def failure(result, kind: type[GradellmError]) -> str:
    """The command ended with ``kind``'s exit code and one line on stderr (as the entry point prints it)."""
    message = result.stderr.strip()
    assert result.exit_code == kind.exit_code, (result.output, result.exception)
    assert message.startswith("gradellm: error: ") and "\n" not in message, message
    return message


def test_bad_input_is_a_one_line_error(app, tmp_path):
    heatmaps_only = write(tmp_path / "h.jsonl", [{"kind": "heatmap", "id": "a"}])
    assert "no metric records" in failure(invoke(app, "render", "--table", str(heatmaps_only)), BadInput)
    failure(invoke(app, "render", "--table", str(tmp_path / "absent")), NotFound)
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    assert "metrics*.jsonl" in failure(invoke(app, "render", "--table", str(empty_dir)), NotFound)
    metrics = write(tmp_path / "m.jsonl", run_records(inputs=2))
    failure(invoke(app, "render", str(metrics), "--plot", str(tmp_path / "x.pdf")), BadInput)
    failure(invoke(app, "render", str(metrics), "--plot", str(tmp_path / "x.png"), "--method", "nope"), NotFound)
    failure(invoke(app, "render", "--table-out", str(tmp_path), str(metrics)), BadInput)
    no_curves = write(tmp_path / "soft.jsonl", [{k: v for k, v in metric("a", "random").items() if k != "pi_soft_ns"}])
    assert "curves" in failure(invoke(app, "render", str(no_curves), "--plot", str(tmp_path / "y.png")), BadInput)
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(metrics.read_bytes() + b"{oops\n")
    assert "line" in failure(invoke(app, "render", "--table", str(broken)), BadInput)


def test_records_with_other_metric_settings_are_refused(app, tmp_path):
    """AUCs over another pi grid (or sample count) do not compare: one report, one set of settings."""
    settings = {"pi_grid": PI, "samples": 3, "heatmap": {"task": "sentiment"}}
    first = write(tmp_path / "a.jsonl", [metric("sst2-test-0", "grad-ellm", config=settings)])
    other = settings | {"pi_grid": PI[1:]}
    second = write(tmp_path / "b.jsonl", [metric("sst2-test-1", "random", config=other)])
    with pytest.raises(BadInput, match="different settings .*pi_grid"):
        collect([first, second])
    folder = tmp_path / "evaluations"  # two evaluate runs' files in one folder
    write(folder / "metrics-a.jsonl", [metric("sst2-test-0", "grad-ellm", config=settings)])
    write(folder / "metrics-b.jsonl", [metric("sst2-test-1", "random", config=other)])
    message = failure(invoke(app, "render", "--table", str(folder)), BadInput)
    assert "sst2-test-1 (smollm2, random)" in message and "report them separately" in message
    fewer_metrics = write(tmp_path / "c.jsonl", [metric("sst2-test-1", "random", config=settings | {"metrics": ["pi"]})])
    assert len(collect([first, fewer_metrics]).rows) == 2  # which metrics were computed does not matter


def test_two_variants_of_a_method_in_one_cell_are_refused(tmp_path):
    """Two variants under one method name (here Grad-ELLM on all layers and on the last ones) must not
    average or silently replace each other, on the same input or on different ones."""
    every = {"heatmap": {"task": "sentiment", "layers": "all", "device": "cpu"}}
    last = {"heatmap": {"task": "sentiment", "layers": "-4:", "device": "cpu"}}
    first = write(tmp_path / "a.jsonl", [metric("sst2-test-0", "grad-ellm", config=every)])
    for other_id in ("sst2-test-0", "sst2-test-1"):
        second = write(tmp_path / f"{other_id}.jsonl", [metric(other_id, "grad-ellm", config=last)])
        with pytest.raises(BadInput, match=r'grad-ellm on sst2 was explained with two settings \(layers: "all" for sst2-test-0'):
            collect([first, second])


def test_the_paper_ablation_is_reported_beside_the_method(app, tmp_path):
    """Grad-ELLM with softmax attention (the paper's "w/o l") from its own run shows as its own row,
    second, with its own errors, and is tested against Grad-ELLM like a baseline; a folder of two
    runs reads both."""
    loosened = {"heatmap": {"task": "sentiment", "attention": "loosened"}}
    softmax = {"heatmap": {"task": "sentiment", "attention": "softmax"}}
    ours = [metric(f"sst2-test-{i}", m, value=0.5 + 0.01 * i + (m == "grad-ellm") * 0.1, config=loosened)
            for i in range(6) for m in ("grad-ellm", "random")]
    ablation = [metric(f"sst2-test-{i}", "grad-ellm", value=0.5 + 0.01 * i + 0.05, config=softmax) for i in range(5)]
    ablation.append({"schema_version": 1, "kind": "error", "id": "sst2-test-5", "model": "smollm2", "method": "grad-ellm",
                     "step": 0, "error": "Delta_0 = 0"})
    write(tmp_path / "runs" / "main" / "metrics.jsonl", ours)
    write(tmp_path / "runs" / "wo-l" / "metrics.jsonl", ablation)
    collection = collect(tmp_path / "runs")
    assert collection.methods == ["grad-ellm", "grad-ellm (w/o l)", "random"]
    t1 = table(report_tables(collection), "table1")
    cell = t1.cells[("grad-ellm (w/o l)", Column("sst2", AUC_NS))]
    assert (cell.n, cell.errors) == (5, 1) and cell.mean == pytest.approx(0.57)
    assert t1.cells[("grad-ellm", Column("sst2", AUC_NS))].errors == 0
    test = next(t for t in t1.tests if t.baseline == "grad-ellm (w/o l)" and t.metric == AUC_NS)
    assert test.pairs == 5 and test.difference == pytest.approx(0.05)
    result = invoke(app, "render", "--table", str(tmp_path / "runs"), "--table-out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "| `grad-ellm (w/o l)` |" in (tmp_path / "out" / "table1.md").read_text()


def test_repeats_and_records_without_settings_are_not_refused(tmp_path):
    """A unit scored again (with other metrics computed, or on another device) keeps its last record;
    records without a config (hand-made, older) are not compared; data sets differ in task."""
    settings = {"pi_grid": PI, "heatmap": {"task": "sentiment", "attention": "loosened", "device": "cpu"}}
    again = {"pi_grid": PI, "metrics": ["pi"], "heatmap": {"task": "sentiment", "attention": "loosened", "device": "cuda"}}
    first = write(tmp_path / "a.jsonl", [metric("sst2-test-0", "grad-ellm", config=settings)])
    repeated = collect([first, write(tmp_path / "b.jsonl", [metric("sst2-test-0", "grad-ellm", config=again)])])
    assert len(repeated.rows) == 1 and repeated.passed_over == 1
    bare = {k: v for k, v in metric("sst2-test-1", "grad-ellm").items() if k != "config"}
    assert len(collect([first, write(tmp_path / "c.jsonl", [bare])]).rows) == 2
    boolq = {"pi_grid": PI, "heatmap": {"task": "boolq", "attention": "loosened", "device": "cpu"}}
    mixed = collect([first, write(tmp_path / "d.jsonl", [metric("boolq-eraser-test-1", "grad-ellm", "boolq", config=boolq)])])
    assert len(mixed.rows) == 2


def test_reports_of_an_unfinished_sweep_say_they_are_partial(tmp_path):
    """Tables made while a sweep runs cover its finished units only, and every file says so."""
    records = [metric("sst2-test-0", method) | {"dataset": "sst2"} for method in OFFSETS]
    run = tmp_path / "run"
    write(run / "metrics.jsonl", records)
    done = [{"unit": ["sst2", "smollm2", r["method"], "sst2-test-0"], "heatmaps": 1, "metrics": 1} for r in records[:3]]
    write(run / "done.jsonl", done)
    (run / "manifest.json").write_bytes(orjson.dumps({"plan": {"units": 8}}))
    write_reports(run)
    assert "**Note: partial run: 3 of 8 units done;" in (run / "table1.md").read_text()
    assert len(collect(run).rows) == 3  # the unit without a done line is not counted
    assert len(collect(tmp_path).rows) == 3  # a folder of run folders reads each through its done logs
    write(run / "done.jsonl", done + [{"unit": ["sst2", "smollm2", "x", f"y{i}"]} for i in range(5)])
    write_reports(run)
    assert "partial run" not in (run / "table1.md").read_text()


def test_cost_table_sums_each_inputs_heatmap_seconds_and_keeps_evaluation_seconds(tmp_path):
    """Explain seconds per input = the sum over its heatmap records (each holds time / steps); evaluate
    seconds = the metric record's own; plain metric files have only the second; the table is not ranked."""
    run = tmp_path / "run"
    metrics, heatmaps, done = [], [], []
    for i, (method, explain_each, evaluate) in enumerate([("grad-ellm", 0.5, 4.0), ("integrated-gradients", 20.0, 6.0)] * 2):
        record_id = f"tellmewhy-x-{i // 2}"
        unit = {"dataset": "tellmewhy", "model": "smollm2", "method": method, "id": record_id}
        heatmaps += [{"kind": "heatmap", **unit, "step": step, "seconds": explain_each} for step in range(3)]
        metrics.append(metric(record_id, method, "generate", step=-1, level="sequence", seconds=evaluate) | unit)
        done.append({"unit": ["tellmewhy", "smollm2", method, record_id], "heatmaps": 3, "metrics": 1})
    write(run / "heatmaps.jsonl", heatmaps + [{"kind": "heatmap", "dataset": "tellmewhy", "model": "smollm2",
                                                "method": "grad-ellm", "id": "not-done", "step": 0, "seconds": 99.0}])
    write(run / "metrics.jsonl", metrics)
    write(run / "done.jsonl", done)
    collection = collect(run)
    assert sorted(row["explain_seconds"] for row in collection.rows) == [1.5, 1.5, 60.0, 60.0]
    cost = table(report_tables(collection), "cost")
    cells = {(method, column.metric.field): cell for (method, column), cell in cost.cells.items()}
    assert cells[("grad-ellm", "explain_seconds")].mean == pytest.approx(1.5)
    assert cells[("integrated-gradients", "explain_seconds")].mean == pytest.approx(60.0)
    assert cells[("integrated-gradients", "seconds")].mean == pytest.approx(6.0)
    assert all(cell.rank is None for cell in cost.cells.values())
    write_reports(run)
    assert "Not ranked." in (run / "cost.md").read_text() and "**" not in (run / "cost.md").read_text().split("\n", 3)[3]
    plain = table(report_tables(collect(write(tmp_path / "m.jsonl", metrics))), "cost")
    assert {column.metric.field for column in plain.columns} == {"seconds"}


def test_runs_that_add_methods_are_reported_with_the_published_run_as_one_table(app, tmp_path):
    """A published run plus runs of the paper's baselines, Grad-ELLM as the authors' code computes it and
    attention over all layers: one Table 1, each variant a row of its own by its config, tested against
    Grad-ELLM on the inputs they share; several sources need --table-out (no run's own tables overwritten)."""
    paper = {"heatmap": {"task": "sentiment", "attention": "loosened", "layers": "all", "attention_layers": "last"}}
    published = [metric(f"sst2-test-{i}", m, value=0.5 + 0.01 * i + (m == "grad-ellm") * 0.1, config=paper)
                 for i in range(6) for m in ("grad-ellm", "attention")]
    port = {"heatmap": {"task": "sentiment", "attention": "loosened", "similarity": "raw-cosine", "grad_at": "post-o",
                        "kv_expansion": "tiled", "layers": "last:1"}}
    every_layer = {"heatmap": {"task": "sentiment", "attention_layers": "all"}}
    zeroing = {"heatmap": {"task": "sentiment", "vz_layers": "all"}}
    write(tmp_path / "paper" / "metrics.jsonl", published)
    write(tmp_path / "new" / "port" / "metrics.jsonl", [metric(f"sst2-test-{i}", "grad-ellm", value=0.4, config=port) for i in range(6)])
    write(tmp_path / "new" / "attention-all" / "metrics.jsonl",
          [metric(f"sst2-test-{i}", "attention", value=0.45, config=every_layer) for i in range(4)])
    write(tmp_path / "new" / "value-zeroing" / "metrics.jsonl",
          [metric(f"sst2-test-{i}", "value-zeroing", value=0.3, config=zeroing) for i in range(6)])
    collection = collect([tmp_path / "paper", tmp_path / "new"])
    assert collection.methods == ["grad-ellm", "grad-ellm (port)", "attention", "attention (all layers)", "value-zeroing"]
    t1 = table(report_tables(collection), "table1")
    assert t1.cells[("attention (all layers)", Column("sst2", AUC_NS))].n == 4
    test = next(t for t in t1.tests if t.baseline == "grad-ellm (port)" and t.metric == AUC_NS)
    assert test.pairs == 6 and test.difference == pytest.approx(0.6 + 0.025 - 0.4)
    shown = invoke(app, "render", "--table", str(tmp_path / "paper"), str(tmp_path / "new"))  # printed, nothing written
    assert shown.exit_code == 0 and "grad-ellm (port)" in shown.output
    assert not list((tmp_path / "paper").glob("table1.*")) and not list((tmp_path / "new").glob("table1.*"))
    result = invoke(app, "render", "--table", str(tmp_path / "paper"), str(tmp_path / "new"), "--table-out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    written = (tmp_path / "out" / "table1.md").read_text()
    assert "| `grad-ellm (port)` |" in written and "| `attention (all layers)` |" in written and "| `value-zeroing` |" in written


def test_a_metric_setting_named_in_a_later_release_compares_as_its_earlier_value(tmp_path):
    """0.1.0 records do not name the pi squeeze formula, 0.2.0 and later do: the same formula, so they
    report together; another formula would not."""
    from gradellm_cli.metrics.pi_levels import SQUEEZE
    from gradellm_cli.reports.load import NAMED_LATER

    assert NAMED_LATER["pi_squeeze"] == SQUEEZE
    old = write(tmp_path / "old.jsonl", [metric("sst2-test-0", "grad-ellm", config={"pi_grid": PI, "heatmap": {"task": "sentiment"}})])
    named = {"pi_grid": PI, "pi_squeeze": SQUEEZE, "heatmap": {"task": "sentiment"}}
    new = write(tmp_path / "new.jsonl", [metric("sst2-test-1", "grad-ellm", config=named)])
    assert len(collect([old, new]).rows) == 2
    other = write(tmp_path / "other.jsonl", [metric("sst2-test-2", "grad-ellm", config=named | {"pi_squeeze": "s"})])
    with pytest.raises(BadInput, match="different settings"):
        collect([old, other])


def test_topk_metrics_get_their_own_table_with_udig_tested_against_the_others(tmp_path):
    """Log-odds / Comprehensiveness / Sufficiency: one table, ranked per direction, UDIG the reference of
    the paired tests (CSV column diff_udig_minus_method); WAE only for the path methods; neither file
    is written for runs without those metrics."""
    records = []
    for i in range(6):
        for method, shift in (("udig", 0.0), ("dig", 0.1), ("integrated-gradients", 0.2), ("grad-ellm", 0.05)):
            extra = {"log_odds": -1.0 + shift + 0.01 * i, "comprehensiveness": 0.5 - shift, "sufficiency": 0.1 + shift}
            if method in ("udig", "dig"):
                extra["wae"] = 1.0 + shift
            records.append(metric(f"sst2-test-{i}", method, **extra))
    tables = report_tables(collect(write(tmp_path / "m.jsonl", records)))
    topk = table(tables, "topk")
    assert topk.reference == "udig"
    assert topk.cells[("udig", Column("sst2", topk.columns[0].metric))].rank == 1  # lowest log-odds is best
    comprehensiveness = next(c for c in topk.columns if c.metric.field == "comprehensiveness" and c.dataset == "sst2")
    assert topk.cells[("udig", comprehensiveness)].rank == 1
    tested = {t.baseline for t in topk.tests}
    assert tested == {"dig", "integrated-gradients", "grad-ellm"}
    ig = next(t for t in topk.tests if t.baseline == "integrated-gradients" and t.metric.field == "log_odds")
    assert ig.pairs == 6 and ig.difference == pytest.approx(-0.2)
    assert table(tables, "wae").methods == ["dig", "udig"]
    out = write_reports(tmp_path / "m.jsonl", tmp_path / "out")
    assert (tmp_path / "out" / "topk.csv").read_text().splitlines()[0].count("diff_udig_minus_method") == 1
    assert "`udig` minus each other method" in (tmp_path / "out" / "topk.md").read_text()
    assert any(path.name == "wae.md" for path in out)
    plain = write_reports(write(tmp_path / "plain" / "m.jsonl", run_records()), tmp_path / "plain-out")
    assert not any(path.stem in ("topk", "wae") for path in plain)


def test_a_plot_is_titled_by_the_data_sets_it_shows_and_copied_records_are_not_a_partial_run(tmp_path):
    """After --dataset picks one data set the default title names that one; a folder holding a run's
    manifest and records but none of its done logs (an example copied out of a run) is not "partial"."""
    from gradellm_cli.reports import partial_note
    from gradellm_cli.reports.plot import _default_title

    collection = collect(write(tmp_path / "m.jsonl", run_records()))
    collection.rows = [row for row in collection.rows if row["dataset"] == "sst2"]
    assert _default_title(collection).endswith("data sst2")
    copied = tmp_path / "copied"
    write(copied / "metrics.jsonl", run_records())
    (copied / "manifest.json").write_bytes(orjson.dumps({"plan": {"units": 8}}))
    assert partial_note(copied) is None


def test_tables_printed_to_a_pipe_are_the_whole_markdown_never_cut(tmp_path):
    """In a pipe (or a terminal too narrow for them) the tables are printed as the Markdown the files
    hold, every interval whole; rich's 80-column layout would cut them to '0.…'."""
    from rich.console import Console

    from gradellm_cli.reports import print_reports

    collection = collect(write(tmp_path / "m.jsonl", run_records(noise=0.01)))
    tables = report_tables(collection)
    console = Console(file=io.StringIO(), width=80)
    print_reports(collection, tables, console)
    printed = console.file.getvalue()
    assert "…" not in printed and "| `grad-ellm` |" in printed
    cell = table(tables, "table1").cells[("grad-ellm", Column("sst2", AUC_NS))]
    assert f"[{cell.low:.3f}, {cell.high:.3f}]" in printed
