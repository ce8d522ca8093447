"""UDIG, uniform discretized integrated gradients (Roy & Kundu, arXiv 2412.03886): anchors near evenly spaced points.

The path of each source token passes through the vocabulary rows nearest to m evenly spaced points
of the straight line from the word to the baseline token, made monotone; see ``discretized.py``.
"""

from __future__ import annotations

from . import register
from .discretized import PathMethod


@register
class UniformDiscretizedIntegratedGradients(PathMethod):
    name = "udig"
    kind = "udig"
    description = "UDIG: integrated gradients along a monotone path of vocabulary words near evenly spaced points (L2 norm per token)"
