"""A slow, independent DIG/UDIG: NumPy float64 paths with explicit loops, one forward+backward per path point.

Written from the description of the public DIG code (Sanyal & Ren 2021) and of UDIG, not from
``gradellm_cli.methods.discretized``: brute-force distances to every vocabulary row, candidates scored
one at a time, the monotone path built point by point, and the integral taken one segment at a time
with a plain model call. Tests compare the tool's batched version with it.
"""

from __future__ import annotations

import numpy as np
import torch


def neighbours(vocab: np.ndarray, point: np.ndarray, k: int, leave_out: int | None = None) -> list[int]:
    """The k nearest rows of ``point`` by L2 distance, nearest first (``leave_out``: a row that is not its own neighbour)."""
    distances = np.sqrt(((vocab - point[None]) ** 2).sum(axis=1))
    order = [int(i) for i in np.argsort(distances, kind="stable") if int(i) != leave_out]
    return order[:k]


def is_monotone(baseline: np.ndarray, previous: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    result = np.zeros(baseline.shape, dtype=bool)
    for d in range(baseline.shape[0]):
        low, high = min(baseline[d], previous[d]), max(baseline[d], previous[d])
        result[d] = low <= candidate[d] <= high
    return result


def monotonise(baseline: np.ndarray, previous: np.ndarray, candidate: np.ndarray, steps: int) -> np.ndarray:
    out = candidate.copy()
    inside = is_monotone(baseline, previous, candidate)
    for d in range(out.shape[0]):
        if not inside[d]:
            out[d] = previous[d] - (previous[d] - baseline[d]) / steps
    return out


def pick(vocab: np.ndarray, baseline: int, previous: int, path: list[int], found: list[int], strategy: str, steps: int) -> int:
    if previous == baseline:
        return baseline
    scored = []
    for j in found:
        if j == baseline:
            continue
        if strategy == "greedy":
            score = float(np.sqrt(((vocab[j] - monotonise(vocab[baseline], vocab[previous], vocab[j], steps)) ** 2).sum()))
        else:
            score = -int(is_monotone(vocab[baseline], vocab[previous], vocab[j]).sum())
        scored.append((score, j))
    scored.sort(key=lambda item: item[0])  # stable: ties keep the nearer candidate first
    remaining = [j for _, j in scored if j not in path]
    return remaining[0] if remaining else baseline


def anchors(vocab: np.ndarray, kind: str, word: int, baseline: int, steps: int, k: int, strategy: str) -> list[int]:
    path = [word]
    for p in range(steps, 0, -1):
        previous = path[-1]
        if kind == "udig":
            point = vocab[baseline] + (p / (steps + 1)) * (vocab[word] - vocab[baseline])
            found = neighbours(vocab, point, k)
        else:
            found = neighbours(vocab, vocab[previous], k, leave_out=previous) if previous != baseline else []
        path.append(pick(vocab, baseline, previous, path, found, strategy, steps))
    return path[1:]


def path_points(vocab: np.ndarray, word: int, baseline: int, chosen: list[int], steps: int, factor: int = 0) -> np.ndarray:
    points = [vocab[word]]
    for anchor in chosen:
        points.append(monotonise(vocab[baseline], points[-1], vocab[anchor], steps))
    points.append(vocab[baseline])
    points = points[::-1]
    for _ in range(factor):
        doubled = []
        for a, b in zip(points[:-1], points[1:]):
            doubled += [a, 0.5 * (a + b)]
        points = doubled + [points[-1]]
    return np.stack(points)


def integrate(model, embeddings: torch.Tensor, paths: dict[int, np.ndarray], target_id: int) -> tuple[torch.Tensor, list[float]]:
    """sum over segments of grad f(x_s) * (x_{s+1} - x_s), one plain forward+backward per point; f at every point.

    ``embeddings`` (L, d): the input; ``paths``: position -> its (points, d) path. f: the target's probability.
    """
    count = next(iter(paths.values())).shape[0]
    raw = torch.zeros(embeddings.shape, dtype=torch.float64)
    values = []

    def point(s: int) -> torch.Tensor:
        x = embeddings.clone()
        for position, path in paths.items():
            x[position] = torch.from_numpy(path[s]).float()
        return x

    dtype = model.get_input_embeddings().weight.dtype
    for s in range(count):
        x = point(s).to(dtype).requires_grad_(True)
        logits = model(inputs_embeds=x[None], use_cache=False).logits[0, -1].float()
        score = torch.softmax(logits, dim=-1)[target_id]
        values.append(float(score.detach()))
        if s + 1 < count:
            (grad,) = torch.autograd.grad(score, x)
            raw += grad.double() * (point(s + 1).double() - point(s).double())
    return raw.float(), values
