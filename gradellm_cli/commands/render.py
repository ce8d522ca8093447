"""``gradellm render``: show heatmap records again, in the terminal or as one self-contained HTML page;
with ``--table`` or ``--plot``, report metric records instead (``gradellm_cli.reports``).

Metric and error records in the same file are passed over (a note on stderr says how many); a line
that is not JSON, or a heatmap record without its token lists, ends the run with a one-line error.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.style import Style
from rich.text import Text

from ..errors import BadInput, GradellmError, NotFound, OutputError
from ..pipelines.reading import read_heatmaps
from ..render_html import html_page
from ..units import REDUCTIONS, UNIT_KINDS, Unit, display_units
from ..view import _display, _style, heatmap_header, print_heatmap

EXAMPLES = """
Examples:

  gradellm render heatmaps.jsonl

  gradellm render heatmaps.jsonl --words --id sst2-test-1354 --method grad-ellm,saliency

  gradellm render heatmaps.jsonl --by sentence            # each sentence's score: the sum of its tokens'

  gradellm render chats.jsonl --by message --reduce max   # one line per message of a chat

  gradellm render heatmaps.jsonl --top-p 0.3

  gradellm render heatmaps.jsonl --method all --html heatmaps.html

  gradellm render --table RUN_DIR                      # Tables 1, 2, 4/5 and cost of metric records, .md and .csv

  gradellm render --table runs/paper runs/baselines --table-out tables/   # several runs as one report

  gradellm render metrics.jsonl --plot pi_curves.png   # pi-Soft-NS/NC vs pi, one line per method

  gradellm render RUN_DIR --plot fig2.png --dataset imdb --model smollm2   # the paper's Figure 2
