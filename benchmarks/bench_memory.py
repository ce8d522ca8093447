"""Peak resident memory of explaining one long input with Grad-ELLM on CPU.

Each measurement runs in a fresh process (peak RSS is per process), explaining an input of N tokens
built from IMDb reviews (../shared/data/imdb.jsonl) with the sentiment task: the whole explain
pipeline (the forward pass that picks the label and fills the cache, then Grad-ELLM).

Run: python benchmarks/bench_memory.py [--tokens 4000] [--model smollm2|gemma3] [--grad-path rows|full]
     [--checkpoint auto|on|off]   (--checkpoint applies to the full path only)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "imdb.jsonl"


def child(tokens: int, checkpoint: str, model: str, grad_path: str) -> None:
    sys.path.insert(0, str(ROOT))
    from gradellm_cli.explain import Explainer, ExplainSettings
    from gradellm_cli.methods import MethodOptions

    explainer = Explainer(model, device="cpu")
    with open(DATA, "rb") as handle:  # not str.splitlines(): reviews contain U+2028
        reviews = [json.loads(line)["text"] for _, line in zip(range(200), handle)]  # the development records
    ids = explainer.tokenizer(" ".join(reviews), add_special_tokens=False)["input_ids"][:tokens]
    text = explainer.tokenizer.decode(ids)
    settings = ExplainSettings(task="sentiment", options=MethodOptions(checkpoint=checkpoint, grad_path=grad_path))
    loaded_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    (record,) = explainer.explain("long", {"text": text}, settings)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"tokens": len(record["input_ids"]), "seconds": seconds, "peak_mb": peak / 1024, "after_load_mb": loaded_rss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=4000)
    parser.add_argument("--checkpoint", default="auto", choices=["auto", "on", "off"])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--grad-path", default="rows", choices=["rows", "full"])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.tokens, args.checkpoint, args.model, args.grad_path)
        return
    command = [sys.executable, __file__, "--child", "--tokens", str(args.tokens), "--checkpoint", args.checkpoint, "--model", args.model,
               "--grad-path", args.grad_path]
    result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
    print(
        f"{args.model}: {result['tokens']} tokens, grad path {args.grad_path}, checkpoint={args.checkpoint}: "
        f"peak RSS {result['peak_mb']:.0f} MB "
        f"(after loading the model {result['after_load_mb']:.0f} MB), explain took {result['seconds']:.1f} s"
    )


if __name__ == "__main__":
    main()
