"""Heatmaps by token, word, sentence or message: the units the views draw, and their scores.

:func:`aggregate` turns one heatmap record into units, each with the score of its tokens reduced
by ``sum`` (default) or ``max``, and a colour weight in [0, 1]. ``gradellm render --by`` and the HTML
page draw these; Python users call :func:`aggregate` directly.

Units, over the tokens shown (the source tokens; every token with ``all_tokens``):

* ``token``: each token.
* ``word``: a token starts a new word when it begins with whitespace, a byte-BPE or SentencePiece
  space/newline marker (``Ġ ▁ Ċ``) or punctuation, when the token before it ends with whitespace or
  punctuation, when it is not adjacent to the previous token shown, or when its source flag differs;
  otherwise it joins the previous token.
* ``sentence``: each run of adjacent tokens (same source flag and message) is joined into text and
  split with sentencex (Wikimedia's rule-based segmenter, ``language`` default ``en``); a token
  belongs to the sentence holding its first non-space character.
* ``message`` (chat records): the tokens of each message (``message_index``); template tokens, shown
  with ``all_tokens``, form units of their own.

Weights: default, a unit's score / the largest unit score shown (negative scores show as 0). Top-p
(``top_p=pi``): the source scores divided by their max, then the pi transform of the metrics
(``s -> s**alpha`` with mean pi; :func:`gradellm_cli.metrics.pi_transform`), i.e. each token's
keep-probability in pi-Soft-NC/NS; a unit's weight is the largest keep-probability of its tokens
(a probability, whatever ``reduce`` says), and it is *kept* (bold) when that is >= 0.5. Template
tokens are not part of the transform: weight 0, never kept.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import BadInput

UNIT_KINDS = ("token", "word", "sentence", "message")
REDUCTIONS = ("sum", "max")
WORD_MARKERS = ("\u0120", "\u2581", "\u010a", "\u0109")  # Ġ ▁ Ċ ĉ
KEEP_THRESHOLD = 0.5


@dataclass
class Unit:
    """One drawn piece: a token, word, sentence or message."""

    text: str
    score: float  # the reduced raw score of its tokens
    weight: float  # colour weight in [0, 1]
    source: bool
    kept: bool | None = None  # top-p only: keep-probability >= 0.5
    positions: list[int] = field(default_factory=list)
    label: str | None = None  # message units: the message's role


@dataclass
class TopP:
    """The top-p transform of one record: target pi, alpha, achieved mean and tokens kept."""

    pi: float
    alpha: float
    mean: float
    kept: int
    total: int

    def describe(self) -> str:
        return f"top-p pi={self.pi:g} alpha={self.alpha:.3g} mean={self.mean:.3f}: {self.kept}/{self.total} source tokens kept (bold)"


def aggregate(
    record: dict[str, Any],
    by: str = "word",
    reduce: str = "sum",
    *,
    all_tokens: bool = False,
    top_p: float | None = None,
    language: str = "en",
) -> list[Unit]:
    """The units of ``record`` (see the module doc); ``Unit.score`` is the sum (or max) of its tokens' scores."""
    return display_units(record, all_tokens=all_tokens, by=by, reduce=reduce, top_p=top_p, language=language)[0]


def display_units(
    record: dict[str, Any],
    *,
    all_tokens: bool = False,
    words: bool = False,
    top_p: float | None = None,
    by: str = "token",
    reduce: str = "sum",
    language: str = "en",
) -> tuple[list[Unit], TopP | None]:
    """The units to draw for ``record`` and, with ``top_p``, the transform's summary.

    ``words=True`` is the older spelling of ``by="word", reduce="max"``. A record whose scores cannot
    be pi-transformed (all zero, negative) raises a ``MetricError``; a pi outside (0, 1], an unknown
    unit or reduction, or ``by="message"`` on a record that is not a chat raise :class:`BadInput`.
    """
    if words:
        by, reduce = "word", "max"
    if by not in UNIT_KINDS:
        raise BadInput(f"unknown unit {by!r}: use {', '.join(UNIT_KINDS)}")
    if reduce not in REDUCTIONS:
        raise BadInput(f"unknown reduction {reduce!r}: use sum or max")
    tokens, source = record["tokens"], [bool(s) for s in record["source_mask"]]
    scores = [_number(s) for s in record["scores"]]
    shown = [i for i in range(len(tokens)) if all_tokens or source[i]]
    summary = None
    if top_p is not None:
        weights, summary = _top_p_weights(scores, source, top_p)
        weights = {i: weights.get(i, 0.0) for i in shown}
    else:
        weights = dict.fromkeys(shown, 0.0)
    units = [Unit(tokens[i], scores[i], min(max(weights[i], 0.0), 1.0), source[i], None, [i]) for i in shown]
    if top_p is not None:
        for unit in units:
            unit.kept = unit.source and unit.weight >= KEEP_THRESHOLD
    if by != "token":
        units = [_combine([units[k] for k in group], reduce) for group in _groups(record, units, by, language)]
    if by == "message":
        roles = record.get("message_roles") or []
        index = record["message_index"]
        for unit in units:
            message = index[unit.positions[0]]
            unit.label = roles[message] if 0 <= message < len(roles) else "template"
    if top_p is None:
        top = max((unit.score for unit in units), default=0.0)
        for unit in units:
            unit.weight = max(unit.score, 0.0) / top if top > 0 else 0.0
    return units, summary


