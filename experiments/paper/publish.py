"""When the paper run is done: its report into ``runs/paper/report/``, its tables into the results page
of the documentation (``docs/results.md``), a subset of its records into ``examples/paper-run/``, and
its SST-2 part into ``examples/sst2-20/`` with the pi-curve plots ``examples/pi_curves_*.png``.

    .venv/bin/python experiments/paper/publish.py        # refuses while units are missing
    # a dry run, writing nothing in the repository:
    .venv/bin/python experiments/paper/publish.py --partial --page /tmp/d/results.md --examples /tmp/d/ex \\
        --report /tmp/d/report --sst2-example /tmp/d/sst2-20 --plots /tmp/d

The page's part lies between the markers ``<!-- paper-run:begin -->`` and ``<!-- paper-run:end -->``
and is rewritten whole each time, so running this twice gives the same page. Its links are relative
to ``docs/`` wherever ``--page`` writes it. The wall time is read from ``timeline.log`` by
``wall_time.py``, as ``snapshot.sh`` reads it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import sys
from pathlib import Path

import orjson
from wall_time import wall_hours  # experiments/paper/wall_time.py, beside this script (snapshot.sh's rule too)

from gradellm_cli.reports import REPORT_FILES, collect, plot_pi_curves, write_reports
from gradellm_cli.sweep.store import done_units, read_run_heatmaps, read_run_metrics, unit_of

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "runs" / "paper"
PAGE = REPO / "docs" / "results.md"  # the documentation page that holds the run's tables
UP = "../"  # from docs/ to the repository root: the prefix of the page's links to the run's files
BEGIN, END = "<!-- paper-run:begin -->", "<!-- paper-run:end -->"
COMMAND = """OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 -m gradellm_cli sweep --models smollm2,gemma3 \\
    --datasets sst2,imdb,boolq,tellmewhy,wikibio --methods all --limit 20 --limit-generation 10 \\
    --balanced --boolq-context evidence --output-dir runs/paper"""


def plan_units(manifest: dict) -> int:
    plan = manifest["plan"]
    return len(plan["models"]) * len(plan["methods"]) * sum(len(d["ids"]) for d in plan["datasets"].values())


def demote(markdown: str, levels: int = 0) -> str:
    """Headings ``levels`` levels down (none: the report's ### sits under the page's ## section)."""
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + levels) + " ", markdown, flags=re.MULTILINE)


def page_part(report: Path, done: int, total: int, hours: float, versions: dict, models: list[str]) -> str:
    stems = [stem for stem in REPORT_FILES if (report / f"{stem}.md").exists()]  # topk and wae: only where records hold them
    tables = "\n\n".join(demote((report / f"{stem}.md").read_text().strip()) for stem in stems)
    plots = "\n".join(f"![pi curves, {model}]({UP}runs/paper/report/pi_curves_{model}.png)" for model in models)
    return f"""{BEGIN}
**The paper-scale run: results** ({done} of {total} units; written by `experiments/paper/publish.py`). The
command, on 2-vCPU x86_64 machines without GPU (gradellm {versions['gradellm']}, torch
{versions['torch']}, transformers {versions['transformers']}, Python {versions['python']}; the CPU
model varied from one machine to the next, see "Machines" in [`runs/paper/README.md`]({UP}runs/paper/README.md)),
resumed after every interruption as two one-thread processes (torchrun's two shards, then finer `--shard i/n` classes
kept busy by `experiments/paper/pool.py`); **{hours:.1f} hours of wall time** in all (`experiments/paper/timeline.log`):

```bash
{COMMAND}
```

The same tables as files: [`runs/paper/report/`]({UP}runs/paper/report/); a subset of the records (the
first input of each model and data set, every method): [`examples/paper-run/`]({UP}examples/paper-run/).

{tables}

The pi-Soft-NS/NC curves of each model on IMDb (the paper's Figure 2; `gradellm render runs/paper
--plot FILE --dataset imdb --model MODEL`):

{plots}
{END}"""


