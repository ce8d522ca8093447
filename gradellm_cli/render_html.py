"""What ``gradellm render`` shows, for the terminal and for a self-contained HTML page.

:func:`display_units` turns one heatmap record into the units to draw (tokens, or words with
``words=True``), each with a colour weight in [0, 1]; :func:`html_page` lays many records out as one
page: a section per record id, the methods side by side in a grid, one column each.

Weights, as in the terminal view of ``view.py``:

* default: score / the largest score among the units shown (negative scores show as 0);
* top-p (``top_p=pi``): the source scores divided by their max, then the pi transform of the metrics
  (``s -> s**alpha`` with mean pi, alpha by bisection on log alpha, scores squeezed into [eps, 1 - eps]:
  :func:`gradellm_cli.metrics.pi_transform`), i.e. each token's keep-probability in pi-Soft-NC/NS;
  a unit is *kept* (bold) when that probability is >= 0.5. Template tokens (``all_tokens``) are not
  part of the transform: weight 0, never kept.

Words (``words=True``): a token starts a new word when it begins with whitespace, a byte-BPE or
SentencePiece space/newline marker (``Ġ ▁ Ċ``) or punctuation, when the token before it ends with
whitespace or punctuation, when it is not adjacent to the previous token shown, or when its source
flag differs; otherwise it joins the previous token. A word's score and weight are the **max** of its
tokens' (not the sum: a word cut into many pieces does not outrank a one-token word, and weights stay
on the token scale, so a kept word is one with at least one kept token).
"""

from __future__ import annotations

import html
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import BadInput, GradellmError

WORD_MARKERS = ("\u0120", "\u2581", "\u010a", "\u0109")  # Ġ ▁ Ċ ĉ
KEEP_THRESHOLD = 0.5


@dataclass
class Unit:
    """One drawn piece: a token or a word."""

    text: str
    score: float  # raw score (max over a word's tokens)
    weight: float  # colour weight in [0, 1]
    source: bool
    kept: bool | None = None  # top-p only: keep-probability >= 0.5
    positions: list[int] = field(default_factory=list)


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


def display_units(
    record: dict[str, Any], *, all_tokens: bool = False, words: bool = False, top_p: float | None = None
) -> tuple[list[Unit], TopP | None]:
    """The units to draw for ``record`` and, with ``top_p``, the transform's summary.

    A record whose scores cannot be pi-transformed (all zero, negative) raises a :class:`GradellmError`
    (``MetricError``); a pi outside (0, 1] raises :class:`BadInput`.
    """
    tokens, source = record["tokens"], [bool(s) for s in record["source_mask"]]
    scores = [_number(s) for s in record["scores"]]
    shown = [i for i in range(len(tokens)) if all_tokens or source[i]]
    summary = None
    if top_p is None:
        top = max((scores[i] for i in shown), default=0.0)
        weights = {i: (max(scores[i], 0.0) / top if top > 0 else 0.0) for i in shown}
        kept: dict[int, bool | None] = dict.fromkeys(shown)
    else:
        weights, summary = _top_p_weights(scores, source, top_p)
        weights = {i: weights.get(i, 0.0) for i in shown}
        kept = {i: source[i] and weights[i] >= KEEP_THRESHOLD for i in shown}
    units = [Unit(tokens[i], scores[i], min(max(weights[i], 0.0), 1.0), source[i], kept[i], [i]) for i in shown]
    return (merge_words(units) if words else units), summary


