"""gradellm: Grad-ELLM explanations for decoder-only LLMs, and pi-Soft-NC/NS faithfulness metrics.

The Python API, exported lazily (``import gradellm_cli`` loads no torch; a name loads its module on
first use)::

    from gradellm_cli import Explainer, ExplainSettings, MetricSettings, evaluate, html_page

    explainer = Explainer("smollm2")                      # loaded once
    records = explainer.explain("r1", {"text": "A witty film."}, ExplainSettings(methods=["grad-ellm"]))
    metrics = list(evaluate(records, MetricSettings(metrics=("pi",))))
    page = html_page(records)

``examples/python_api.py`` runs the whole way from a text to an HTML page.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.5.0"

# public name -> (module, attribute)
_EXPORTS = {
    "Explainer": ("explain", "Explainer"),
    "ExplainSettings": ("settings", "ExplainSettings"),
    "MethodOptions": ("settings", "MethodOptions"),
    "Targets": ("methods", "Targets"),
    "get_method": ("methods", "get_method"),
    "list_methods": ("api", "list_methods"),
    "MetricSettings": ("metrics.settings", "MetricSettings"),
    "Evaluator": ("metrics.stream", "Evaluator"),
    "evaluate": ("api", "evaluate"),
    "evaluate_record": ("metrics.evaluate", "evaluate_record"),
    "read_records": ("api", "read_records"),
    "read_run": ("api", "read_run"),
    "report_tables": ("reports", "report_tables"),
    "write_reports": ("reports", "write_reports"),
    "plot_pi_curves": ("reports", "plot_pi_curves"),
    "html_page": ("render_html", "html_page"),
    "print_heatmap": ("view", "print_heatmap"),
    "heatmap_text": ("view", "heatmap_text"),
    "aggregate": ("units", "aggregate"),
    "heatmap_record": ("schema", "heatmap_record"),
    "HeatmapRecord": ("schema", "HeatmapRecord"),
    "MetricRecord": ("schema", "MetricRecord"),
    "ErrorRecord": ("schema", "ErrorRecord"),
    "validate": ("schema", "validate"),
    "explain_to": ("pipelines", "explain_to"),
    "evaluate_to": ("pipelines", "evaluate_to"),
    "ExplainInput": ("pipelines", "ExplainInput"),
    "InputFields": ("pipelines", "InputFields"),
    "text_input": ("pipelines", "text_input"),
    "jsonl_inputs": ("pipelines", "jsonl_inputs"),
    "read_heatmaps": ("pipelines", "read_heatmaps"),
    "sweep_to": ("sweep.run", "sweep_to"),
    "SweepOptions": ("sweep.plan", "SweepOptions"),
    "DataSelection": ("sweep.plan", "DataSelection"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gradellm_cli' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(f".{module}", __name__), attribute)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
