"""The UDIG/DIG report: top-k metrics of every method and UDIG's AUC beside Table 1, into docs/results-udig.md.

    python runs/udig/publish.py          # from the repository root, after the runs (or during them)

1. ``gradellm render --table`` over the udig/dig sweeps and the top-k metrics of the published heatmaps
   (``published-topk``) into ``runs/udig/report``: Log-odds, Comprehensiveness and Sufficiency of all
   eleven methods, with CIs and paired tests of UDIG against each other method;
2. the same over ``runs/paper`` and the udig/dig sweeps into ``runs/udig/report-table1``: Table 1 (AUC
   pi-Soft-NS/NC) with UDIG and DIG rows;
3. compact tables and a verdict, computed from those CSV files, written into docs/results-udig.md
   between ``<!-- udig:begin -->`` and ``<!-- udig:end -->``.
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

RUN = ROOT / "runs" / "udig"
PAGE = ROOT / "docs" / "results-udig.md"
SWEEPS = ("sst2", "imdb-smollm2", "imdb-gemma3")
DATASETS = ("sst2", "imdb")
FULL = 20  # records per data set and model
TOPK = (("log_odds", "Log-odds", "lower"), ("comprehensiveness", "Compr.", "higher"), ("sufficiency", "Suff.", "lower"))
AUC = (("auc_pi_soft_ns", "pi-NS"), ("auc_pi_soft_nc", "pi-NC"))
NEW = ("udig", "dig")
ALPHA = 0.05
BEGIN, END = "<!-- udig:begin -->", "<!-- udig:end -->"

Rows = dict[tuple[str, str, str], dict[str, str]]  # (method, dataset, metric) -> CSV row


def render(sources: list[str], out: str) -> None:
    command = [sys.executable, "-m", "gradellm_cli", "render", "--table", *sources, "--table-out", out]
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def existing(*names: str) -> list[str]:
    return [f"runs/udig/{name}" for name in names if (RUN / name).exists()]


def read(path: Path) -> dict[str, Rows]:
    rows: dict[str, Rows] = defaultdict(dict)
    with open(path, encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["dataset"] in DATASETS:
                rows[row["model"]][(row["method"], row["dataset"], row["metric"])] = row
    return rows


def cell(row: dict[str, str] | None, digits: int = 3) -> str:
    if row is None or not row["mean"]:
        return "—"
    text = f"{float(row['mean']):.{digits}f} [{float(row['ci_low']):.{digits}f}, {float(row['ci_high']):.{digits}f}] ({row['rank']})"
    return text + (f" n={row['n']}" if int(row["n"]) < FULL else "")


def table(rows: Rows, metrics, title: str) -> list[str]:
    methods = sorted({method for method, _, _ in rows}, key=lambda m: (m not in NEW, m))
    head = [f"{d} {label}" for d in DATASETS for _, label, *_ in metrics]
    lines = [title, "", "| method | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    for method in methods:
        name = f"**`{method}`**" if method in NEW else f"`{method}`"
        lines.append(f"| {name} | " + " | ".join(cell(rows.get((method, d, m[0]))) for d in DATASETS for m in metrics) + " |")
    return lines + [""]


def tests(rows: Rows) -> list[str]:
    """UDIG minus IG and minus DIG, per column: the mean difference, p and Holm's p (over all methods of the column)."""
    head = [f"{d} {label}" for d in DATASETS for _, label, _ in TOPK]
    lines = ["| udig minus | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    for other in ("integrated-gradients", "dig"):
        cells = []
        for d in DATASETS:
            for metric, _, _ in TOPK:
                row = rows.get((other, d, metric))
                if row is None or not row["p_value"]:
                    cells.append("—")
                else:
                    diff, p, holm = (float(row[key]) for key in ("diff_udig_minus_method", "p_value", "p_holm"))
                    cells.append(f"{diff:+.3f} (p {p:.3f}, Holm {holm:.3f})")
        lines.append(f"| `{other}` | " + " | ".join(cells) + " |")
    return lines + [""]


def better(diff: float, direction: str) -> bool:
    return diff < 0 if direction == "lower" else diff > 0


def verdict(topk: dict[str, Rows], auc: dict[str, Rows]) -> list[str]:
    """Where UDIG ranks first, and where it beats or loses to IG and DIG at Holm p < 0.05: counted, not hand-written."""
    first = columns = 0
    wins: dict[str, list[str]] = defaultdict(list)
    losses: dict[str, list[str]] = defaultdict(list)
    for model, rows in topk.items():
        for d in DATASETS:
            for metric, label, direction in TOPK:
                row = rows.get(("udig", d, metric))
                if row is None or not row["mean"]:
                    continue
                columns += 1
                first += row["rank"] == "1"
                for other in ("integrated-gradients", "dig"):
                    test = rows.get((other, d, metric))
                    if test is None or not test["p_holm"] or float(test["p_holm"]) >= ALPHA:
                        continue
                    where = f"{model} {d} {label}"
                    (wins if better(float(test["diff_udig_minus_method"]), direction) else losses)[other].append(where)
    auc_ranks = [rows[("udig", d, m)]["rank"] for rows in auc.values() for d in DATASETS for m, _ in AUC
                 if rows.get(("udig", d, m), {}).get("rank")]
    methods = len({method for rows in topk.values() for method, _, _ in rows})
    lines = [f"* UDIG ranks first of {methods} methods in {first} of {columns} top-k columns (model x data set x metric)."]
    for other, name in (("integrated-gradients", "integrated gradients"), ("dig", "DIG")):
        won, lost = wins[other], losses[other]
        lines.append(f"* Against {name}, at Holm p < {ALPHA}: better in {len(won)} column(s)"
                     + (f" ({', '.join(won)})" if won else "") + f", worse in {len(lost)}" + (f" ({', '.join(lost)})" if lost else "")
                     + f"; the other {columns - len(won) - len(lost)} show no difference the tests can tell.")
    if auc_ranks:
        lines.append(f"* On Table 1's AUC pi-Soft-NS/NC its ranks among the {methods} methods are {', '.join(auc_ranks)} "
                     "(SmolLM2 then Gemma-3; SST-2 NS, NC, then IMDb NS, NC).")
    return lines


def units_done() -> str:
    parts = []
    for name in SWEEPS:
        folder = RUN / name
        if not (folder / "manifest.json").exists():
            parts.append(f"`{name}` not started")
            continue
        planned = json.loads((folder / "manifest.json").read_text())["plan"]["units"]
        done = sum(1 for log in folder.glob("done*.jsonl") for line in log.read_text().splitlines() if line.strip())
        parts.append(f"`{name}` {done} of {planned}")
    return ", ".join(parts)


def main() -> None:
    sweeps = existing(*SWEEPS)
    render(existing("published-topk") + sweeps, "runs/udig/report")
    render(["runs/paper", *sweeps], "runs/udig/report-table1")
    topk, auc = read(RUN / "report" / "topk.csv"), read(RUN / "report-table1" / "table1.csv")
    hours = wall_hours(RUN / "timeline.log", running_until_now=True)
    lines = [BEGIN, f"Units done: {units_done()}; {hours:.1f} hours of wall time (two single-threaded lanes on a "
             "2-vCPU machine; `runs/udig/timeline.log`). Cells: mean [95% bootstrap interval] (rank in the column); "
             f"n below {FULL} is marked.", ""]
    for model in ("smollm2", "gemma3"):
        if model not in topk:
            continue
        lines += table(topk[model], TOPK, f"**{model}**: top 20% of source tokens: Log-odds (lower is better), "
                       "Comprehensiveness (higher), Sufficiency (lower)")
        lines += [f"Paired sign-flip tests, {model}: UDIG minus integrated gradients and minus DIG on the same inputs "
                  "(Holm: over all ten other methods of the column):", ""] + tests(topk[model])
        if model in auc:
            lines += table(auc[model], AUC, f"**{model}**: Table 1's AUC pi-Soft-NS / pi-Soft-NC (higher is better), "
                           "with UDIG and DIG")
    lines += ["What the numbers say, counted by `publish.py`:", "", *verdict(topk, auc), "", END]
    write_between(PAGE, BEGIN, END, lines[1:-1])
    print(f"{PAGE.relative_to(ROOT)}: UDIG/DIG report ({units_done()})")


if __name__ == "__main__":
    main()
