"""The report tables as data: per model, rows = methods, columns = (data set, metric), plus averages.

Table 1 (the paper's): AUC pi-Soft-NS and AUC pi-Soft-NC, both higher-is-better, with a paired test of
Grad-ELLM against each baseline. Table 2: raw Soft-NS / Soft-NC and E[R] (the expected number of kept
tokens, which the raw metrics are confounded with, hence the pi versions). Tables 4 and 5: Deletion AUC
(higher is better: the prediction flips early) and Insertion AUC (lower is better: it recovers early),
classification data sets only. Cost (not in the paper, which argues Grad-ELLM is cheap): the seconds
per input of the method and of the evaluation, unranked. Formatting is in ``format.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .load import Collection
from .stats import bootstrap_ci, bootstrap_ci_of_means, cell_seed, competition_ranks, holm_adjusted, paired_sign_flip_test

GRAD_ELLM = "grad-ellm"
SHOWN_DECIMALS = 3  # the tables print means with 3 decimals (format.py); ranks follow what is printed
AVERAGE = "Average"


@dataclass(frozen=True)
class Metric:
    """A record field shown as a column; ``higher_is_better`` None means not ranked (E[R])."""

    field: str
    label: str
    higher_is_better: bool | None


AUC_NS = Metric("auc_pi_soft_ns", "AUC pi-Soft-NS", True)
AUC_NC = Metric("auc_pi_soft_nc", "AUC pi-Soft-NC", True)
SOFT_NS = Metric("soft_ns", "Soft-NS", True)
SOFT_NC = Metric("soft_nc", "Soft-NC", True)
EXPECTED_KEPT = Metric("expected_kept", "E[R]", None)
DELETION = Metric("deletion_auc", "Deletion AUC", True)
INSERTION = Metric("insertion_auc", "Insertion AUC", False)
LOG_ODDS = Metric("log_odds", "Log-odds", False)
COMPREHENSIVENESS = Metric("comprehensiveness", "Comprehensiveness", True)
SUFFICIENCY = Metric("sufficiency", "Sufficiency", False)
WAE = Metric("wae", "WAE", False)
EXPLAIN_SECONDS = Metric("explain_seconds", "explain s", None)
EVALUATE_SECONDS = Metric("seconds", "evaluate s", None)


@dataclass(frozen=True)
class Column:
    dataset: str  # or AVERAGE
    metric: Metric


@dataclass
class Cell:
    """One method's mean of one metric on one data set, its 95% interval, the inputs behind it (n), the
    error records that left inputs out, the generations among n averaged over fewer steps than planned
    (``partial``: some evaluated steps failed), and its rank in its column (1 = best)."""

    mean: float
    low: float
    high: float
    n: int
    errors: int = 0
    rank: int | None = None
    partial: int = 0


@dataclass
class PairedTest:
    """Grad-ELLM against one baseline on the inputs both scored: mean difference (Grad-ELLM minus the
    baseline), the two-sided p-value and its Holm adjustment over the column's baselines, or a note
    saying why there is none."""

    baseline: str
    dataset: str
    metric: Metric
    pairs: int
    difference: float = math.nan
    p_value: float | None = None
    note: str = ""
    p_holm: float | None = None


@dataclass
class Table:
    key: str  # "table1", "table2", "table4", "table5", "cost"
    title: str
    model: str
    methods: list[str]
    columns: list[Column]
    cells: dict[tuple[str, Column], Cell]
    tests: list[PairedTest] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reference: str = GRAD_ELLM  # the method the paired tests compare every other method with


def _values(rows: list[dict[str, Any]], name: str) -> list[float]:
    values = []
    for row in rows:
        value = row.get(name)
        if isinstance(value, (int, float)) and math.isfinite(value):
            values.append(float(value))
    return values


def build_table(collection: Collection, key: str, title: str, model: str, datasets: list[str], metrics: list[Metric],
                seed: int = 0) -> Table | None:
    """The table of ``metrics`` on ``datasets`` for ``model``; None when no record of the model has any of them."""
    methods = [m for m in collection.methods if any(r["model"] == model and r["method"] == m for r in collection.rows)]
    columns = [Column(d, m) for d in datasets for m in metrics if any(_values(collection.select(model, d, x), m.field) for x in methods)]
    if not columns:
        return None
    table = Table(key, title, model, methods, columns, {})
    for column in columns:
        for method in methods:
            table.cells[(method, column)] = _cell(collection, model, method, column, seed)
    _add_averages(table, collection, seed)
    _rank(table)
    return table


def _cell(collection: Collection, model: str, method: str, column: Column, seed: int) -> Cell:
    rows = [r for r in collection.select(model, column.dataset, method) if _values([r], column.metric.field)]
    values = _values(rows, column.metric.field)
    errors = collection.errors.get((model, column.dataset, method), 0)
    if not values:
        return Cell(math.nan, math.nan, math.nan, 0, errors)
    low, high = bootstrap_ci(values, cell_seed(seed, model, column.dataset, method, column.metric.field))
    partial = sum(1 for r in rows if r.get("steps_failed"))
    return Cell(sum(values) / len(values), low, high, len(values), errors, partial=partial)


def _add_averages(table: Table, collection: Collection, seed: int) -> None:
    """An average column per metric over the table's data sets (the mean of per-data-set means), when
    there are two or more; a method missing a data set gets no average."""
    for metric in dict.fromkeys(c.metric for c in table.columns):
        datasets = [c.dataset for c in table.columns if c.metric == metric]
        if len(datasets) < 2:
            continue
        column = Column(AVERAGE, metric)
        table.columns.append(column)
        for method in table.methods:
            # data sets in name order: the bootstrap draws from each group in turn, so the file order of
            # the records (which data set was seen first) must not decide its interval
            groups = [_values(collection.select(table.model, d, method), metric.field) for d in sorted(datasets)]
            parts = [table.cells[(method, Column(d, metric))] for d in datasets]
            errors, partial = sum(c.errors for c in parts), sum(c.partial for c in parts)
            if any(not g for g in groups):
                table.cells[(method, column)] = Cell(math.nan, math.nan, math.nan, 0, errors, partial=partial)
                continue
            mean = sum(sum(g) / len(g) for g in groups) / len(groups)
            low, high = bootstrap_ci_of_means(groups, cell_seed(seed, table.model, AVERAGE, method, metric.field))
            table.cells[(method, column)] = Cell(mean, low, high, sum(map(len, groups)), errors, partial=partial)


def _rank(table: Table) -> None:
    for column in table.columns:
        if column.metric.higher_is_better is None:
            continue
        cells = [table.cells[(m, column)] for m in table.methods]
        shown = [round(c.mean, SHOWN_DECIMALS) for c in cells]  # two cells that read the same share a rank
        for cell, rank in zip(cells, competition_ranks(shown, column.metric.higher_is_better)):
            cell.rank = rank


def paired_tests(collection: Collection, table: Table, seed: int = 0) -> list[PairedTest]:
    """The table's reference method (Grad-ELLM; UDIG in the top-k table) against every other method, per
    data set and metric, on the inputs both methods scored (paired by id, model and step)."""
    tests = []
    for column in (c for c in table.columns if c.dataset != AVERAGE):
        ours = _by_input(collection.select(table.model, column.dataset, table.reference), column.metric.field)
        for baseline in (m for m in table.methods if m != table.reference):
            theirs = _by_input(collection.select(table.model, column.dataset, baseline), column.metric.field)
            test_seed = cell_seed(seed, table.model, column.dataset, baseline, column.metric.field)
            tests.append(_paired(ours, theirs, baseline, column, test_seed, table.reference))
    _adjust_per_column(tests)
    return tests


def _adjust_per_column(tests: list[PairedTest]) -> None:
    """Holm-adjust the p-values of each (data set, metric) column: the family of Grad-ELLM's tests
    against the baselines that column could test."""
    for column in dict.fromkeys((t.dataset, t.metric) for t in tests):
        family = [t for t in tests if (t.dataset, t.metric) == column and t.p_value is not None]
        for test, adjusted in zip(family, holm_adjusted([t.p_value for t in family])):
            test.p_holm = adjusted


def _by_input(rows: list[dict[str, Any]], name: str) -> dict[tuple[str, int], float]:
    return {(r["id"], int(r.get("step", 0))): v for r in rows for v in _values([r], name)}


def _paired(ours: dict, theirs: dict, baseline: str, column: Column, seed: int, reference: str = GRAD_ELLM) -> PairedTest:
    test = PairedTest(baseline, column.dataset, column.metric, 0)
    if not ours:
        test.note = f"no {reference} records"
        return test
    shared = sorted(ours.keys() & theirs.keys())
    test.pairs = len(shared)
    if len(shared) < 2:
        test.note = f"{len(shared)} paired input(s): too few to test"
        return test
    first, second = [ours[k] for k in shared], [theirs[k] for k in shared]
    test.difference = (sum(first) - sum(second)) / len(shared)
    test.p_value = paired_sign_flip_test(first, second, seed)
    return test


UDIG = "udig"
TOPK_TITLE = ("Top 20% of source tokens: Log-odds (lower is better), Comprehensiveness (higher), Sufficiency (lower), "
              "the UDIG and DIG papers' metrics")


def report_tables(collection: Collection, seed: int = 0) -> list[Table]:
    """Every table for every model: Table 1 (with its paired tests), Table 2, Deletion and Insertion (the
    paper's Tables 4 and 5 show both for one model each; keys table4, table5), the cost, and where the
    records hold them the top-k metrics (with UDIG's paired tests) and the path methods' WAE."""
    classification = [d for d in collection.datasets if d not in collection.generation]
    specs = [
        ("table1", "Table 1: AUC pi-Soft-NS / pi-Soft-NC (higher is better)", collection.datasets, [AUC_NS, AUC_NC]),
        ("table2", "Table 2: raw Soft-NS / Soft-NC (higher is better) and E[R]", collection.datasets, [SOFT_NS, SOFT_NC, EXPECTED_KEPT]),
        ("table4", "Deletion AUC (higher is better), classification (the paper's Tables 4-5)", classification, [DELETION]),
        ("table5", "Insertion AUC (lower is better), classification (the paper's Tables 4-5)", classification, [INSERTION]),
        ("topk", TOPK_TITLE, collection.datasets, [LOG_ODDS, COMPREHENSIVENESS, SUFFICIENCY]),
        ("wae", "Word approximation error of the path methods' points (lower: closer to real words)", collection.datasets, [WAE]),
        ("cost", "Cost: seconds per input to explain (the method) and to evaluate (all metrics)", collection.datasets,
         [EXPLAIN_SECONDS, EVALUATE_SECONDS]),
    ]
    tables = []
    for model in collection.models:
        for key, title, datasets, metrics in specs:
            table = build_table(collection, key, title, model, datasets, metrics, seed)
            if table is None:
                continue
            if key == "wae":  # the path methods only: the others have no path to measure
                table.methods = [m for m in table.methods if any(table.cells[(m, c)].n for c in table.columns)]
            if key == "table1":
                _add_tests(collection, table, seed)
            if key == "topk":
                table.reference = UDIG if UDIG in table.methods else GRAD_ELLM
                _add_tests(collection, table, seed)
            tables.append(table)
    return tables


def _add_tests(collection: Collection, table: Table, seed: int) -> None:
    """The paired tests of the table's reference method, or a note saying why there are none."""
    if table.reference not in table.methods:
        table.notes.append(f"paired tests: no {table.reference} records for this model")
    elif len(table.methods) == 1:
        table.notes.append(f"paired tests: no other method to test {table.reference} against")
    else:
        table.tests = paired_tests(collection, table, seed)
