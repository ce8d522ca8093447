"""Reports over metric records: the paper's Tables 1, 2, 4 and 5 and a cost table (Markdown, CSV, rich), and Figure 2.

``write_reports(run_dir)`` is what ``gradellm sweep`` calls at its end and ``gradellm render --table``
calls on demand; ``plot_pi_curves`` draws the pi curves for ``gradellm render --plot``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.console import Console
from rich.measure import Measurement

from ..atomic import replace_atomically
from ..errors import BadInput, OutputError
from .format import csv_text, markdown_table, rich_tables
from .load import Collection, collect, expand_sources, run_progress
from .plot import plot_pi_curves
from .tables import Table, report_tables

__all__ = ["Collection", "collect", "plot_pi_curves", "print_reports", "report_tables", "write_reports", "REPORT_FILES"]

# file stem -> the tables it holds
REPORT_FILES = {"table1": ("table1",), "table2": ("table2",), "deletion_insertion": ("table4", "table5"), "cost": ("cost",),
                "topk": ("topk",), "wae": ("wae",)}
OPTIONAL = ("topk", "wae")  # written only where records hold those metrics (runs before 0.4.0 have none)
# file stem -> what its records lack when it has no table
MISSING = {
    "table1": "no metric record holds auc_pi_soft_ns/auc_pi_soft_nc (evaluate with --metrics pi or all)",
    "table2": "no metric record holds soft_ns/soft_nc (evaluate with --metrics soft or all)",
    "deletion_insertion": "no classification metric record holds deletion_auc/insertion_auc (evaluate with --metrics all)",
    "cost": "no record holds seconds",
}


def write_reports(source: Path | str | Sequence[Path | str], out_dir: Path | str | None = None, *, seed: int = 0,
                  console: Console | None = None, dataset_of: Mapping[str, str] | None = None, write: bool = True) -> list[Path]:
    """Write table1, table2, deletion_insertion and cost as .md and .csv for the metric records of ``source``
    into ``out_dir``; print them on ``console`` when given. Returns the files written.

    ``source`` is a run folder, a metrics JSONL file, or several of them, whose records are reported as
    one (a published run and the runs that add methods or variants to it: each method or named variant
    is a row, tested against Grad-ELLM on the inputs they share). ``out_dir`` defaults to the run folder
    (or the file's folder) of a single source; several sources need one, so that no run's own tables are
    overwritten by a combined report. ``write`` False: print only (what ``gradellm render --table`` does
    without ``--table-out``), nothing written."""
    sources = [Path(source)] if isinstance(source, (str, Path)) else [Path(s) for s in source]
    if not sources:
        raise BadInput("no metric records to report: give a run folder or a metrics file")
    if write and out_dir is None and len(sources) > 1:
        raise BadInput("the tables of several runs need a folder of their own: give `out_dir`")
    collection = collect(sources, dataset_of)
    tables = report_tables(collection, seed)
    first = sources[0]
    target = Path(out_dir) if out_dir is not None else (first if first.is_dir() else first.parent)
    runs = expand_sources(sources)
    partial = "; ".join(filter(None, (partial_note(path, named=len(runs) > 1) for path in runs))) or None
    written = _write_files(tables, target, seed, partial) if write else []  # before printing: a closed pipe must not lose the files
    if console is not None:
        print_reports(collection, tables, console, seed)
        if partial:
            console.print(f"note: {partial}", style="yellow", markup=False, highlight=False, soft_wrap=True)
        for stem, keys in REPORT_FILES.items():
            if stem not in OPTIONAL and not any(t.key in keys for t in tables):
                console.print(f"note: {stem}: {MISSING[stem]}", style="yellow", markup=False, highlight=False, soft_wrap=True)
    return written


def print_reports(collection: Collection, tables: list[Table], console: Console, seed: int = 0) -> None:
    """The tables on ``console``: rich tables on a terminal wide enough for them; otherwise (a pipe, a
    file, a narrow terminal) the Markdown the files hold, whole, never cut to fit a width."""
    for table in tables:
        shown = rich_tables(table)
        if console.is_terminal and all(Measurement.get(console, console.options, t).minimum <= console.width for t in shown):
            for rich_table in shown:
                console.print(rich_table)
        else:
            console.print(markdown_table(table, seed), markup=False, highlight=False, soft_wrap=True)
        for note in table.notes:
            console.print(f"note: {note}", style="yellow", markup=False, highlight=False, soft_wrap=True)
        console.print()
    read = ", ".join(str(path) for path in collection.sources)
    console.print(f"{len(collection.rows)} metric record(s) from {read}; {collection.passed_over} passed over "
                  "(generation steps, duplicates)", style="dim", markup=False, highlight=False, soft_wrap=True)


def partial_note(source: Path, named: bool = False) -> str | None:
    """A sentence for the reports of a sweep run folder whose units are not all done yet, else None;
    ``named``: it names the folder (a report of several runs)."""
    progress = run_progress(source)
    if progress is None or progress[0] >= progress[1] or not any(source.glob("done*.jsonl")):
        return None  # no done log at all: records copied without their run's bookkeeping, not a run in progress
    run = f"partial run {source}" if named else "partial run"
    return f"{run}: {progress[0]} of {progress[1]} units done; these tables cover the finished units only"


def _write_files(tables: list[Table], target: Path, seed: int, partial: str | None = None) -> list[Path]:
    written = []
    try:
        target.mkdir(parents=True, exist_ok=True)
        for stem, keys in REPORT_FILES.items():
            chosen = [t for t in tables if t.key in keys]
            if not chosen and stem in OPTIONAL:
                continue
            markdown = "\n".join(markdown_table(t, seed) for t in chosen) or f"Note: {MISSING[stem]}.\n"
            if partial:
                markdown = f"**Note: {partial}.**\n\n{markdown}"
            for suffix, text in ((".md", markdown), (".csv", csv_text(chosen))):
                path = target / f"{stem}{suffix}"
                replace_atomically(path, text.encode("utf-8"))  # a kill mid-write leaves no table cut short
                written.append(path)
    except OSError as exc:
        raise OutputError(f"cannot write reports into {target}: {exc.strerror}") from None
    return written
