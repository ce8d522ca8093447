"""The method registry. Every module in this package that defines a :class:`Method` subclass with
``@register`` is found at import time, so adding a method is adding one file."""

from __future__ import annotations

import importlib
import pkgutil

from ..errors import NotFound
from .base import Method, MethodOptions, Targets

_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method available under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two methods are named {cls.name!r}")
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")


def method_names() -> list[str]:
    """Registered names, Grad-ELLM first, then alphabetical."""
    _discover()
    return sorted(_REGISTRY, key=lambda name: (name != "grad-ellm", name))


def get_method(name: str) -> Method:
    """A fresh instance of the method registered as ``name``; NotFound (naming the known ones) otherwise."""
    _discover()
    if name not in _REGISTRY:
        raise NotFound(f"unknown method {name!r}: use one of {', '.join(method_names())}")
    return _REGISTRY[name]()


def parse_methods(spec: str) -> list[str]:
    """``grad-ellm,saliency`` or ``all`` -> a validated list of names."""
    names = method_names() if spec.strip() == "all" else [n.strip() for n in spec.split(",") if n.strip()]
    for name in names:
        get_method(name)
    if not names:
        raise NotFound("no method given")
    return names


def check_method_options(names: list[str], options: MethodOptions) -> None:
    """One-line errors for options the chosen methods cannot take, before any model loads."""
    for name in names:
        get_method(name).check(options)


__all__ = ["check_method_options", "Method", "MethodOptions", "Targets", "get_method", "method_names", "parse_methods", "register"]
