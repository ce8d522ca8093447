"""DIG, discretized integrated gradients (Sanyal & Ren, EMNLP 2021): each anchor a near neighbour of the one before.

The path of each source token hops from the word through nearest vocabulary neighbours towards the
baseline token, made monotone; see ``discretized.py``.
"""

from __future__ import annotations

from . import register
from .discretized import PathMethod


@register
class DiscretizedIntegratedGradients(PathMethod):
    name = "dig"
    kind = "dig"
    description = "DIG: integrated gradients along a monotone path of vocabulary words, each a neighbour of the last (L2 norm per token)"
