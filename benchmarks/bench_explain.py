"""Grad-ELLM cost against plain passes of the same model, measured side by side in one run.

For each embedded model (CPU, float32):

* one target: the first SST-2 and IMDb records on the sentiment prompt. Grad-ELLM (the method alone,
  filling its own cache) divided by one plain no-grad forward pass of the same input (goal at most
  1.2), and by one forward+backward pass (target logit -> input embeddings). Also the method reusing
  the cache of the explain pipeline's own forward pass, which is what ``gradellm explain`` runs.
* a given continuation of 20 and of 100 tokens after the first IMDb review (prompt: the review with
  the generate template; continuation: the first tokens of the second review): all steps divided by
  one plain forward over the whole sequence (goal at most 1.5), and n separate forward+backward
  passes over the growing prefixes, which is how inseq and Captum explain a continuation (goal: at
  least 20x faster at n = 20). That side is timed once (it is long); the others take the best of
  ``--repeats``.

Each pair is timed alternately, so both sides run under the same load; the minimum is the least
disturbed run. Run: python benchmarks/bench_explain.py [--repeats 3] [--models smollm2,gemma3]

``--parts`` prints instead where Grad-ELLM's time goes (own cache): the cache fill, the rows' backward
pass, the heatmaps, and the rest (mostly the rows' forward pass), for one SST-2 target and a 100-token
continuation, beside one plain forward pass and a 1-token forward pass of the decoder without a cache
(what any one-row pass costs at least: every weight read once, every operation's overhead paid once).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
from pathlib import Path

import orjson
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradellm_cli.explain import Explainer, ExplainSettings  # noqa: E402
from gradellm_cli.methods import MethodOptions, Targets, get_method  # noqa: E402
from gradellm_cli.methods import grad_ellm as grad_ellm_module  # noqa: E402
from gradellm_cli.methods.base import input_embeddings  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def record(name: str, index: int = 0) -> dict:
    with open(DATA / f"{name}.jsonl", "rb") as handle:
        for number, line in enumerate(handle):
            if number == index:
                return orjson.loads(line)
    raise IndexError(index)


def best(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def side_by_side(functions: dict, repeats: int) -> dict[str, float]:
    """Least seconds of each function, timed in turn (a, b, c, a, b, c, ...) after one warm-up call each."""
    for function in functions.values():
        function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - started)
    return {name: min(values) for name, values in times.items()}


@torch.no_grad()
def plain_forward(model, input_ids: torch.Tensor) -> None:
    """One no-grad forward pass of the whole sequence, the last position's logits only."""
    model(input_ids[None], use_cache=False, logits_to_keep=1)


@torch.no_grad()
def base_forward(model, input_ids: torch.Tensor) -> None:
    """One no-grad forward pass of the decoder alone (no LM head), as a rows pass runs it."""
    model.base_model(input_ids=input_ids[None], use_cache=False)


def forward_backward(model, input_ids: torch.Tensor, position: int, target: int) -> None:
    """One plain forward pass and one backward pass from the target logit to the input embeddings."""
    embeds = input_embeddings(model, input_ids[: position + 1]).detach().requires_grad_(True)
    logit = model(inputs_embeds=embeds, use_cache=False, logits_to_keep=1).logits[0, -1, target]
    torch.autograd.grad(logit, embeds)


def bare(targets: Targets) -> Targets:
    """The targets without the pipeline's cache: the method fills its own."""
    return Targets(targets.input_ids, targets.positions, targets.target_ids, targets.source_mask)


def label_targets(explainer: Explainer, name: str) -> Targets:
    """The first record of data set ``name`` on the sentiment prompt: one target, the label word."""
    return explainer.prepare(name, {"text": record(name)["text"]}, ExplainSettings(task="sentiment")).targets


def continuation_targets(explainer: Explainer, n: int) -> Targets:
    """The first IMDb review with the generate template, given the first n tokens of the second review."""
    second = explainer.tokenizer(" " + record("imdb", 1)["text"], add_special_tokens=False)["input_ids"]
    continuation = explainer.tokenizer.decode(second[:n])
    settings = ExplainSettings(task="generate")
    return explainer.prepare("imdb", {"text": record("imdb")["text"]}, settings, continuation=continuation).targets


def one_target_rows(explainer: Explainer, repeats: int) -> list[str]:
    method, options = get_method("grad-ellm"), MethodOptions()
    rows = []
    for name in ("sst2", "imdb"):
        targets = label_targets(explainer, name)
        ids, t, target = targets.input_ids, int(targets.positions[0]), int(targets.target_ids[0])
        seconds = side_by_side(
            {
                "grad-ellm": lambda tg=targets: method.attribute(explainer.model, bare(tg), options),
                "reusing": lambda tg=targets: method.attribute(explainer.model, tg, options),
                "forward": lambda i=ids: plain_forward(explainer.model, i),
                "forward+backward": lambda i=ids, p=t, y=target: forward_backward(explainer.model, i, p, y),
            },
            repeats,
        )
        g, f, fb = seconds["grad-ellm"], seconds["forward"], seconds["forward+backward"]
        rows.append(
            f"| {explainer.model_name} | {name} | {ids.numel()} | {g:.3f} | {seconds['reusing']:.3f} | {f:.3f} | {fb:.3f} "
            f"| **{g / f:.2f}** | {g / fb:.2f} |"
        )
        print(rows[-1], flush=True)
    return rows


