"""Grad-ELLM cost, measured side by side in one run.

For each embedded model:
  * an SST-2 and an IMDb prompt (first records of ../shared/data): Grad-ELLM time / one plain
    forward+backward (target logit -> input embeddings) of the same input;
  * a generation of up to 20 tokens (first TellMeWhy record): time to explain all steps (one forward,
    one backward per step) / the same number of separate forward+backward passes, one per step.

Each time is the best of --repeats runs, the two sides timed alternately.

Run: python benchmarks/bench_explain.py [--repeats 5] [--models smollm2,gemma3]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import orjson
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradellm_cli.explain import Explainer, ExplainSettings  # noqa: E402
from gradellm_cli.methods import MethodOptions, Targets, get_method  # noqa: E402
from gradellm_cli.methods.base import input_embeddings  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def first_record(name: str) -> dict:
    with open(DATA / f"{name}.jsonl", "rb") as handle:
        return orjson.loads(handle.readline())


def best_seconds_side_by_side(first, second, repeats: int) -> tuple[float, float]:
    """Least seconds of each of two functions, timed alternately (first, second, first, ...).

    Alternating puts both under the same load, and the minimum is the least disturbed run: on a
    shared machine other processes only ever add time. One untimed warm-up call of each comes first.
    """
    first()
    second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for function, bucket in zip((first, second), times):
            started = time.perf_counter()
            function()
            bucket.append(time.perf_counter() - started)
    return min(times[0]), min(times[1])


def forward_backward(model, input_ids: torch.Tensor, position: int, target: int) -> None:
    """One plain forward pass and one backward pass from the target logit to the input embeddings."""
    embeds = input_embeddings(model, input_ids[: position + 1]).detach().requires_grad_(True)
    logit = model(inputs_embeds=embeds, use_cache=False, logits_to_keep=1).logits[0, -1, target]
    torch.autograd.grad(logit, embeds)


def separate_passes(model, targets: Targets) -> None:
    for step in range(targets.steps):
        forward_backward(model, targets.input_ids, int(targets.positions[step]), int(targets.target_ids[step]))


def bench_model(name: str, repeats: int) -> list[tuple]:
    explainer = Explainer(name, device="cpu")
    method, options = get_method("grad-ellm"), MethodOptions()
    cases = [
        ("sst2", ExplainSettings(task="sentiment"), {"text": first_record("sst2")["text"]}),
        ("imdb", ExplainSettings(task="sentiment"), {"text": first_record("imdb")["text"]}),
        ("tellmewhy (generation)", ExplainSettings(task="generate", max_new_tokens=20), {"text": first_record("tellmewhy")["text"]}),
    ]
    rows = []
    for label, settings, values in cases:
        targets = explainer.prepare(label, values, settings).targets
        ours, plain = best_seconds_side_by_side(
            lambda t=targets: method.attribute(explainer.model, t, options),
            lambda t=targets: separate_passes(explainer.model, t),
            repeats,
        )
        rows.append((name, label, targets.input_ids.numel(), targets.steps, ours, plain, ours / plain))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default="smollm2,gemma3")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| model | input | tokens | steps | Grad-ELLM s | forward+backward s (one per step) | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in args.models.split(","):
        for row in bench_model(name, args.repeats):
            print("| {} | {} | {} | {} | {:.3f} | {:.3f} | {:.2f} |".format(*row), flush=True)


if __name__ == "__main__":
    main()
