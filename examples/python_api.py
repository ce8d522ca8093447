"""From a text to a heatmap, its faithfulness metrics and an HTML page, in Python.

    python examples/python_api.py [OUT_DIR]      # writes OUT_DIR/heatmaps.html (default: the current folder)

Runs on the embedded SmolLM2 on the CPU in well under a minute. Every name used here is exported by
``gradellm_cli`` itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gradellm_cli import Explainer, ExplainSettings, MetricSettings, aggregate, evaluate, html_page, list_methods


def main(out_dir: Path) -> None:
    print(f"{len(list_methods())} methods, e.g. grad-ellm: {list_methods()['grad-ellm'][:60]}...")

    explainer = Explainer("smollm2", device="cpu")  # loaded once, reused for every text
    settings = ExplainSettings(task="sentiment", methods=["grad-ellm", "saliency"])
    records = explainer.explain("review-1", {"text": "A gorgeous, witty, seductive movie."}, settings)
    for record in records:
        words = aggregate(record, by="word", reduce="sum")
        top = max(words, key=lambda unit: unit.score)
        print(f"{record['method']}: target {record['target_token']!r} p={record['target_prob']:.3f}, top word {top.text.strip()!r}")

    metrics = list(evaluate(records, MetricSettings(metrics=("soft", "pi"), pi_grid=(0.2, 0.5, 0.8), samples=1), device="cpu"))
    for metric in metrics:
        print(f"{metric['method']}: AUC pi-Soft-NS {metric['auc_pi_soft_ns']:.3f}, AUC pi-Soft-NC {metric['auc_pi_soft_nc']:.3f}")

    out_dir.mkdir(parents=True, exist_ok=True)
    page = out_dir / "heatmaps.html"
    page.write_text(html_page(records, title="gradellm: one review", by="word"), encoding="utf-8")
    print(f"wrote {page}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("."))
