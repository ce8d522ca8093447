"""``gradellm render --html``: heatmap records as one self-contained HTML page.

:func:`html_page` lays many records out as one page: a section per record id, the methods side by
side in a grid, one column each, the units of :mod:`gradellm_cli.units` (tokens, words, sentences or
messages) coloured as in the terminal view.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from .errors import GradellmError
from .units import KEEP_THRESHOLD, TopP, Unit, display_units, merge_words  # noqa: F401 - re-exported for callers of this module

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
.role { font-size: .75rem; color: #555; font-weight: 600; }
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
        span = f'<span class="{classes}" style="{_colour(unit.weight)}" title="{_tooltip(unit, top_p)}">{_shown(unit.text)}</span>'
        if unit.label is not None:  # a message: one block each, its role in front
            span = f'<span class="role">{html.escape(unit.label)}</span> {span}<br>'
        spans.append(span)
    return "".join(spans)


def _step_html(record: dict[str, Any], all_tokens: bool, view: dict[str, Any], top_p: float | None) -> str:
    esc = html.escape
    steps = record.get("steps", 1) or 1
    step = f"step {record.get('step', 0)} ({record.get('step', 0) + 1} of {steps}) \u00b7 " if steps > 1 else ""
    target = (
        f'<div class="target">{step}target <b>{esc(repr(record["target_token"]))}</b> '
        f"p={record['target_prob']:.3f} logit={record['target_logit']:.2f}</div>"
    )
    note, transformed = "", top_p is not None
    try:
        units, summary = display_units(record, all_tokens=all_tokens, top_p=top_p, **view)
        if summary is not None:
            note = f'<div class="target">{esc(summary.describe())}</div>'
    except GradellmError as exc:  # scores the pi transform is undefined for: show the plain view
        units, _ = display_units(record, all_tokens=all_tokens, **view)
        note, transformed = f'<div class="note">top-p view unavailable: {esc(exc.message)}</div>', False
    return f'<div class="step">{target}{note}<p class="tokens">{_tokens_html(units, transformed)}</p></div>'


def html_page(
    records: Sequence[dict[str, Any]],
    *,
    title: str = "gradellm heatmaps",
    all_tokens: bool = False,
    words: bool = False,
    top_p: float | None = None,
    by: str = "token",
    reduce: str = "sum",
) -> str:
    """One self-contained page (inline CSS, no scripts, fonts or links): a section per record id in
    order of first appearance, a grid column per method in order of first appearance, the steps of a
    generation one under another in their column. ``by``/``reduce``: the units (:mod:`.units`);
    ``words=True`` means by word, max."""
    if words:
        by, reduce = "word", "max"
    view = {"by": by, "reduce": reduce}
    esc = html.escape
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for record in records:
        groups.setdefault(str(record["id"]), {}).setdefault(str(record["method"]), []).append(record)
    dot = " \u00b7 "
    options = [f"by {by} ({reduce})" if by != "token" else "tokens", "all tokens" if all_tokens else "source tokens"]
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
            body = "".join(_step_html(r, all_tokens, view, top_p) for r in ordered)
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