"""

def render(
    sources: list[str] = typer.Argument(
        ..., metavar="FILE", show_default=False,
        help="Heatmap JSONL files written by `gradellm explain` ('-' for stdin); with --table/--plot, metric files or run folders "
        "(several are reported as one).",
    ),
    words: bool = typer.Option(False, "--words", help="Words, scored by their tokens' max: --by word --reduce max."),
    by: str = typer.Option("token", "--by", help="Units: token, word, sentence or message (chats)."),
    reduce: str = typer.Option("sum", "--reduce", help="A unit's score from its tokens' scores: sum or max."),
    top_p: float | None = typer.Option(
        None, "--top-p", metavar="PI", help="Colour by the pi-transformed keep-probability (mean PI); bold = kept (>= 0.5)."
    ),
    all_tokens: bool = typer.Option(False, "--all-tokens", help="Show template tokens too, not only the user's text."),
    record_id: list[str] | None = typer.Option(None, "--id", help="Only these record ids (repeat, or comma-separate)."),
    method: str | None = typer.Option(None, "--method", help="Only these methods, comma-separated ('all' for every one)."),
    html: str | None = typer.Option(None, "--html", help="Write one self-contained HTML page here instead of printing."),
    table: bool = typer.Option(
        False, "--table", help="Metric records: print Tables 1, 2, 4/5, cost and top-k (--table-out: also as .md/.csv files)."
    ),
    table_out: str | None = typer.Option(None, "--table-out", metavar="DIR", help="Write the --table tables (.md, .csv) here."),
    plot: str | None = typer.Option(None, "--plot", metavar="FILE", help="Metric records: pi-Soft-NS/NC vs pi per method (.png/.svg)."),
    dataset: str | None = typer.Option(
        None, "--dataset", help="With --plot: only these data sets, comma-separated (the paper's Figure 2 is imdb)."
    ),
    model: str | None = typer.Option(None, "--model", help="With --plot: only these models, comma-separated."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap intervals and paired tests of --table."),
) -> None:
    """Show the heatmaps in JSONL files: coloured tokens in the terminal, or an HTML page with the
    methods side by side for each input. With --table or --plot: report metric records."""
    if (dataset is not None or model is not None) and plot is None:
        raise BadInput("--dataset and --model go with --plot")
    if table or plot is not None or table_out is not None:
        _report(sources, table, table_out, plot, seed, {"method": method, "dataset": dataset, "model": model})
        return
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise BadInput(f"--top-p takes a pi in (0, 1], not {top_p:g}")
    if by not in UNIT_KINDS:
        raise BadInput(f"--by takes {', '.join(UNIT_KINDS)}, not {by!r}")
    if reduce not in REDUCTIONS:
        raise BadInput(f"--reduce takes sum or max, not {reduce!r}")
    if words:
        if (by, reduce) not in (("token", "sum"), ("word", "max")):
            raise BadInput("--words means --by word --reduce max; give one or the other")
        by, reduce = "word", "max"
    view = {"by": by, "reduce": reduce}
    ids = _split(record_id)
    methods = None if method in (None, "all") else _split([method])
    skipped: Counter[str] = Counter()
    if sources.count("-") > 1:
        raise BadInput("stdin ('-') can be read once")
    records = (record for path in sources for record in read_heatmaps(path, ids, methods, skipped))
    named = ", ".join(sources)
    if html is not None:
        count = _write_html(html, list(records), sources, all_tokens, view, top_p)
    else:
        count = _print_all(records, all_tokens, view, top_p)
    if skipped:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(skipped.items()))
        print(f"gradellm: note: passed over {kinds} record(s) (not heatmaps)", file=sys.stderr)
    if not count:
        wanted = " matching --id/--method" if ids or methods else ""
        raise NotFound(f"no heatmap records{wanted} in {named}")


def _split(values: list[str] | None) -> set[str] | None:
    if not values:
        return None
    return {part.strip() for value in values for part in value.split(",") if part.strip()} or None


def _print_all(records: Iterator[dict[str, Any]], all_tokens: bool, view: dict[str, str], top_p: float | None) -> int:
    console = Console()
    plain = not console.is_terminal or console.no_color
    count = 0
    for record in records:
        count += 1
        if view["by"] == "token" and top_p is None:
            print_heatmap(console, record, all_tokens)  # exactly what `explain` prints
            continue
        note = None
        try:  # before the header: a record that cannot be shown this way ends the run with nothing half-printed
            units, summary = display_units(record, all_tokens=all_tokens, top_p=top_p, **view)
            note = None if summary is None else (summary.describe(), "dim")
        except BadInput:
            raise
        except GradellmError as exc:  # scores the pi transform is undefined for
            note = (f"top-p view unavailable: {exc.message}", "yellow")
            units, _ = display_units(record, all_tokens=all_tokens, **view)
        console.print(heatmap_header(record))
        if note is not None:
            console.print(note[0], style=note[1], markup=False, highlight=False)
        if view["by"] == "message":
            for unit in units:  # one line per message, its role in front
                console.print(Text(f"[{unit.label}] ", style="bold") + units_text([unit], numbers=plain))
        else:
            console.print(units_text(units, numbers=plain))
        console.print()
    return count


def units_text(units: list[Unit], numbers: bool = False) -> Text:
    """The units as one coloured paragraph (the colours of ``view.py``); kept units are bold and
    underlined; ``numbers`` appends each weight, with ``*`` for a kept unit (for output without colour)."""
    text = Text()
    for unit in units:
        style = _style(unit.weight)
        if unit.kept:
            style += Style(bold=True, underline=True)
        text.append(_display(unit.text), style=style)
        if numbers:
            text.append(f"[{unit.weight:.2f}{'*' if unit.kept else ''}]", style="dim")
    return text


def _write_html(
    path: str, records: list[dict[str, Any]], sources: list[str], all_tokens: bool, view: dict[str, str], top_p: float | None
) -> int:
    if not records:
        return 0
    title = "gradellm heatmaps: " + ", ".join(Path(name).name if name != "-" else "stdin" for name in sources)
    page = html_page(records, title=title, all_tokens=all_tokens, top_p=top_p, **view)
    try:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    ids = len({str(record["id"]) for record in records})
    print(f"gradellm: wrote {path}: {ids} input(s), {len(records)} heatmap(s)", file=sys.stderr)
    return len(records)


def _report(sources: list[str], table: bool, table_out: str | None, plot: str | None, seed: int, only: dict[str, str | None]) -> None:
    """--table / --plot: the reports of ``gradellm_cli.reports`` (imported here: the heatmap views need none of it)."""
    from ..reports import collect, plot_pi_curves, write_reports

    if "-" in sources:
        raise BadInput("--table and --plot read metric files or run folders, not stdin")
    if table_out is not None and not table:
        raise BadInput("--table-out goes with --table")
    paths = [Path(source) for source in sources]
    named = ", ".join(sources)
    if table:  # printed; written only into a --table-out folder (reading a run folder leaves it as it was)
        written = write_reports(paths, table_out, seed=seed, console=Console(), write=table_out is not None)
        if written:
            print(f"gradellm: wrote {', '.join(str(path) for path in written)}", file=sys.stderr)
    if plot is not None:
        collection = collect(paths)
        for field, value in only.items():  # --method, --dataset, --model
            wanted = None if value in (None, "all") else _split([value])
            if wanted is not None:
                collection.rows = [row for row in collection.rows if row[field] in wanted]
                if not collection.rows:
                    raise NotFound(f"no metric records of {field}(s) {', '.join(sorted(wanted))} in {named}")
        print(f"gradellm: wrote {plot_pi_curves(collection, Path(plot))}", file=sys.stderr)
