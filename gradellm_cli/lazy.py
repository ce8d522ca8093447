"""A module imported on first use, for modules that must import without torch (the Python API's classes)."""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """Stands for module ``name`` (relative names need ``package``) and imports it on the first attribute looked up.

    ``import gradellm_cli; gradellm_cli.Explainer`` must not load torch (seconds); a class whose module
    says ``torch = LazyModule("torch")`` loads it when an instance first needs it.
    """

    def __init__(self, name: str, package: str | None = None):
        self._name = name
        self._package = package

    def __getattr__(self, attribute: str) -> Any:
        module = importlib.import_module(self._name, self._package)
        return getattr(module, attribute)
