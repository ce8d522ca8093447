"""Benchmark: the batched + prefix-cached metric engine against the one-by-one reference loop.

For the first few IMDb reviews (sentiment task, Grad-ELLM heatmaps), both engines compute the full
metric set of one heatmap record with the default settings: Delta_0, raw Soft-NS/NC (3 samples x
keep/remove), pi-Soft-NS/NC over the 19-value grid (3 samples x keep/remove = 114 perturbations) and
Deletion/Insertion (40), 161 perturbed inputs per record. The reference runs each as its own forward
pass over the whole input (batch 1, no cache, last-position logits only); the engine batches them,
runs the shared template prefix once (key/value cache) and skips duplicate masks. Both give the same
numbers (the largest difference is printed).

Printed per model: seconds of each, the speed ratio, perturbed inputs per second and input tokens per
second (perturbed inputs x input length / seconds: the tokens the model "sees" per second). On a
shared machine other processes slow both paths unevenly, so the ratio of CPU seconds used by this
process is printed beside the wall-clock ratio.

"compute ratio" is the tokens the loop runs through the model / the tokens the engine runs (after the
cached prefix and duplicate masks). Where a forward pass is compute-bound at batch 1 (a small CPU) the
speed ratio stays near it; the rest ("batching gain" = speed ratio / compute ratio) is what batching
adds, which is where a GPU should differ. "per-mask reuse" counts the tokens an engine would run if
each mask also reused the unperturbed keys and values up to its own first zeroed token (exact under
causal attention; not implemented): the most that idea could save on a compute-bound device.

    python benchmarks/bench_metrics.py                       # SmolLM2 and Gemma-3, 2 reviews each
    python benchmarks/bench_metrics.py --models smollm2 --records 3 --max-words 120
    python benchmarks/bench_metrics.py --device cuda         # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gradellm_cli.explain import Explainer, ExplainSettings  # noqa: E402
from gradellm_cli.metrics import MetricSettings, evaluate_record  # noqa: E402
from gradellm_cli.metrics.engine import BatchedEngine  # noqa: E402
from gradellm_cli.metrics.normalise import source_positions  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "imdb.jsonl"
COMPARED = (
    "delta0",
    "soft_ns",
    "soft_nc",
    "pi_soft_ns",
    "pi_soft_nc",
    "auc_pi_soft_ns",
    "auc_pi_soft_nc",
    "deletion_curve",
    "insertion_curve",
)


def reviews(path: Path, count: int, max_words: int) -> list[dict]:
    """The first ``count`` reviews of at most ``max_words`` words (0: any length), in file order."""
    chosen = []
    with open(path) as handle:
        for line in handle:
            row = json.loads(line)
            if not max_words or len(row["text"].split()) <= max_words:
                chosen.append(row)
            if len(chosen) == count:
                break
    return chosen


def largest_difference(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(np.asarray(a[key], dtype=float) - np.asarray(b[key], dtype=float)))) for key in COMPARED)


def timed(model, record, settings) -> tuple[dict, float, float]:
    """The metric record, wall seconds and CPU seconds of this process (all its threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = evaluate_record(model, record, settings)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def loop_tokens(record: dict, out: dict) -> int:
    """Tokens the one-by-one loop runs: the unperturbed input and every perturbation, each whole."""
    return (out["perturbations"] + 1) * len(record["input_ids"])


def engine_tokens(record: dict, out: dict) -> int:
    """Tokens the batched engine runs: the prefix once, then the unperturbed input and each unique mask after it."""
    start = record["source_mask"].index(True) if out["engine"] == "batched+prefix-cache" else 0
    return start + (out["forward_rows"] + 1) * (len(record["input_ids"]) - start)


class FirstZeroedCounter:
    """Wraps the batched engine and counts, per mask it runs, the tokens from its first zeroed one on."""

    def __init__(self, engine: BatchedEngine, source_mask: list[bool]):
        self.engine = engine
        self.positions = source_positions(source_mask)
        self.tokens = engine.length  # the unperturbed input, run once in full

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def logits(self, masks):
        for mask in masks:
            keep = mask if mask.dim() == 1 else mask.all(dim=1)
            zeroed = np.flatnonzero(~keep.numpy())
            if zeroed.size:
                self.tokens += self.engine.length - int(self.positions[zeroed[0]])
        return self.engine.logits(masks)


def per_mask_reuse_tokens(model, record: dict, settings: MetricSettings) -> int:
    """Tokens a per-mask prefix reuse would run for this record (one more, untimed metric pass)."""
    counter = FirstZeroedCounter(BatchedEngine(model, record["input_ids"], record["source_mask"]), record["source_mask"])
    out = evaluate_record(model, record, settings, engine=counter)
    if out["kind"] != "metric":
        raise RuntimeError(f"{record['id']}: the counting pass gave no metrics ({out.get('error')})")
    return counter.tokens


def bench_model(name: str, rows: list[dict], batch_size: int, device: str) -> dict:
    explainer = Explainer(name, device=device)
    fast_settings = MetricSettings(batch_size=batch_size)
    slow_settings = MetricSettings(engine="one-by-one")
    totals = dict.fromkeys(("fast", "slow", "fast_cpu", "slow_cpu", "inputs", "tokens", "loop_tokens", "fast_tokens", "reuse_tokens"), 0.0)
    print(f"\n{name}: {explainer.device}, {torch.get_num_threads()} threads, batch size {batch_size}")
    header = ("record", "tokens", "source", "perturbed", "rows run", "engine s", "one-by-one s")
    header += ("ratio", "cpu ratio", "compute", "max diff")
    print("  {:<24} {:>6} {:>6} {:>9} {:>8} {:>9} {:>12} {:>6} {:>9} {:>7} {:>9}".format(*header))
    for row in rows:
        record = explainer.explain(row["id"], {"text": row["text"]}, ExplainSettings(task="sentiment"))[0]
        evaluate_record(explainer.model, record, MetricSettings(metrics=("soft",), samples=1))  # warm-up
        fast, fast_s, fast_cpu = timed(explainer.model, record, fast_settings)
        slow, slow_s, slow_cpu = timed(explainer.model, record, slow_settings)
        if fast["kind"] != "metric" or slow["kind"] != "metric":
            print(f"  {row['id']}: no metrics ({fast.get('error') or slow.get('error')})")
            continue
        length = len(record["input_ids"])
        compute = loop_tokens(record, fast) / engine_tokens(record, fast)
        print(
            f"  {row['id']:<24} {length:>6} {fast['source_tokens']:>6} {fast['perturbations']:>9} {fast['forward_rows']:>8} "
            f"{fast_s:>9.1f} {slow_s:>12.1f} {slow_s / fast_s:>5.1f}x {slow_cpu / fast_cpu:>8.1f}x {compute:>6.2f}x "
            f"{largest_difference(fast, slow):>9.1e}"
        )
        for key, value in (("fast", fast_s), ("slow", slow_s), ("fast_cpu", fast_cpu), ("slow_cpu", slow_cpu)):
            totals[key] += value
        totals["inputs"] += fast["perturbations"]
        totals["tokens"] += fast["perturbations"] * length
        totals["loop_tokens"] += loop_tokens(record, fast)
        totals["fast_tokens"] += engine_tokens(record, fast)
        totals["reuse_tokens"] += per_mask_reuse_tokens(explainer.model, record, fast_settings)
    if totals["fast"]:
        print(
            f"  total: engine {totals['fast']:.1f} s ({fast['engine']}), one-by-one {totals['slow']:.1f} s: "
            f"speed ratio {totals['slow'] / totals['fast']:.1f}x wall, {totals['slow_cpu'] / totals['fast_cpu']:.1f}x CPU time"
        )
        for label, seconds in (("engine", totals["fast"]), ("one-by-one", totals["slow"])):
            rate, tokens = totals["inputs"] / seconds, totals["tokens"] / seconds
            print(f"  {label:>10}: {rate:6.2f} perturbed inputs/s, {tokens:8.0f} input tokens/s (wall)")
        compute = totals["loop_tokens"] / totals["fast_tokens"]
        speed = totals["slow"] / totals["fast"]
        print(
            f"  compute ratio (tokens run: loop {totals['loop_tokens']:.0f} / engine {totals['fast_tokens']:.0f}) {compute:.2f}x; "
            f"batching gain (speed ratio / compute ratio) {speed / compute:.2f}x"
        )
        print(
            f"  per-mask reuse would run {totals['reuse_tokens']:.0f} tokens: "
            f"{1 - totals['reuse_tokens'] / totals['fast_tokens']:.0%} fewer than the engine"
        )
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2,gemma3")
    parser.add_argument("--records", type=int, default=2)
    parser.add_argument("--max-words", type=int, default=60, help="skip longer reviews (0: none), to keep the one-by-one loop short")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    rows = reviews(args.data, args.records, args.max_words)
    print(f"IMDb: {len(rows)} reviews ({', '.join(r['id'] for r in rows)}), full metric set, default settings")
    print("load average before: {:.1f} {:.1f} {:.1f} on {} CPUs (other processes slow both paths)".format(*os.getloadavg(), os.cpu_count()))
    summary = {}
    for name in args.models.split(","):
        totals = bench_model(name.strip(), rows, args.batch_size, args.device)
        if totals["fast"]:
            summary[name] = (totals["slow"] / totals["fast"], totals["slow_cpu"] / totals["fast_cpu"])
    print("\nload average after: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    print(
        "speed ratio (one-by-one / engine), wall and CPU time: "
        + ", ".join(f"{name} {w:.1f}x / {c:.1f}x" for name, (w, c) in summary.items())
    )


if __name__ == "__main__":
    main()