def continuation_rows(explainer: Explainer, repeats: int, lengths: list[int]) -> list[str]:
    method, options = get_method("grad-ellm"), MethodOptions()
    rows = []
    for n in lengths:
        targets = continuation_targets(explainer, n)
        ids = targets.input_ids
        seconds = side_by_side(
            {
                "grad-ellm": lambda t=targets: method.attribute(explainer.model, bare(t), options),
                "reusing": lambda t=targets: method.attribute(explainer.model, t, options),
                "forward": lambda i=ids: plain_forward(explainer.model, i),
            },
            repeats,
        )
        separate = best(
            lambda t=targets: [forward_backward(explainer.model, t.input_ids, int(p), int(y)) for p, y in zip(t.positions, t.target_ids)], 1
        )
        g, f = seconds["grad-ellm"], seconds["forward"]
        rows.append(
            f"| {explainer.model_name} | {targets.steps} | {ids.numel()} | {g:.3f} | {seconds['reusing']:.3f} | {f:.3f} | {separate:.2f} "
            f"| **{g / f:.2f}** | **{separate / g:.1f}x** |"
        )
        print(rows[-1], flush=True)
    return rows


@contextlib.contextmanager
def timed_parts(seconds: dict[str, float]):
    """Add the time spent in the cache fill, the backward pass and the heatmaps of Grad-ELLM to ``seconds``."""
    module = grad_ellm_module
    originals = {"fill": module.fill_cache, "heatmaps": module.layer_heatmaps, "backward": torch.autograd.grad}

    def timer(part: str):
        def run(*args, **kwargs):
            started = time.perf_counter()
            try:
                return originals[part](*args, **kwargs)
            finally:
                seconds[part] = seconds.get(part, 0.0) + time.perf_counter() - started
        return run

    module.fill_cache, module.layer_heatmaps, torch.autograd.grad = timer("fill"), timer("heatmaps"), timer("backward")
    try:
        yield
    finally:
        module.fill_cache, module.layer_heatmaps, torch.autograd.grad = originals["fill"], originals["heatmaps"], originals["backward"]


def parts_rows(explainer: Explainer, repeats: int) -> None:
    method, options = get_method("grad-ellm"), MethodOptions()
    cases = {"sst2, one target": label_targets(explainer, "sst2"), "imdb, 100-token continuation": continuation_targets(explainer, 100)}
    for name, targets in cases.items():
        runs = []
        for _ in range(repeats + 1):  # the first is a warm-up
            seconds: dict[str, float] = {}
            with timed_parts(seconds):
                started = time.perf_counter()
                method.attribute(explainer.model, bare(targets), options)
                seconds["total"] = time.perf_counter() - started
            runs.append(seconds)
        least = min(runs[1:], key=lambda run: run["total"])
        rest = least["total"] - least["fill"] - least["backward"] - least["heatmaps"]
        ids = targets.input_ids
        forward = best(lambda i=ids: plain_forward(explainer.model, i), repeats)
        one_token = best(lambda i=ids: base_forward(explainer.model, i[-1:]), repeats)
        print(f"| {explainer.model_name} | {name} | {ids.numel()} | {least['total']:.3f} | {least['fill']:.3f} | {rest:.3f} "
              f"| {least['backward']:.3f} | {least['heatmaps']:.3f} | {forward:.3f} | {one_token:.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="smollm2,gemma3")
    parser.add_argument("--lengths", default="20,100", help="continuation lengths in tokens")
    parser.add_argument("--parts", action="store_true", help="print where Grad-ELLM's time goes instead")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")
    explainers = {name: Explainer(name, device="cpu") for name in args.models.split(",")}
    if args.parts:
        print("\nWhere Grad-ELLM's time goes (own cache, s; the run with the least total of --repeats)")
        print("| model | input | tokens | total | fill | rows forward and the rest | backward | heatmaps | plain forward "
              "| 1-token decoder forward |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for explainer in explainers.values():
            parts_rows(explainer, args.repeats)
        return
    print("\nOne target: Grad-ELLM (own cache), Grad-ELLM reusing the pipeline's cache, one plain forward, one forward+backward (s)")
    print("| model | input | tokens | Grad-ELLM | reusing cache | forward | fwd+bwd | Grad-ELLM / forward | / fwd+bwd |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for explainer in explainers.values():
        one_target_rows(explainer, args.repeats)
    print("\nGiven continuation after the first IMDb review: all n steps (s), against one plain forward over the whole sequence "
          "and n forward+backward passes over the growing prefixes")
    print("| model | n | tokens | Grad-ELLM | reusing cache | forward | n x fwd+bwd | Grad-ELLM / forward | speed-up over n x fwd+bwd |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    lengths = [int(n) for n in args.lengths.split(",")]
    for explainer in explainers.values():
        continuation_rows(explainer, args.repeats, lengths)
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