def _number(value: Any) -> float:
    """A score as a float; null (a NaN written as JSON) and non-finite values count as 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return 0.0
    return float(value)


def _top_p_weights(scores: list[float], source: list[bool], pi: float) -> tuple[dict[int, float], TopP]:
    from .metrics import normalise_scores, pi_transform

    if not 0.0 < pi <= 1.0:
        raise BadInput(f"--top-p takes a pi in (0, 1], not {pi:g}")
    positions = [i for i, flag in enumerate(source) if flag]
    normalised = normalise_scores(scores, source)  # MetricError (a BadInput-like GradellmError) when undefined
    probabilities, alpha, achieved = pi_transform(normalised, pi)
    weights = {i: float(p) for i, p in zip(positions, probabilities)}
    kept = sum(1 for p in probabilities if p >= KEEP_THRESHOLD)
    return weights, TopP(pi, alpha, achieved, kept, len(positions))


def merge_words(units: Sequence[Unit]) -> list[Unit]:
    """Join sub-word tokens into words (the rule is in the module doc); word score/weight = max."""
    merged: list[Unit] = []
    for unit in units:
        previous = merged[-1] if merged else None
        if previous is None or _starts_word(unit, previous):
            merged.append(Unit(unit.text, unit.score, unit.weight, unit.source, unit.kept, list(unit.positions)))
            continue
        previous.text += unit.text
        previous.score = max(previous.score, unit.score)
        previous.weight = max(previous.weight, unit.weight)
        if unit.kept is not None:
            previous.kept = bool(previous.kept) or unit.kept
        previous.positions.extend(unit.positions)
    return merged


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char)[0] in "PS"


def _starts_word(unit: Unit, previous: Unit) -> bool:
    text, before = unit.text, previous.text
    if unit.positions[0] != previous.positions[-1] + 1 or unit.source != previous.source:
        return True
    if not text:
        return False
    if text[0].isspace() or text.startswith(WORD_MARKERS) or _is_punctuation(text[0]):
        return True
    return not before or before[-1].isspace() or _is_punctuation(before[-1])


# --- HTML -----------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem; color: #1d1d1f; background: #fafafa; }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
h2 { font-size: 1.05rem; margin: 0 0 .3rem; font-family: ui-monospace, monospace; }
h3 { font-size: .95rem; margin: 0 0 .4rem; }
.meta { color: #666; font-size: .85rem; margin: 0 0 .6rem; }
.legend { display: inline-block; width: 10rem; height: .8rem; vertical-align: middle;
  background: linear-gradient(to right, rgb(255,255,255), rgb(255,38,38)); border: 1px solid #ccc; }
section.record { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .8rem 1rem; margin: 0 0 1.2rem; }
.methods { display: grid; gap: .8rem; }
.method { min-width: 0; border-left: 3px solid #eee; padding-left: .6rem; }
.step { margin: 0 0 .7rem; }
.target { font-size: .8rem; color: #555; margin-bottom: .2rem; }
.target b { font-family: ui-monospace, monospace; color: #0a6a8a; }
.tokens { line-height: 1.9; font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: .85rem;
  white-space: pre-wrap; word-break: break-word; margin: 0; }
.t { border-radius: 2px; padding: .05rem 0; }
.t.tpl { opacity: .6; }
.t.kept { font-weight: 700; outline: 1px solid #7a0000; }
.note { color: #a15c00; font-size: .8rem; }
"""


def _colour(weight: float) -> str:
    """The terminal view's scale: white (0) to deep red (1), white text on the dark end."""
    weight = min(max(weight, 0.0), 1.0)
    fade = int(round(255 * (1.0 - 0.85 * weight)))
    text = "#fff" if weight > 0.6 else "#000"
    return f"background:rgb(255,{fade},{fade});color:{text}"


def _shown(text: str) -> str:
    """Escaped token text; newlines as a visible mark plus a real break, tabs as a mark."""
    escaped = html.escape(text, quote=True)
    return escaped.replace("\n", "\u23ce<br>").replace("\t", "\u21e5")


def _tooltip(unit: Unit, top_p: bool) -> str:
    parts = [f"score {unit.score:.4g}"]
    parts.append(f"keep-probability {unit.weight:.3f}" if top_p else f"relative {unit.weight:.3f}")
    if unit.kept:
        parts.append("kept")
    if not unit.source:
        parts.append("template")
    return html.escape(" \u00b7 ".join(parts), quote=True)


