"""Which decoder layers ``--layers`` names: ``all``, ``last:N`` or a list such as ``0,5,-1``.

Torch-free, so the command line checks the form of a ``--layers`` value before it imports the model
code (``gradellm explain "x" --layers last:x`` answers in a moment); the depth is checked once the
model is loaded.
"""

from __future__ import annotations

from .errors import BadInput

LAYERS_FOR_SYNTAX = 10_000  # a depth no model has: checks the form of a --layers spec before a model is known


def select_layers(spec: str, n_layers: int) -> list[int]:
    """Parse ``--layers``: ``all``, ``last:N`` (the last N layers) or a list such as ``0,5,-1``."""
    spec = spec.strip()
    if spec == "all":
        return list(range(n_layers))
    if spec.startswith("last:"):
        count = _int(spec[5:], spec)
        if not 1 <= count <= n_layers:
            raise BadInput(f"`layers` {spec}: the model has {n_layers} layers")
        return list(range(n_layers - count, n_layers))
    chosen = []
    for part in spec.split(","):
        index = _int(part, spec)
        if not -n_layers <= index < n_layers:
            raise BadInput(f"`layers` {spec}: layer {index} does not exist (the model has {n_layers})")
        chosen.append(index % n_layers)
    return sorted(set(chosen))


def _int(text: str, spec: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise BadInput(f"`layers` {spec!r}: use all, last:N or a comma-separated list of layer numbers") from None
