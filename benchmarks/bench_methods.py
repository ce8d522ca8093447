"""Seconds per example of every attribution method, and its cost in forward+backward passes.

For each model and each data set (the first record of the SST-2 and IMDb samples, sentiment task,
nothing truncated) the script times one plain forward+backward pass of the same input (the
gradient of the target probability with respect to the input embeddings) and then every method,
and prints a Markdown table of seconds per example and each method's time as a multiple of that
forward+backward pass, both measured in the same run. The best (least) of the repeats is reported.

The path methods (udig, dig) build each word's path once per model (nearest-neighbour searches over
the whole vocabulary) and reuse it: their cell is the integration with the paths already built, and
the search is timed apart, from an empty path store, as ``+ paths N s``.

    python benchmarks/bench_methods.py                       # everything, 3 repeats
    python benchmarks/bench_methods.py --repeats 1           # quicker
    python benchmarks/bench_methods.py --models smollm2 --datasets sst2 --methods saliency,attention
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from gradellm_cli.explain import Explainer, ExplainSettings  # noqa: E402
from gradellm_cli.methods import MethodOptions, get_method, method_names, parse_methods  # noqa: E402
from gradellm_cli.methods.base import input_embeddings  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
DATASETS = {"sst2": "sst2.jsonl", "imdb": "imdb.jsonl"}


def first_record(dataset: str) -> dict:
    with open(DATA / DATASETS[dataset], encoding="utf-8") as handle:
        return json.loads(handle.readline())


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def forward_backward(model, targets) -> None:
    """One forward and one backward pass: d p(target) / d input embeddings over the whole input."""
    embeddings = input_embeddings(model, targets.input_ids).detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(inputs_embeds=embeddings, use_cache=False, logits_to_keep=1).logits[0, -1].float()
        probability = torch.softmax(logits, dim=-1)[int(targets.target_ids[0])]
        torch.autograd.grad(probability, embeddings)


def timed(repeats: int, max_seconds: float, device: str, call, *call_args) -> float:
    """Best (least) seconds of up to ``repeats`` calls, stopping early once ``max_seconds`` have been spent.

    The minimum, not the mean: on a shared machine other processes only ever add time.
    """
    times: list[float] = []
    while len(times) < repeats:
        synchronize(device)
        started = time.perf_counter()
        call(*call_args)
        synchronize(device)
        times.append(time.perf_counter() - started)
        if sum(times) > max_seconds:
            break
    return min(times)


PATH_METHODS = ("udig", "dig")


def path_search_seconds(model, targets, name: str, options: MethodOptions) -> float:
    """Seconds to build the paths of the record's source words from an empty store (the nearest-neighbour
    searches), which every later call reuses."""
    from gradellm_cli.methods.discretized import baseline_token_id, moving_positions, path_settings, paths_for, vocabulary

    vocab = vocabulary(model)
    vocab.paths.clear()
    vocab.neighbour_lists.clear()
    words = sorted({int(targets.input_ids[p]) for p in torch.nonzero(moving_positions(targets, 0)).flatten()})
    started = time.perf_counter()
    paths_for(vocab, name, words, baseline_token_id(targets.tokenizer, options.baseline_token), path_settings(options))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2,gemma3")
    parser.add_argument("--datasets", default="sst2,imdb", help="comma-separated: sst2, imdb")
    parser.add_argument("--methods", default="all", help="'all' or a comma-separated list")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method (the best is reported)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="stop repeating a method after this long")
    parser.add_argument("--ig-steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    methods = method_names() if args.methods == "all" else parse_methods(args.methods)
    datasets = [name.strip() for name in args.datasets.split(",") if name.strip()]
    options = MethodOptions(ig_steps=args.ig_steps, batch_size=args.batch_size)

    load_before = os.getloadavg()[0]
    columns: list[str] = []
    cells: dict[tuple[str, str], str] = {}
    for model_name in [name.strip() for name in args.models.split(",") if name.strip()]:
        explainer = Explainer(model_name, device=args.device)
        for dataset in datasets:
            record = first_record(dataset)
            prepared = explainer.prepare(record["id"], {"text": record["text"]}, ExplainSettings(task="sentiment"))
            targets = prepared.targets
            column = f"{model_name} {dataset} ({targets.input_ids.numel()} tok)"
            columns.append(column)
            forward_backward(explainer.model, targets)  # warm-up
            bases = []
            for name in methods:
                # The reference pass is timed again next to every method, so that each ratio compares
                # two times taken under the same load.
                base = timed(3, 30.0, args.device, forward_backward, explainer.model, targets)
                bases.append(base)
                search = path_search_seconds(explainer.model, targets, name, options) if name in PATH_METHODS else None
                attribute = get_method(name).attribute
                seconds = timed(args.repeats, args.max_seconds, args.device, attribute, explainer.model, targets, options)
                seconds /= targets.steps
                cells[(name, column)] = f"{seconds:.3f} s ({seconds / base:.1f}x)" + (f" + paths {search:.2f} s" if search else "")
                progress = f"{column}: {name} {seconds:.3f} s = {seconds / base:.1f} x forward+backward ({base:.3f} s)"
                progress += f", paths built in {search:.2f} s" if search else ""
                print(progress, file=sys.stderr, flush=True)
            cells[("forward+backward", column)] = f"{min(bases):.3f} s (1.0x)" if bases else ""
        explainer = None  # free the model before loading the next

    threads = torch.get_num_threads() if args.device == "cpu" else "-"
    print(
        f"Seconds per example (best of up to {args.repeats} runs) and, in brackets, the multiple of one forward+backward "
        f"pass of the same input timed just before; device {args.device}, torch {torch.__version__}, {threads} CPU "
        f"threads, {platform.machine()}, ig_steps {args.ig_steps}, batch_size {args.batch_size}; load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after.\n"
    )
    print("| method | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name in ["forward+backward", *methods]:
        print(f"| {name} | " + " | ".join(cells.get((name, column), "") for column in columns) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
