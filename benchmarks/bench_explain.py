"""Grad-ELLM cost, measured side by side in one run.

For each embedded model:
  * an SST-2 and an IMDb prompt (first records of ../shared/data): Grad-ELLM time / one plain
    forward+backward (target logit -> input embeddings) of the same input;
  * a generation of up to 20 tokens (first TellMeWhy record): time to explain all steps (one forward,
    one backward per step) / the same number of separate forward+backward passes, one per step.

Run: python benchmarks/bench_explain.py [--repeats 3] [--models smollm2,gemma3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
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


def median_seconds(function, repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


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
        ours = median_seconds(lambda t=targets: method.attribute(explainer.model, t, options), repeats)
        plain = median_seconds(lambda t=targets: separate_passes(explainer.model, t), repeats)
        rows.append((name, label, targets.input_ids.numel(), targets.steps, ours, plain, ours / plain))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
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
