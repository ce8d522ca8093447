"""How many CPU-hours the paper run has left: a rough forecast from the units it has done.

    nice .venv-paper/bin/python experiments/paper/forecast.py     # the run's pinned environment (resume.sh builds it)

For each method, fits seconds = a * tokens^b (explain + all metrics of a unit) on the SmolLM2
classification units done so far, and applies it to the prompt length of every unit left under its
own model's tokenizer and template. Gemma-3 gets a per-method factor from its SST-2 units in
examples/sst2-20 (computed ahead of the run: metrics only); generation records get the median ratio
of measured to fitted seconds of the generation units done (20 steps explained, metrics every 5th).
It is a forecast, not a measurement: the run's report gives the measured seconds at the end.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

from transformers import AutoTokenizer

from gradellm_cli.models import convert_gguf, resolve_model
from gradellm_cli.prompts import build_prompt, get_task
from gradellm_cli.sweep.manifest import ADDED_LATER
from gradellm_cli.sweep.plan import SweepOptions, build_plan
from gradellm_cli.sweep.store import done_units, read_run_heatmaps, read_run_metrics, unit_of

RUN = Path(__file__).resolve().parents[2] / "runs" / "paper"
EXAMPLE = RUN.parents[1] / "examples" / "sst2-20" / "metrics-sst2.jsonl"
GENERATION = ("tellmewhy", "wikibio")
Unit = tuple[str, str, str, str]  # (dataset, model, method, record id)


def prompt_tokens() -> dict[tuple[str, str, str], int]:
    """(model, dataset, id) -> prompt length, for every group of the manifest's plan."""
    manifest = json.loads((RUN / "manifest.json").read_text())
    plan = build_plan(SweepOptions.from_flat(**(ADDED_LATER | manifest["options"])))  # the run's manifest is of 0.1.0: flat
    tokenizers = {m: AutoTokenizer.from_pretrained(convert_gguf(Path(resolve_model(m).location))) for m in plan.models}
    return {
        (g.model, g.dataset.name, str(g.record["id"])): int(
            build_prompt(get_task(g.dataset.task), tokenizers[g.model], g.record["values"]).input_ids.numel()
        )
        for g in plan.groups
    }


def unit_seconds() -> dict[Unit, float]:
    """Each committed unit's seconds: explain (its heatmaps) plus evaluate (its metric records).

    The sweep's own readers: every shard's files, done units only, each record once.
    """
    seconds: dict[Unit, float] = defaultdict(float)
    for record in [*read_run_heatmaps(RUN), *read_run_metrics(RUN)]:
        if record.get("step") != -1:  # a generation's sequence record holds the sum of its steps' seconds
            seconds[unit_of(record)] += record.get("seconds") or 0.0
    return seconds


def power_fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares of log seconds on log tokens: (log a, b)."""
    xs, ys = [math.log(t) for t, _ in points], [math.log(s) for _, s in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def main() -> None:
    tokens = prompt_tokens()
    methods = json.loads((RUN / "manifest.json").read_text())["plan"]["methods"]
    done, seconds = done_units(RUN), unit_seconds()
    fits = {}
    for method in methods:
        points = [
            (tokens[(mo, d, i)], s)
            for (d, mo, me, i), s in seconds.items()
            if (me, mo) == (method, "smollm2") and d not in GENERATION and s > 0
        ]
        fits[method] = power_fit(points)

    def fitted(method: str, n: int) -> float:
        log_a, b = fits[method]
        return math.exp(log_a + b * math.log(n))

    gemma, smol = defaultdict(float), defaultdict(float)
    for line in EXAMPLE.open():  # SST-2: one record per unit
        r = json.loads(line)
        (gemma if r["model"] == "gemma3" else smol)[(r["method"], r["id"])] += r.get("seconds") or 0.0
    gemma_factor = {m: statistics.median(gemma[k] / smol[k] for k in gemma if k[0] == m and smol.get(k)) for m in methods}
    ratios = [s / fitted(me, tokens[(mo, d, i)]) for (d, mo, me, i), s in seconds.items() if d in GENERATION]
    generation_factor = statistics.median(ratios) if ratios else 6.0

    left: dict[tuple[str, str], float] = defaultdict(float)
    for (model, dataset, rid), n in tokens.items():
        for method in methods:
            if (dataset, model, method, rid) not in done:
                factor = (gemma_factor[method] if model == "gemma3" else 1.0) * (generation_factor if dataset in GENERATION else 1.0)
                left[(model, dataset)] += fitted(method, n) * factor
    for method in methods:
        print(f"{method:28s} seconds ~ tokens^{fits[method][1]:.2f}   gemma3/smollm2 {gemma_factor[method]:.2f}")
    print(f"generation records: x{generation_factor:.1f} the fitted seconds ({len(ratios)} units done)")
    hours = sum(left.values()) / 3600
    total = len(tokens) * len(methods)
    print(f"{len(done)} of {total} units done; about {hours:.1f} CPU-hours left (~{hours / 2:.1f} h of wall time on 2 cores)")
    for (model, dataset), s in sorted(left.items(), key=lambda kv: -kv[1]):
        print(f"  {model:8s} {dataset:10s} {s / 3600:5.1f} CPU-h")


if __name__ == "__main__":
    main()
