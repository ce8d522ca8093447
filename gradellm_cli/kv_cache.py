"""Passing a key/value cache into a transformers model, across the library's rename of the argument.

transformers 5.x renamed ``past_key_values`` to ``cache`` (both the forward argument and the output
field); 5.24 accepts the old name with a FutureWarning on every process, and the old name goes in
5.40. We support ``transformers>=5.0,<6``, so the name is looked up once per forward function.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

NEW, OLD = "cache", "past_key_values"


@functools.cache
def _library_name() -> str:
    """The name this transformers uses: ``cache`` once its model outputs carry a ``cache`` field."""
    from transformers.modeling_outputs import BaseModelOutputWithPast

    return NEW if NEW in getattr(BaseModelOutputWithPast, "__dataclass_fields__", {}) else OLD


@functools.cache
def _argument_name(forward: Any) -> str:
    """The name in the forward's signature; the library's name when the signature hides it (``**kwargs``
    wrappers), because passing a name the model ignores would silently drop the cache."""
    try:
        parameters = inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return _library_name()
    for name in (NEW, OLD):
        if name in parameters:
            return name
    return _library_name()


def cache_argument(model, cache) -> dict[str, Any]:
    """``{name: cache}`` with the name this model's forward takes (``cache`` or ``past_key_values``)."""
    return {_argument_name(type(model).forward): cache}


def returned_cache(output) -> Any:
    """The cache a forward pass with ``use_cache=True`` returned, under either field name."""
    cache = getattr(output, NEW, None)
    return cache if cache is not None else getattr(output, OLD)