def _groups(record: dict[str, Any], units: list[Unit], by: str, language: str) -> list[list[int]]:
    """Indices into ``units`` (token units, in order) of each word, sentence or message."""
    if by == "word":
        return _word_groups(units)
    if by == "message":
        index = record.get("message_index")
        if not isinstance(index, list) or len(index) != len(record["tokens"]):
            raise BadInput(f"record {record.get('id')} is not a chat: it has no message_index to group by message")
        return _runs(units, lambda unit: index[unit.positions[0]], adjacent=False)
    return _sentence_groups(record, units, language)


def _runs(units: list[Unit], key, adjacent: bool = True) -> list[list[int]]:
    """Consecutive units with the same ``key`` (and, with ``adjacent``, neighbouring positions)."""
    groups: list[list[int]] = []
    for k, unit in enumerate(units):
        if groups:
            last = units[groups[-1][-1]]
            same = key(last) == key(unit) and (not adjacent or unit.positions[0] == last.positions[-1] + 1)
            if same:
                groups[-1].append(k)
                continue
        groups.append([k])
    return groups


def _combine(units: list[Unit], reduce: str) -> Unit:
    scores = [unit.score for unit in units]
    kept = [unit.kept for unit in units if unit.kept is not None]
    return Unit(
        text="".join(unit.text for unit in units),
        score=sum(scores) if reduce == "sum" else max(scores),
        weight=max(unit.weight for unit in units),
        source=units[0].source,
        kept=any(kept) if kept else None,
        positions=[p for unit in units for p in unit.positions],
    )


def merge_words(units: Sequence[Unit]) -> list[Unit]:
    """Join sub-word tokens into words (the rule is in the module doc); word score and weight = max."""
    units = list(units)
    return [_combine([units[k] for k in group], "max") for group in _word_groups(units)]


def _word_groups(units: list[Unit]) -> list[list[int]]:
    groups: list[list[int]] = []
    for k, unit in enumerate(units):
        if not groups or _starts_word(unit, units[groups[-1][-1]], "".join(units[j].text for j in groups[-1])):
            groups.append([k])
        else:
            groups[-1].append(k)
    return groups


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char)[0] in "PS"


def _starts_word(unit: Unit, previous: Unit, before: str) -> bool:
    """Whether ``unit`` starts a new word after token ``previous``, the last of the word ``before`` so far."""
    text = unit.text
    if unit.positions[0] != previous.positions[-1] + 1 or unit.source != previous.source:
        return True
    if not text:
        return False
    if text[0].isspace() or text.startswith(WORD_MARKERS) or _is_punctuation(text[0]):
        return True
    return not before or before[-1].isspace() or _is_punctuation(before[-1])


def _sentence_groups(record: dict[str, Any], units: list[Unit], language: str) -> list[list[int]]:
    """Sentences of each run of adjacent tokens with the same source flag and message."""
    from sentencex import get_sentence_boundaries

    index = record.get("message_index")

    def run_key(unit: Unit) -> tuple:
        return (unit.source, index[unit.positions[0]] if isinstance(index, list) else None)

    groups: list[list[int]] = []
    for run in _runs(units, run_key):
        text, starts = "", []
        for k in run:
            token = units[k].text
            stripped = len(token) - len(token.lstrip())
            starts.append(len(text) + (stripped if stripped < len(token) else 0))
            text += token
        ends = [boundary["end_index"] for boundary in get_sentence_boundaries(language, text)]
        current: list[int] = []
        sentence = 0
        for k, start in zip(run, starts):
            while sentence < len(ends) - 1 and start >= ends[sentence]:
                sentence += 1
                if current:
                    groups.append(current)
                    current = []
            current.append(k)
        if current:
            groups.append(current)
    return groups


def _number(value: Any) -> float:
    """A score as a float; null (a NaN written as JSON) and non-finite values count as 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return 0.0
    return float(value)


def _top_p_weights(scores: list[float], source: list[bool], pi: float) -> tuple[dict[int, float], TopP]:
    from .metrics import normalise_scores, pi_transform

    if not 0.0 < pi <= 1.0:
        raise BadInput(f"`top_p` takes a pi in (0, 1], not {pi:g}")
    positions = [i for i, flag in enumerate(source) if flag]
    normalised = normalise_scores(scores, source)  # MetricError (a BadInput-like GradellmError) when undefined
    probabilities, alpha, achieved = pi_transform(normalised, pi)
    weights = {i: float(p) for i, p in zip(positions, probabilities)}
    kept = sum(1 for p in probabilities if p >= KEEP_THRESHOLD)
    return weights, TopP(pi, alpha, achieved, kept, len(positions))