def write_subset(target: Path, manifest: dict) -> None:
    """The first input of each (model, data set) in plan order, every method: heatmaps and metrics."""
    plan = manifest["plan"]
    firsts = {(model, dataset): spec["ids"][0] for model in plan["models"] for dataset, spec in plan["datasets"].items()}

    def wanted(record: dict) -> bool:
        dataset, model, _, record_id = unit_of(record)
        return firsts.get((model, dataset)) == record_id

    target.mkdir(parents=True, exist_ok=True)
    for name, records in (("heatmaps.jsonl", read_run_heatmaps(RUN)), ("metrics.jsonl", read_run_metrics(RUN))):
        (target / name).write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records if wanted(r)))
    shutil.copy(RUN / "manifest.json", target / "manifest.json")


def write_sst2_example(target: Path, plots: Path, manifest: dict) -> None:
    """Every SST-2 metric record of the run in plan order (model, record, method), their tables and
    one pi-curve plot per model: the files ``examples/README.md`` names, now all from the run
    (before, the Gemma-3 half was computed ahead of the run, on another CPU)."""
    plan = manifest["plan"]
    names = (plan["models"], plan["datasets"]["sst2"]["ids"], plan["methods"])
    rank = [{name: i for i, name in enumerate(ordered)} for ordered in names]
    records = [record for record in read_run_metrics(RUN) if record["dataset"] == "sst2"]
    records.sort(key=lambda r: (rank[0][r["model"]], rank[1][r["id"]], rank[2][r["method"]], r.get("step", 0)))
    target.mkdir(parents=True, exist_ok=True)
    source = target / "metrics-sst2.jsonl"
    source.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    write_reports(source, target)
    collection = collect(source)
    for model in collection.models:  # as `gradellm render FILE --model MODEL --plot FILE` draws it
        rows = [row for row in collection.rows if row["model"] == model]
        plot_pi_curves(dataclasses.replace(collection, rows=rows), plots / f"pi_curves_{model}.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partial", action="store_true", help="publish although units are missing (for a dry run)")
    parser.add_argument("--page", "--readme", type=Path, default=PAGE, help="the page to write the tables into (default docs/results.md)")
    parser.add_argument("--examples", type=Path, default=REPO / "examples" / "paper-run")
    parser.add_argument("--report", type=Path, default=RUN / "report")
    parser.add_argument("--sst2-example", type=Path, default=REPO / "examples" / "sst2-20", help="the SST-2 part and its tables")
    parser.add_argument("--plots", type=Path, default=REPO / "examples", help="folder of the SST-2 pi_curves_MODEL.png")
    args = parser.parse_args()
    manifest = json.loads((RUN / "manifest.json").read_text())
    done, total = len(done_units(RUN)), plan_units(manifest)
    if done < total and not args.partial:
        print(f"publish.py: {done} of {total} units done; finish the run first (or --partial for a dry run)", file=sys.stderr)
        return 1
    write_reports(RUN, args.report)
    collection = collect(RUN)
    for model in collection.models:  # the paper's Figure 2: IMDb
        rows = [row for row in collection.rows if row["model"] == model and row["dataset"] == "imdb"]
        plot_pi_curves(dataclasses.replace(collection, rows=rows), args.report / f"pi_curves_{model}.png", title=f"{model}, IMDb")
    page = args.page.read_text() if args.page.exists() else PAGE.read_text()
    if BEGIN not in page or END not in page:
        print(f"publish.py: {args.page} has no {BEGIN} ... {END} markers", file=sys.stderr)
        return 1
    head, rest = page.split(BEGIN, 1)
    hours = wall_hours(Path(__file__).resolve().parent / "timeline.log")
    part = page_part(args.report, done, total, hours, manifest["versions"], collection.models)
    args.page.write_text(head + part + rest.split(END, 1)[1])
    write_subset(args.examples, manifest)
    write_sst2_example(args.sst2_example, args.plots, manifest)
    print(f"publish.py: {done} of {total} units; report in {args.report}, tables in {args.page}, subset in {args.examples}, "
          f"SST-2 part in {args.sst2_example}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
