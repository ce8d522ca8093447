"""What to measure and how: the metric settings, their parsing, and the ``config`` they write."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BadInput
from .pi_levels import EPS, SQUEEZE, TOLERANCE

UNITS = ("token", "element")  # --mask-unit: one Bernoulli draw per token, or per embedding element
STEPS = 20  # Deletion / Insertion: 20 steps of 5% of the source tokens

PERTURBATION_METRICS = ("soft", "pi", "deletion-insertion")  # the paper's, measured by the perturbation engine
METRICS = (*PERTURBATION_METRICS, "log-odds", "comprehensiveness", "sufficiency", "wae")  # then DIG's and UDIG's (topk.py)
ENGINES = ("batched", "one-by-one")
DEFAULT_PI_GRID = tuple(round(0.05 * k, 10) for k in range(1, 20))  # 0.05, 0.10, ..., 0.95
DELTA0_MIN = 1e-6  # a Delta_0 below this (float32 noise) counts as 0: the metrics are undefined


@dataclass(frozen=True)
class MetricSettings:
    """Everything that decides the numbers of a metric record (and, apart from ``engine`` and
    ``batch_size``, which change only float rounding, written into its ``config``)."""

    metrics: tuple[str, ...] = PERTURBATION_METRICS  # the paper's; ``--metrics all`` (METRICS) adds DIG's and UDIG's
    pi_grid: tuple[float, ...] = DEFAULT_PI_GRID
    samples: int = 3  # soft perturbations per pi, and for the raw Soft-NS/NC; averaged
    seed: int = 0
    mask_unit: str = "token"  # token: one Bernoulli draw per token; element: per embedding element
    batch_size: int = 32
    eps: float = EPS
    gen_stride: int = 5  # generation: evaluate steps 0, 5, 10, ...
    engine: str = "batched"
    prefix_cache: bool = True
    topk: float = 0.2  # Log-odds, Comprehensiveness, Sufficiency: the share of source tokens perturbed
    baseline_token: str | None = None  # Log-odds: the replacing token (default: mask, unk, pad or eos token)

    def __post_init__(self) -> None:
        unknown = [name for name in self.metrics if name not in METRICS]
        if unknown or not self.metrics:
            raise BadInput(f"unknown metric {unknown[0]!r}: use {', '.join(METRICS)} or all" if unknown else "no metric given")
        if len(self.pi_grid) < 2 or any(not 0 < pi < 1 for pi in self.pi_grid) or list(self.pi_grid) != sorted(set(self.pi_grid)):
            raise BadInput("the pi grid needs at least two increasing values strictly between 0 and 1")
        if self.samples < 1:
            raise BadInput("`samples` must be at least 1")
        if self.mask_unit not in UNITS:
            raise BadInput(f"`mask_unit` takes {' or '.join(UNITS)}")
        if self.batch_size < 1:
            raise BadInput("`batch_size` must be at least 1")
        if self.gen_stride < 1:
            raise BadInput("`gen_stride` must be at least 1")
        if not 0 < self.eps < 0.5:
            raise BadInput("eps must lie in (0, 0.5)")
        if not 0 < self.topk <= 1:
            raise BadInput("`topk` takes a share of the source tokens in (0, 1], e.g. 0.2")
        if self.engine not in ENGINES:
            raise BadInput(f"engine must be one of {', '.join(ENGINES)}")

    def config(self) -> dict:
        """The settings that change the numbers (the metric record's ``config``, beside the heatmap's)."""
        return {
            "metrics": list(self.metrics),
            "pi_grid": list(self.pi_grid),
            "samples": self.samples,
            "seed": self.seed,
            "mask_unit": self.mask_unit,
            "pi_eps": self.eps,
            "pi_squeeze": SQUEEZE,
            "pi_tolerance": TOLERANCE,
            "delta0_min": DELTA0_MIN,
            "deletion_steps": STEPS,
            "gen_stride": self.gen_stride,
            "topk": self.topk,
            "baseline_token": self.baseline_token or "auto",
        }


def parse_metrics(spec: str) -> tuple[str, ...]:
    """``all`` or a comma list of :data:`METRICS` (kept in canonical order)."""
    names = [part.strip().lower() for part in spec.split(",") if part.strip()]
    if names == ["all"]:
        return METRICS
    for name in names:
        if name not in METRICS:
            raise BadInput(f"unknown metric {name!r}: use {', '.join(METRICS)} or all")
    if not names:
        raise BadInput("`metrics` is empty")
    return tuple(name for name in METRICS if name in names)


def parse_pi_grid(spec: str) -> tuple[float, ...]:
    """``start:stop:step`` (stop included) or a comma list, e.g. ``0.05:0.95:0.05`` or ``0.1,0.5,0.9``."""
    try:
        if ":" in spec:
            start, stop, step = (float(part) for part in spec.split(":"))
            if step <= 0:
                raise ValueError
            count = int(round((stop - start) / step)) + 1
            grid = tuple(round(start + i * step, 10) for i in range(count))
        else:
            grid = tuple(float(part) for part in spec.split(",") if part.strip())
    except ValueError:
        raise BadInput(f"cannot read the pi grid {spec!r}: use start:stop:step or a comma list") from None
    if len(grid) < 2 or any(not 0 < pi < 1 for pi in grid) or list(grid) != sorted(set(grid)):
        raise BadInput(f"the pi grid {spec!r} needs at least two increasing values strictly between 0 and 1")
    return grid
