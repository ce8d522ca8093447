"""Report tables as Markdown, CSV rows and rich tables.

Marks, as in the paper: best of a column in bold, second underlined, third in italics (Markdown:
``**x**``, ``<u>x</u>``, ``*x*``). Each cell is the mean with its 95% bootstrap interval. CSV is one
row per (model, table, method, data set, metric), so it can be read back without parsing the marks.
"""

from __future__ import annotations

import csv
import io

from rich.table import Table as RichTable
from rich.text import Text

from .stats import CONFIDENCE, RESAMPLES
from .tables import AVERAGE, GRAD_ELLM, Cell, Column, PairedTest, Table

MARKDOWN_MARKS = {1: ("**", "**"), 2: ("<u>", "</u>"), 3: ("*", "*")}
RICH_MARKS = {1: "bold green", 2: "underline", 3: "italic"}
CSV_FIELDS = ["model", "table", "method", "dataset", "metric", "mean", "ci_low", "ci_high", "n", "errors", "partial", "rank",
              "diff_grad_ellm_minus_method", "p_value", "p_holm", "pairs", "test_note"]


def difference_field(reference: str) -> str:
    """The CSV column of a paired test's mean difference: ``diff_grad_ellm_minus_method`` for Grad-ELLM's."""
    return f"diff_{reference.replace('-', '_')}_minus_method"


def legend(seed: int, ranked: bool = True) -> str:
    text = f"Mean over inputs [{CONFIDENCE:.0%} percentile bootstrap interval, {RESAMPLES} resamples, seed {seed}]."
    return text + (" Best of a column **bold**, second <u>underlined</u>, third *italic*." if ranked else " Not ranked.")


def header(column: Column) -> str:
    return f"{column.dataset}: {column.metric.label}"


def number(value: float) -> str:
    return "—" if value != value else f"{value:.3f}"


def cell_text(cell: Cell) -> str:
    if cell.n == 0:
        return "—"
    return f"{cell.mean:.3f} [{cell.low:.3f}, {cell.high:.3f}]"


def p_text(p: float | None) -> str:
    if p is None or p != p:
        return "—"
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def test_text(test: PairedTest) -> str:
    if test.p_value is None:
        return f"n/a ({test.note})"
    return f"{test.difference:+.3f} (p={p_text(test.p_value)}, Holm {p_text(test.p_holm)}, n={test.pairs})"


# --- Markdown ------------------------------------------------------------------------------------------


