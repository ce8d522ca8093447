"""The pipelines behind the commands, for Python users too: inputs in, JSONL records out, resumable and locked.

* :func:`explain_to` (``gradellm explain``): inputs -> heatmap records;
* :func:`evaluate_to` (``gradellm evaluate``): heatmap records -> metric records, through
  :func:`evaluate_records`, the one evaluate loop;
* the inputs ``explain`` reads: :func:`text_input`, :func:`jsonl_inputs`, :func:`dataset_inputs`.

``gradellm sweep`` has its own store (:mod:`gradellm_cli.sweep`): a run folder of units committed whole.
"""

from __future__ import annotations

from .evaluating import OtherHeatmaps, evaluate_records, evaluate_to
from .explaining import RunSummary, explain_input, explain_to
from .inputs import ExplainInput, InputFields, count_inputs, dataset_inputs, first_checked, jsonl_inputs, text_input
from .reading import read_heatmaps

__all__ = [
    "ExplainInput", "InputFields", "OtherHeatmaps", "RunSummary", "count_inputs", "dataset_inputs", "evaluate_records", "evaluate_to",
    "explain_input", "explain_to", "first_checked", "jsonl_inputs", "read_heatmaps", "text_input",
]
