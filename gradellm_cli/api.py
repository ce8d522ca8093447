"""The Python API's functions that no class holds: evaluate records, read a run, list the methods.

Everything public is exported lazily from :mod:`gradellm_cli` (``from gradellm_cli import Explainer``),
so ``import gradellm_cli`` and the command line stay fast and load torch only when a name needs it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def list_methods() -> dict[str, str]:
    """Every registered attribution method, Grad-ELLM first: name -> one-line description."""
    from .methods import get_method, method_names

    return {name: get_method(name).description for name in method_names()}


def evaluate(records: Iterable[dict[str, Any]], settings=None, device: str = "auto") -> Iterator[dict[str, Any]]:
    """Metric records (or error records, saying why a metric is undefined) for heatmap records, then the
    sequence-level record of each generation; the models named by the records are loaded once each.

    ``settings``: a :class:`~gradellm_cli.metrics.MetricSettings` (default: every metric, the method
    notes' pi grid, 3 samples, seed 0).
    """
    from .metrics.settings import MetricSettings
    from .pipelines.evaluating import evaluate_stream

    return evaluate_stream(records, settings or MetricSettings(), device)


def read_run(*sources: str | Path):
    """The metric rows of run folders or metric files that the reports are made from (a
    :class:`~gradellm_cli.reports.Collection`: ``rows``, ``models``, ``methods``, ``datasets``,
    ``select(model, dataset, method)``); several sources are read as one."""
    from .reports import collect

    return collect([Path(source) for source in sources])


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSONL file written by ``explain``, ``evaluate`` or ``sweep`` (any kind), in file order."""
    from .jsonl import whole_lines

    return list(whole_lines(Path(path)))