def markdown_table(table: Table, seed: int) -> str:
    ranked = any(column.metric.higher_is_better is not None for column in table.columns)
    lines = [f"### {table.title}, model `{table.model}`", "", legend(seed, ranked), ""]
    lines += _markdown_grid(["method", *map(header, table.columns)], [
        [f"`{m}`", *(_marked(table.cells[(m, c)]) for c in table.columns)] for m in table.methods
    ])
    lines += ["", "Inputs per cell (n; errors: inputs left out; partial: generations with failed steps, averaged over the rest):", ""]
    datasets = list(dict.fromkeys(c.dataset for c in table.columns if c.dataset != AVERAGE))
    lines += _markdown_grid(["method", *datasets], [[f"`{m}`", *(_inputs(table, m, d) for d in datasets)] for m in table.methods])
    if table.tests:
        lines += ["", f"Paired sign-flip test, `{table.reference}` minus each other method on the same inputs: mean difference "
                  "(two-sided p, exact up to 16 pairs, else 10,000 random sign patterns; Holm: p adjusted by Holm's "
                  "method for all the baselines of its column, which bounds the family-wise error rate):", ""]
        lines += _markdown_grid(["baseline", *(header(c) for c in _test_columns(table))], _test_rows(table))
    lines += [f"\nNote: {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def _markdown_grid(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    return out + ["| " + " | ".join(row) + " |" for row in rows]


def _marked(cell: Cell) -> str:
    text = cell_text(cell)
    if cell.n == 0 or cell.rank not in MARKDOWN_MARKS:
        return text
    before, after = MARKDOWN_MARKS[cell.rank]
    mean, _, interval = text.partition(" ")
    return f"{before}{mean}{after} {interval}"


def _inputs(table: Table, method: str, dataset: str) -> str:
    cells = [table.cells[(method, c)] for c in table.columns if c.dataset == dataset]
    n, errors, partial = (max(getattr(c, name) for c in cells) for name in ("n", "errors", "partial"))
    notes = [f"{errors} error{'s' * (errors != 1)}"] * bool(errors) + [f"{partial} partial"] * bool(partial)
    return f"{n}" + (f" ({', '.join(notes)})" if notes else "")


def _test_columns(table: Table) -> list[Column]:
    return [Column(d, m) for d, m in dict.fromkeys((t.dataset, t.metric) for t in table.tests)]


def _test_rows(table: Table) -> list[list[str]]:
    by_key = {(t.baseline, t.dataset, t.metric): t for t in table.tests}
    baselines = list(dict.fromkeys(t.baseline for t in table.tests))
    return [[f"`{b}`", *(test_text(by_key[(b, c.dataset, c.metric)]) for c in _test_columns(table))] for b in baselines]


# --- CSV -----------------------------------------------------------------------------------------------


def csv_text(tables: list[Table]) -> str:
    buffer = io.StringIO()
    reference = tables[0].reference if tables else GRAD_ELLM
    fields = [difference_field(reference) if name == "diff_grad_ellm_minus_method" else name for name in CSV_FIELDS]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for table in tables:
        tests = {(t.baseline, t.dataset, t.metric): t for t in table.tests}
        for method in table.methods:
            for column in table.columns:
                writer.writerow(_csv_row(table, method, column, tests.get((method, column.dataset, column.metric))))
    return buffer.getvalue()


def _csv_row(table: Table, method: str, column: Column, test: PairedTest | None) -> dict[str, object]:
    cell = table.cells[(method, column)]
    row: dict[str, object] = {
        "model": table.model, "table": table.key, "method": method, "dataset": column.dataset, "metric": column.metric.field,
        "mean": _csv_number(cell.mean), "ci_low": _csv_number(cell.low), "ci_high": _csv_number(cell.high),
        "n": cell.n, "errors": cell.errors, "partial": cell.partial, "rank": cell.rank if cell.rank is not None else "",
    }
    if test is not None:
        row |= {difference_field(table.reference): _csv_number(test.difference), "pairs": test.pairs, "test_note": test.note,
                "p_value": _csv_number(test.p_value), "p_holm": _csv_number(test.p_holm)}
    return row


def _csv_number(value: float | None) -> str:
    """Six decimals; an empty cell for a value that is undefined (NaN) or was never computed (None)."""
    return "" if value is None or value != value else repr(round(float(value), 6))


# --- rich ----------------------------------------------------------------------------------------------


def rich_tables(table: Table) -> list[RichTable]:
    """The table, and its paired tests when it has them, for ``Console.print``."""
    main = RichTable(title=f"{table.title}, model {table.model}", title_justify="left")
    main.add_column("method")
    for column in table.columns:
        main.add_column(f"{column.dataset}\n{column.metric.label}", justify="right")
    main.add_column("n\n" + " / ".join(dict.fromkeys(c.dataset for c in table.columns if c.dataset != AVERAGE)), justify="right")
    for method in table.methods:
        cells = [table.cells[(method, c)] for c in table.columns]
        main.add_row(method, *(_rich_cell(c) for c in cells), _rich_inputs(table, method))
    out = [main]
    if table.tests:
        tests = RichTable(title=f"Paired test: {table.reference} minus other method (p, Holm-adjusted p, pairs), model {table.model}",
                          title_justify="left")
        tests.add_column("baseline")
        for column in _test_columns(table):
            tests.add_column(f"{column.dataset}\n{column.metric.label}", justify="right")
        for row in _test_rows(table):
            tests.add_row(row[0].strip("`"), *row[1:])
        out.append(tests)
    return out


def _rich_cell(cell: Cell) -> Text:
    if cell.n == 0:
        return Text("—")
    text = Text(f"{cell.mean:.3f}", style=RICH_MARKS.get(cell.rank or 0, ""))
    text.append(f"\n[{cell.low:.3f}, {cell.high:.3f}]", style="dim")
    return text


def _rich_inputs(table: Table, method: str) -> str:
    datasets = dict.fromkeys(c.dataset for c in table.columns if c.dataset != AVERAGE)
    return " / ".join(_inputs(table, method, d) for d in datasets)
