"""The paper's Figure 2: mean pi-Soft-NS and pi-Soft-NC against the retaining probability pi, one line
per method, two panels. matplotlib is imported inside :func:`plot_pi_curves` (Agg backend, no display
needed) so that every other command starts without it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadInput, OutputError
from .load import Collection
from .tables import GRAD_ELLM

FORMATS = (".png", ".svg")
PANELS = (("pi_soft_ns", "pi-Soft-NS (higher is better)"), ("pi_soft_nc", "pi-Soft-NC (higher is better)"))


def mean_curves(rows: list[dict[str, Any]]) -> tuple[list[float], dict[str, dict[str, np.ndarray]], dict[str, int], int]:
    """(pi grid, {line: {curve field: mean curve}}, records per line, records left out). A line is a
    method, or ``model/method`` when there are several models. Records on another pi grid than the most
    common one are left out: curves on different grids cannot be averaged."""
    with_curves = [r for r in rows if isinstance(r.get("pi_grid"), list) and all(isinstance(r.get(f), list) for f, _ in PANELS)]
    if not with_curves:
        raise BadInput("no metric record has pi-Soft-NS/NC curves (evaluate with --metrics pi or all)")
    grid = Counter(tuple(r["pi_grid"]) for r in with_curves).most_common(1)[0][0]
    usable = [r for r in with_curves if tuple(r["pi_grid"]) == grid and all(len(r[f]) == len(grid) for f, _ in PANELS)]
    several_models = len({row["model"] for row in usable}) > 1  # then one line per (model, method): never averaged across models
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in usable:
        grouped[f"{row['model']}/{row['method']}" if several_models else row["method"]].append(row)
    methods = sorted(grouped, key=lambda m: (m.split("/")[-1] != GRAD_ELLM, m))
    curves = {m: {f: np.mean([r[f] for r in grouped[m]], axis=0) for f, _ in PANELS} for m in methods}
    return list(grid), curves, {m: len(grouped[m]) for m in methods}, len(rows) - len(usable)


def plot_pi_curves(collection: Collection, path: Path, title: str | None = None) -> Path:
    """Write the two-panel pi-curve figure to ``path`` (.png or .svg) and return the path."""
    if path.suffix.lower() not in FORMATS:
        raise BadInput(f"`plot` writes .png or .svg, not {path.name!r}")
    grid, curves, counts, _ = mean_curves(collection.rows)
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(1, 2, figsize=(10, 4), sharex=True, layout="constrained")
    for axis, (name, label) in zip(axes, PANELS):
        for method, values in curves.items():
            axis.plot(grid, values[name], marker="o", markersize=3, linewidth=2.5 if method.split("/")[-1] == GRAD_ELLM else 1.2,
                      label=f"{method} (n={counts[method]})")
        axis.set_xlabel("retaining probability pi")
        axis.set_ylabel(label.split(" (")[0])
        axis.set_title(label)
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="best")
    figure.suptitle(title or _default_title(collection))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=150)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        pyplot.close(figure)
    return path


def _default_title(collection: Collection) -> str:
    shown = [name for name in collection.datasets if any(row["dataset"] == name for row in collection.rows)]  # after filters
    return f"pi-Soft-NS/NC vs pi, mean over inputs; model {', '.join(collection.models)}; data {', '.join(shown)}"
