"""Discretized integrated gradients: paths of real vocabulary words from a baseline token to each word.

Integrated gradients walks a straight line from a baseline embedding to a word's embedding, through
points that are no word at all. DIG (Sanyal & Ren, EMNLP 2021) and UDIG (Roy & Kundu, arXiv
2412.03886) walk a path of *anchors*, vocabulary embeddings, made monotone so that every dimension
moves one way only. This module builds those paths and integrates along them; ``dig.py`` and
``udig.py`` are the two registered methods. What the public DIG code does, and the choices made where
the UDIG abstract and code leave room, as the tool computes them:

* **Vocabulary.** The model's input embedding rows, in the space the model reads (Gemma-3 multiplies
  its rows by sqrt(d); the scale is the embedding module's ``embed_scale``, checked against the
  model's own embeddings of the record). Nearest neighbours are exact (squared L2 distances from one
  matrix product per chunk of points, never one row at a time: Gemma-3 has 262k rows).
* **Baseline token** (``--baseline-token``): the model's mask token; where it has none, its unknown
  token, then its pad token, then its end-of-sequence token (SmolLM2 has no mask token and gets
  ``<|endoftext|>``, its unknown token). Any single token of the vocabulary may be named instead.
* **Anchors.** UDIG takes the m points b + (p/(m+1))(w - b), p = m..1, walking from the word w towards
  the baseline b, and at each takes the k nearest vocabulary rows. DIG instead takes the k nearest
  rows of the current anchor (the anchor itself left out, as DIG's k-nearest-neighbour graph does).
  Either way the baseline and the words already on the path are dropped; of the rest, ``greedy``
  picks the candidate closest to its monotonised version, ``maxcount`` the one with the most
  monotone dimensions; ties go to the nearer candidate. Candidates are monotonised against the
  baseline and the previous anchor (the word at first), as DIG's code does. When no candidate is
  left, or the previous anchor is the baseline, the anchor is the baseline.
* **Monotonise.** Walking from the word, each anchor's dimensions that do not lie between the
  baseline and the previous *path point* (inclusive; equal where those two are equal) are set to
  previous - (previous - baseline) / m. The baseline closes the path, which is reversed to run from
  baseline to word, and ``--upscale F`` inserts midpoints F times: (m + 1) 2^F + 1 points.
* **Attribution.** Every source token moves along its own path, all together (the other tokens, and
  the explained position itself, stay fixed); token i scores sum_s grad f(x_s)_i . (x_{s+1} - x_s)_i
  over the path's segments (a left Riemann sum, as DIG's code), reduced to one number per token by
  the L2 norm over the embedding like the other gradient baselines. f is their target function
  (``--target-fn``). The raw sums add up to f(input) - f(baseline) only as far as the path is fine
  enough: the gap is written into each record (``details.completeness_gap``).
* **WAE** (word approximation error): the mean distance from each path point (every point of every
  source token's path) to its nearest vocabulary row, in the model's input space; 0 for a path of
  exact rows. Written into each record (``details.wae``) and reported by ``evaluate --metrics wae``.

Paths depend only on the word, the baseline and the settings, so they are kept per model and reused
across steps, records and methods' reruns in one process.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ..errors import BadInput
from .base import Attribution, Method, MethodOptions, Targets, input_embeddings
from .captum_common import TargetScore, check_target_fn
from .integrated_gradients import path_batch_size

STRATEGIES = ("greedy", "maxcount")
BASELINE_FALLBACK = ("mask_token", "unk_token", "pad_token", "eos_token")
DISTANCE_CHUNK = 1 << 24  # points x vocabulary rows per distance matrix: 64 MB of float32


@dataclass(frozen=True)
class PathSettings:
    """What decides a path: m anchors, k neighbours, the strategy and the upscaling factor."""

    steps: int = 30
    neighbours: int = 30
    strategy: str = "greedy"
    upscale: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise BadInput("`dig_steps` must be at least 1")
        if self.neighbours < 1:
            raise BadInput("`neighbours` must be at least 1")
        if self.strategy not in STRATEGIES:
            raise BadInput(f"unknown `strategy` {self.strategy!r}: use greedy or maxcount")
        if not 0 <= self.upscale <= 4:
            raise BadInput("`upscale` takes 0 to 4 (each doubles the path points)")

    @property
    def points(self) -> int:
        return (self.steps + 1) * 2**self.upscale + 1


def path_settings(options: MethodOptions) -> PathSettings:
    return PathSettings(options.dig_steps, options.neighbours, options.strategy, options.upscale)


# -- the vocabulary ---------------------------------------------------------------------------------------


class Vocabulary:
    """The input embedding rows of one model with their squared norms, for exact nearest-neighbour search."""

    def __init__(self, model) -> None:
        module = model.get_input_embeddings()
        self.weight = module.weight.detach().float()
        scale = getattr(module, "embed_scale", 1.0)
        self.scale = float(scale.item() if isinstance(scale, torch.Tensor) else scale)
        self.squared = (self.weight**2).sum(dim=-1)
        self.paths: dict[tuple, Path] = {}  # (kind, word, baseline, settings) -> path
        self.neighbour_lists: dict[tuple[int, int], list[int]] = {}  # (row, k) -> its k nearest other rows

    @property
    def size(self) -> int:
        return int(self.weight.shape[0])

    def rows(self, ids: torch.Tensor | list[int]) -> torch.Tensor:
        """(n, d) embeddings of ``ids`` as the model reads them (scaled)."""
        ids = torch.as_tensor(ids, dtype=torch.long, device=self.weight.device)
        return self.weight[ids] * self.scale

    def nearest(self, points: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` nearest rows of each point (P, d), nearest first: ids (P, k) and distances (P, k), in model space."""
        points = points.to(self.weight.device).float() / self.scale
        k = min(k, self.size)
        chunk = max(1, DISTANCE_CHUNK // self.size)
        ids, distances = [], []
        for start in range(0, points.shape[0], chunk):
            part = points[start : start + chunk]
            squared = (part**2).sum(dim=-1, keepdim=True) - 2 * part @ self.weight.T + self.squared[None]
            _, indices = torch.topk(squared, k, dim=-1, largest=False)
            # the expansion above loses digits to cancellation: the found rows' distances are taken
            # again directly (0 for a point that is a row), and ordered by them
            exact = (self.weight[indices] - part[:, None]).norm(dim=-1)
            exact, order = torch.sort(exact, dim=-1, stable=True)
            ids.append(torch.gather(indices, 1, order))
            distances.append(exact * self.scale)
        return torch.cat(ids).cpu(), torch.cat(distances).cpu()

    def row_neighbours(self, rows: list[int], k: int) -> list[list[int]]:
        """The k nearest other rows of each vocabulary row in ``rows`` (DIG's graph), cached."""
        missing = sorted({row for row in rows if (row, k) not in self.neighbour_lists})
        if missing:
            ids, _ = self.nearest(self.rows(missing), k + 1)
            for row, found in zip(missing, ids.tolist()):
                self.neighbour_lists[(row, k)] = [i for i in found if i != row][:k]
        return [self.neighbour_lists[(row, k)] for row in rows]


_VOCABULARIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def vocabulary(model) -> Vocabulary:
    """The model's :class:`Vocabulary`, made once per model object."""
    if model not in _VOCABULARIES:
        _VOCABULARIES[model] = Vocabulary(model)
    return _VOCABULARIES[model]


def baseline_token_id(tokenizer: Any, name: str | None) -> int:
    """The id of ``--baseline-token`` (one token of the vocabulary, by its name or its text), or of the
    fallback in the module docstring."""
    if tokenizer is None:
        raise BadInput("path methods need the model's tokenizer to find their baseline token")
    if name:
        known = tokenizer.get_vocab()
        if name in known:
            return int(known[name])
        encoded = tokenizer(name, add_special_tokens=False)["input_ids"]
        if len(encoded) == 1:
            return int(encoded[0])
        raise BadInput(f"`baseline_token` {name!r} is not one token of this model's vocabulary")
    for attribute in BASELINE_FALLBACK:
        token_id = getattr(tokenizer, f"{attribute}_id", None)
        if token_id is not None:
            return int(token_id)
    raise BadInput("this model has no mask, unknown, pad or end-of-sequence token: give `baseline_token`")


# -- paths ------------------------------------------------------------------------------------------------


@dataclass
class Path:
    """One word's path: ``points`` ((m + 1) 2^F + 1, d), baseline first, word last; the ``anchors``
    (vocabulary ids, walking from the word) it was made from; its word approximation error."""

    word: int
    baseline: int
    anchors: list[int]
    points: torch.Tensor
    wae: float = field(default=0.0)


def monotone_dims(baseline: torch.Tensor, previous: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
    """Which dimensions of ``candidate`` lie between ``baseline`` and ``previous`` (inclusive; equal where they are)."""
    low, high = torch.minimum(baseline, previous), torch.maximum(baseline, previous)
    return (candidate >= low) & (candidate <= high)


def monotonise(baseline: torch.Tensor, previous: torch.Tensor, candidate: torch.Tensor, steps: int) -> torch.Tensor:
    """``candidate`` with each non-monotone dimension set to previous - (previous - baseline) / steps."""
    inside = monotone_dims(baseline, previous, candidate)
    return torch.where(inside, candidate, previous - (previous - baseline) / steps)


def choose(baseline: torch.Tensor, previous: torch.Tensor, candidates: torch.Tensor, strategy: str, steps: int) -> int:
    """The index of the chosen candidate (rows of ``candidates``, nearest first: ties go to the nearer)."""
    if strategy == "greedy":
        gaps = (candidates - monotonise(baseline[None], previous[None], candidates, steps)).norm(dim=-1)
        return int(torch.argmin(gaps))  # argmin returns the first of equal values
    counts = monotone_dims(baseline[None], previous[None], candidates).sum(dim=-1)
    return int(torch.argmax(counts))


def pick_anchor(vocab: Vocabulary, baseline: int, previous: int, path: list[int], neighbours: list[int], settings: PathSettings) -> int:
    """The next anchor among ``neighbours`` (see the module docstring)."""
    if previous == baseline:
        return baseline
    taken = set(path)
    candidates = [n for n in neighbours if n != baseline and n not in taken]
    if not candidates:
        return baseline
    rows = vocab.rows([baseline, previous, *candidates])
    return candidates[choose(rows[0], rows[1], rows[2:], settings.strategy, settings.steps)]


def udig_anchors(vocab: Vocabulary, words: list[int], baseline: int, settings: PathSettings) -> dict[int, list[int]]:
    """Each word's m anchors, UDIG's way: neighbours of the uniform points from the word to the baseline."""
    m = settings.steps
    fractions = torch.arange(m, 0, -1, dtype=torch.float32) / (m + 1)  # p / (m + 1), p = m..1
    base = vocab.rows([baseline])[0].cpu()
    ends = vocab.rows(words).cpu()
    points = base[None, None] + fractions[None, :, None] * (ends[:, None] - base[None, None])  # (words, m, d)
    ids, _ = vocab.nearest(points.reshape(-1, points.shape[-1]), settings.neighbours)
    ids = ids.reshape(len(words), m, -1).tolist()
    anchors = {}
    for word, found in zip(words, ids):
        path = [word]
        for neighbours in found:
            path.append(pick_anchor(vocab, baseline, path[-1], path, neighbours, settings))
        anchors[word] = path[1:]
    return anchors


def dig_anchors(vocab: Vocabulary, words: list[int], baseline: int, settings: PathSettings) -> dict[int, list[int]]:
    """Each word's m anchors, DIG's way: each the pick among the k nearest rows of the one before."""
    paths = {word: [word] for word in words}
    for _ in range(settings.steps):
        current = [paths[word][-1] for word in words]
        lists = vocab.row_neighbours([c for c in current if c != baseline], settings.neighbours)
        found = iter(lists)
        for word, anchor in zip(words, current):
            neighbours = next(found) if anchor != baseline else []
            paths[word].append(pick_anchor(vocab, baseline, anchor, paths[word], neighbours, settings))
    return {word: path[1:] for word, path in paths.items()}


def upscale(points: torch.Tensor) -> torch.Tensor:
    """A midpoint between each two consecutive points."""
    out = torch.empty(2 * points.shape[0] - 1, points.shape[1], dtype=points.dtype)
    out[0::2] = points
    out[1::2] = 0.5 * (points[:-1] + points[1:])
    return out


def monotone_path(vocab: Vocabulary, word: int, baseline: int, anchors: list[int], settings: PathSettings) -> torch.Tensor:
    """The path's points from the anchors, monotonised walking from the word, baseline first (see the module docstring)."""
    rows = vocab.rows([baseline, word, *anchors]).cpu()
    base, points = rows[0], [rows[1]]
    for anchor in rows[2:]:
        points.append(monotonise(base, points[-1], anchor, settings.steps))
    points.append(base)
    path = torch.stack(points[::-1])
    for _ in range(settings.upscale):
        path = upscale(path)
    return path


def straight_path(vocab: Vocabulary, word: int, baseline: int, settings: PathSettings) -> torch.Tensor:
    """The straight line through the same number of evenly spaced points (a test hook: integrated gradients)."""
    rows = vocab.rows([baseline, word]).cpu()
    fractions = torch.linspace(0, 1, settings.points)[:, None]
    return rows[0][None] + fractions * (rows[1] - rows[0])[None]


def word_approximation_error(vocab: Vocabulary, points: torch.Tensor) -> float:
    """The mean distance from each point to its nearest vocabulary row."""
    _, distances = vocab.nearest(points, 1)
    return float(distances[:, 0].mean())


ANCHORS = {"udig": udig_anchors, "dig": dig_anchors}


def paths_for(vocab: Vocabulary, kind: str, words: list[int], baseline: int, settings: PathSettings) -> dict[int, Path]:
    """The paths of ``words`` (kind ``udig``, ``dig``, or ``straight`` for the test hook), made once per model."""
    key = lambda word: (kind, word, baseline, settings)  # noqa: E731
    missing = sorted({w for w in words if key(w) not in vocab.paths})
    if missing:
        if kind == "straight":
            made = {w: Path(w, baseline, [], straight_path(vocab, w, baseline, settings)) for w in missing}
        else:
            anchors = ANCHORS[kind](vocab, missing, baseline, settings)
            made = {w: Path(w, baseline, anchors[w], monotone_path(vocab, w, baseline, anchors[w], settings)) for w in missing}
        stacked = torch.cat([made[w].points for w in missing])
        _, distances = vocab.nearest(stacked, 1)
        for index, word in enumerate(missing):
            made[word].wae = float(distances[index * settings.points : (index + 1) * settings.points, 0].mean())
            vocab.paths[key(word)] = made[word]
    return {w: vocab.paths[key(w)] for w in words}


# -- attribution ------------------------------------------------------------------------------------------


@dataclass
class PathAttribution:
    """One step's raw attribution (L, d), the target function at every path point, and the mean WAE."""

    raw: torch.Tensor
    values: torch.Tensor  # (points,): f at each point, f(baseline) first, f(input) last
    wae: float

    @property
    def completeness_gap(self) -> float:
        """sum of the raw attributions - (f(input) - f(baseline))."""
        return float(self.raw.sum() - (self.values[-1] - self.values[0]))


def path_points(model, prefix_ids: torch.Tensor, moving: torch.Tensor, paths: dict[int, Path]) -> torch.Tensor:
    """(points, L, d): the prefix's embeddings with each moving position's token on its path."""
    embeds = input_embeddings(model, prefix_ids)[0].detach().float().cpu()
    positions = torch.nonzero(moving).flatten().tolist()
    count = next(iter(paths.values())).points.shape[0] if paths else 1
    points = embeds[None].repeat(count, 1, 1)
    for position in positions:
        path = paths[int(prefix_ids[position])].points
        if not torch.allclose(path[-1], embeds[position], rtol=1e-5, atol=1e-6):
            raise BadInput("the path's last point is not the model's own embedding of the word (an embedding this module cannot read)")
        points[:, position] = path
    return points


def integrate(
    model, points: torch.Tensor, target_id: int, target_fn: str, batch_size: int, contrast_id: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """sum_s grad f(x_s) * (x_{s+1} - x_s) (L, d) over consecutive ``points`` (P, L, d), and f at every point (P,)."""
    scorer = TargetScore(model, target_id, check_target_fn(target_fn), contrast_id=contrast_id)
    device = model.get_input_embeddings().weight.device
    dtype = model.get_input_embeddings().weight.dtype
    steps = torch.zeros_like(points)
    steps[:-1] = points[1:] - points[:-1]
    raw = torch.zeros(points.shape[1:], dtype=torch.float64)
    values = torch.zeros(points.shape[0])
    size = path_batch_size(batch_size, points.shape[1])
    with torch.enable_grad():
        for start in range(0, points.shape[0], size):
            batch = points[start : start + size].to(device=device, dtype=dtype).requires_grad_(True)
            scores = scorer(batch)
            (grads,) = torch.autograd.grad(scores.sum(), batch)
            raw += (grads.float().cpu() * steps[start : start + size]).sum(dim=0).double()
            values[start : start + size] = scores.detach().float().cpu()
    return raw.float(), values


def attribute_step(model, baseline: int, kind: str, prefix_ids: torch.Tensor, moving: torch.Tensor,
                   target_id: int, options: MethodOptions, contrast_id: int | None = None) -> PathAttribution:
    """One step: every moving position's token on its path at once, integrated (see the module docstring)."""
    moved = [int(prefix_ids[p]) for p in torch.nonzero(moving).flatten().tolist()]  # the moving tokens' words
    paths = paths_for(vocabulary(model), kind, sorted(set(moved)), baseline, path_settings(options))
    points = path_points(model, prefix_ids, moving, paths)
    raw, values = integrate(model, points, target_id, options.target_fn, options.batch_size, contrast_id)
    wae = [paths[word].wae for word in moved]
    return PathAttribution(raw, values, sum(wae) / len(wae) if wae else 0.0)


def moving_positions(targets: Targets, step: int) -> torch.Tensor:
    """The source positions of step ``step``'s prefix, the explained position itself left out (never perturbed)."""
    end = int(targets.positions[step]) + 1
    moving = targets.source_mask[:end].clone()
    moving[end - 1] = False
    return moving


class PathMethod(Method):
    """UDIG or DIG (``kind``): one path attribution per step, reduced with the L2 norm per token."""

    kind: ClassVar[str]

    def config(self, options: MethodOptions) -> dict[str, Any]:
        return {
            "target_fn": options.target_fn,
            "dig_steps": options.dig_steps,
            "neighbours": options.neighbours,
            "strategy": options.strategy,
            "upscale": options.upscale,
            "baseline_token": options.baseline_token or "auto",
        }

    def check(self, options: MethodOptions) -> None:
        check_target_fn(options.target_fn)
        path_settings(options)

    def attribute(self, model, targets: Targets, options: MethodOptions) -> torch.Tensor:
        return self.attribute_with_details(model, targets, options).scores

    def attribute_with_details(self, model, targets: Targets, options: MethodOptions) -> Attribution:
        check_target_fn(options.target_fn)
        path_settings(options)  # one-line errors before any work
        baseline = baseline_token_id(targets.tokenizer, options.baseline_token)
        if baseline >= vocabulary(model).size:
            raise BadInput(f"baseline token id {baseline} is outside the model's {vocabulary(model).size} embedding rows")
        scores = torch.zeros(targets.steps, targets.input_ids.numel())
        details = []
        for step in range(targets.steps):
            end = int(targets.positions[step]) + 1
            contrast = None if targets.contrast_ids is None else int(targets.contrast_ids[step])
            result = attribute_step(model, baseline, self.kind, targets.input_ids[:end], moving_positions(targets, step),
                                    int(targets.target_ids[step]), options, contrast)
            scores[step, :end] = result.raw.norm(dim=-1)
            details.append({
                "baseline_id": baseline,
                "f_input": float(result.values[-1]),
                "f_baseline": float(result.values[0]),
                "completeness_gap": result.completeness_gap,
                "wae": result.wae,
            })
        return Attribution(scores, details)
