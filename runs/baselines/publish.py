"""Table 1 with the paper's baselines: the combined report of runs/paper and runs/baselines, into the
results page of the documentation (docs/results.md).

    python runs/baselines/publish.py          # from the repository root, after the runs (or during them)

1. ``gradellm render --table runs/paper runs/baselines --table-out runs/baselines/report`` (every table,
   both runs as one, with CIs and paired tests against Grad-ELLM);
2. from its ``table1.csv``, per model, a compact Table 1 over the three data sets these runs cover
   (SST-2, BoolQ, TellMeWhy), every method's mean [95% interval] and rank (n below 20/20/10 marked),
   written into docs/results.md between ``<!-- baselines:begin -->`` and ``<!-- baselines:end -->``,
   with the units done and the wall time from ``timeline.log``. The rest of the page is left as it is,
   so running this twice gives the same page.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "runs"))
from runlib import wall_hours, write_between  # noqa: E402 - runs/runlib.py, shared by the runs' publish scripts

RUN = ROOT / "runs" / "baselines"
DATASETS = ("sst2", "boolq", "tellmewhy")
FULL = {"sst2": 20, "boolq": 20, "tellmewhy": 10}
METRICS = (("auc_pi_soft_ns", "NS"), ("auc_pi_soft_nc", "NC"))
NEW = ("value-zeroing", "grad-ellm (port)", "attention (all layers)")
BEGIN, END = "<!-- baselines:begin -->", "<!-- baselines:end -->"
PAGE = ROOT / "docs" / "results.md"  # the documentation page that holds the table


def make_report() -> None:
    command = [sys.executable, "-m", "gradellm_cli", "render", "--table", "runs/paper", "runs/baselines",
               "--table-out", "runs/baselines/report"]
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def read_table1() -> dict[str, dict[tuple[str, str, str], dict[str, str]]]:
    rows: dict[str, dict] = defaultdict(dict)
    with open(RUN / "report" / "table1.csv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["dataset"] in DATASETS:
                rows[row["model"]][(row["method"], row["dataset"], row["metric"])] = row
    return rows


def cell(row: dict[str, str] | None, dataset: str) -> str:
    if row is None or not row["mean"]:
        return "—"
    text = f"{float(row['mean']):.3f} [{float(row['ci_low']):.3f}, {float(row['ci_high']):.3f}] ({row['rank']})"
    if int(row["n"]) < FULL[dataset]:
        text += f" n={row['n']}"
    return text


def model_table(model: str, rows: dict[tuple[str, str, str], dict[str, str]]) -> list[str]:
    methods = list(dict.fromkeys(method for method, _, _ in rows))
    head = [f"{d} {label}" for d in DATASETS for _, label in METRICS]
    lines = [f"**{model}** (AUC pi-Soft-NS / NC, mean [95% interval] (rank in the column))", "",
             "| method | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    for method in methods:
        name = f"**`{method}`**" if method in NEW else f"`{method}`"
        cells = [cell(rows.get((method, d, m)), d) for d in DATASETS for m, _ in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def units_done() -> str:
    parts = []
    for folder in sorted(p for p in RUN.iterdir() if (p / "manifest.json").exists()):
        planned = json.loads((folder / "manifest.json").read_text())["plan"]["units"]
        done_log = folder / "done.jsonl"
        done = sum(1 for line in done_log.read_text().splitlines() if line.strip()) if done_log.exists() else 0
        parts.append(f"`{folder.name}` {done} of {planned}")
    return ", ".join(parts)


def main() -> None:
    make_report()
    tables = read_table1()
    hours = wall_hours(RUN / "timeline.log")
    lines = [BEGIN, f"Units done: {units_done()}; {hours:.1f} hours of wall time so far "
             "(two or three single-threaded sweeps side by side on a 2-vCPU machine; `runs/baselines/timeline.log`).", ""]
    for model in ("smollm2", "gemma3"):
        if model in tables:
            lines += model_table(model, tables[model])
    lines.append(END)
    write_between(PAGE, BEGIN, END, lines[1:-1])
    print(f"{PAGE.relative_to(ROOT)}: Table 1 with the baselines ({units_done()})")


if __name__ == "__main__":
    main()