def _tokens_html(units: list[Unit], top_p: bool) -> str:
    spans = []
    for unit in units:
        classes = "t" + ("" if unit.source else " tpl") + (" kept" if unit.kept else "")
        spans.append(f'<span class="{classes}" style="{_colour(unit.weight)}" title="{_tooltip(unit, top_p)}">{_shown(unit.text)}</span>')
    return "".join(spans)


def _step_html(record: dict[str, Any], all_tokens: bool, words: bool, top_p: float | None) -> str:
    esc = html.escape
    steps = record.get("steps", 1) or 1
    step = f"step {record.get('step', 0) + 1}/{steps} \u00b7 " if steps > 1 else ""
    target = (
        f'<div class="target">{step}target <b>{esc(repr(record["target_token"]))}</b> '
        f"p={record['target_prob']:.3f} logit={record['target_logit']:.2f}</div>"
    )
    note, transformed = "", top_p is not None
    try:
        units, summary = display_units(record, all_tokens=all_tokens, words=words, top_p=top_p)
        if summary is not None:
            note = f'<div class="target">{esc(summary.describe())}</div>'
    except GradellmError as exc:  # scores the pi transform is undefined for: show the plain view
        units, _ = display_units(record, all_tokens=all_tokens, words=words)
        note, transformed = f'<div class="note">top-p view unavailable: {esc(exc.message)}</div>', False
    return f'<div class="step">{target}{note}<p class="tokens">{_tokens_html(units, transformed)}</p></div>'


def html_page(
    records: Sequence[dict[str, Any]],
    *,
    title: str = "gradellm heatmaps",
    all_tokens: bool = False,
    words: bool = False,
    top_p: float | None = None,
) -> str:
    """One self-contained page (inline CSS, no scripts, fonts or links): a section per record id in
    order of first appearance, a grid column per method in order of first appearance, the steps of a
    generation one under another in their column."""
    esc = html.escape
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for record in records:
        groups.setdefault(str(record["id"]), {}).setdefault(str(record["method"]), []).append(record)
    dot = " \u00b7 "
    options = ["words" if words else "tokens", "all tokens" if all_tokens else "source tokens"]
    if top_p is not None:
        options.append(f"top-p pi={top_p:g}: colour = keep-probability, bold = kept (>= 0.5)")
    else:
        options.append("colour = score / max score shown")
    sections = []
    for number, (record_id, methods) in enumerate(groups.items(), start=1):
        first = next(iter(methods.values()))[0]
        facts = [f"model {first.get('model', '?')}", f"task {first.get('task', '?')}"]
        if first.get("label") is not None:
            facts.append(f"gold label {first['label']}")
        columns = []
        for method, steps in methods.items():
            ordered = sorted(steps, key=lambda r: r.get("step", 0))
            body = "".join(_step_html(r, all_tokens, words, top_p) for r in ordered)
            columns.append(f'<div class="method" data-method="{esc(method, quote=True)}"><h3>{esc(method)}</h3>{body}</div>')
        grid = f"grid-template-columns:repeat({len(columns)},minmax(0,1fr))"
        sections.append(
            f'<section class="record" id="record-{number}" data-id="{esc(record_id, quote=True)}">'
            f'<h2>{esc(record_id)}</h2><p class="meta">{esc(dot.join(facts))}</p>'
            f'<div class="methods" style="{grid}">{"".join(columns)}</div></section>'
        )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>{esc(title)}</h1>\n"
        f'<p class="meta">{len(groups)} input(s), {len(records)} heatmap(s){dot}{esc(dot.join(options))}{dot}'
        f'0 <span class="legend"></span> 1{dot}hover a token for its score</p>\n'
        + "\n".join(sections)
        + "\n</body>\n</html>\n"
    )
