"""``gradellm render``: terminal view, --words, --top-p, filters, the HTML page, and one-line errors.

Heatmap records are built by hand with ``records.heatmap_record`` (no model). The command runs in
process through a small Typer app of its own, so these tests do not depend on its registration.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import orjson
import pytest
import typer
from typer.testing import CliRunner

from gradellm_cli.commands.render import EXAMPLES, render
from gradellm_cli.errors import BadInput, GradellmError, NotFound
from gradellm_cli.render_html import Unit, display_units, html_page, merge_words
from gradellm_cli.schema import error_record, heatmap_record

TEMPLATE_BEFORE = ["<|im_start|>", "user", "\n", "Text", ":"]
TEMPLATE_AFTER = ["<|im_end|>", "\n"]


def make(record_id: str, method: str, source: list[str], scores: list[float], **extra) -> dict:
    tokens = TEMPLATE_BEFORE + source + TEMPLATE_AFTER
    mask = [False] * len(TEMPLATE_BEFORE) + [True] * len(source) + [False] * len(TEMPLATE_AFTER)
    padded = [0.05] * len(TEMPLATE_BEFORE) + list(scores) + [0.05] * len(TEMPLATE_AFTER)
    fields = dict(
        record_id=record_id, model="smollm2", method=method, config={}, task="sentiment", step=0, steps=1,
        prompt_length=len(tokens), input_ids=list(range(len(tokens))), tokens=tokens, source_mask=mask,
        target_id=7, target_token="Positive", target_logit=12.5, target_prob=0.75, scores=padded, seconds=0.01,
    )
    fields.update(extra)
    return heatmap_record(**fields)


MOVIE = [" The", " movie", " was", " un", "bel", "iev", "able", ",", " truly", "."]
MOVIE_SCORES = [0.1, 0.9, 0.05, 0.2, 0.6, 0.1, 0.3, 0.02, 0.4, 0.01]


@pytest.fixture
def heatmaps(tmp_path) -> Path:
    records = [
        make("r1", "grad-ellm", MOVIE, MOVIE_SCORES),
        make("r1", "saliency", MOVIE, list(reversed(MOVIE_SCORES))),
        {"schema_version": 1, "kind": "metric", "id": "r1", "method": "grad-ellm", "soft_nc": 0.3},
        make("r2", "grad-ellm", [" <evil>", " &", ' "quoted"'], [0.2, 1.0, 0.5]),
        error_record(record_id="r3", reason="field 'text' is empty"),
    ]
    path = tmp_path / "heatmaps.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def invoke(*args: str):
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test app."""

    app.command(epilog=EXAMPLES)(render)
    return CliRunner().invoke(app, ["render", *args])


def ok(result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def failure(result, kind: type[GradellmError]) -> str:
    assert isinstance(result.exception, kind), (result.output, result.exception)
    message = str(result.exception)
    assert message and "\n" not in message
    return message


# --- terminal ----------------------------------------------------------------------------------------


def test_terminal_view_shows_source_tokens_and_passes_over_other_records(heatmaps):
    result = invoke(str(heatmaps))
    out = ok(result)
    assert out.count("target 'Positive'") == 3  # three heatmaps; metric and error records passed over
    assert "movie[1.00]" in out and "truly[0.44]" in out  # plain-text weights in a pipe: score / max
    assert "<|im_start|>" not in out
    assert "passed over 1 error, 1 metric record(s)" in result.stderr
    assert "<|im_start|>" in ok(invoke(str(heatmaps), "--all-tokens"))


def test_several_files_are_shown_in_turn_and_stdin_is_read_once(tmp_path, heatmaps):
    second = tmp_path / "second.jsonl"
    second.write_bytes(orjson.dumps(make("r9", "random", MOVIE, MOVIE_SCORES)) + b"\n")
    out = ok(invoke(str(heatmaps), str(second)))
    assert out.count("target 'Positive'") == 4 and out.index("r1") < out.index("r9")
    assert "can be read once" in failure(invoke("-", "-"), BadInput)


def test_filters_by_id_and_method(heatmaps):
    out = ok(invoke(str(heatmaps), "--id", "r1", "--method", "saliency"))
    assert out.count("target 'Positive'") == 1 and "saliency" in out and "grad-ellm" not in out
    out = ok(invoke(str(heatmaps), "--id", "r1,r2", "--method", "all"))
    assert out.count("target 'Positive'") == 3
    message = failure(invoke(str(heatmaps), "--id", "r9"), NotFound)
    assert "--id" in message


def test_words_merge_sub_tokens_with_max_score(heatmaps):
    out = ok(invoke(str(heatmaps), "--id", "r1", "--method", "grad-ellm", "--words"))
    assert "unbelievable[0.67]" in out  # max(0.2, 0.6, 0.1, 0.3) / 0.9
    assert not re.search(r"(^|\s)un\[", out) and "bel[" not in out
    assert ",[0.02]" in out and "truly[" in out  # punctuation stays its own word


def test_word_boundaries():
    tokens = [" New", " York", "-", "based", " \u0120x", "\u2581Hel", "lo", "(", "born", "\n", "ab", "cd"]
    units = [Unit(t, float(i), i / 12, True, None, [i]) for i, t in enumerate(tokens)]
    units[-1].positions = [20]  # not adjacent to the token before: a new word
    words = [u.text for u in merge_words(units)]
    assert words == [" New", " York", "-", "based", " \u0120x", "\u2581Hello", "(", "born", "\n", "ab", "cd"]
    merged = merge_words(units)[5]
    assert merged.score == 6.0 and merged.positions == [5, 6]


def test_top_p_mean_of_transformed_scores_is_pi(heatmaps):
    record = make("r1", "grad-ellm", MOVIE, MOVIE_SCORES)
    for pi in (0.1, 0.3, 0.7):
        units, summary = display_units(record, top_p=pi)
        weights = np.array([u.weight for u in units])
        assert weights.mean() == pytest.approx(pi, abs=1e-3) and summary.mean == pytest.approx(pi, abs=1e-3)
        assert [u.kept for u in units] == [bool(w >= 0.5) for w in weights]
        assert summary.kept == sum(u.kept for u in units)
    words, _ = display_units(record, top_p=0.3, words=True)
    assert len(words) == 7 and any(u.kept for u in words)
    out = ok(invoke(str(heatmaps), "--id", "r1", "--method", "grad-ellm", "--top-p", "0.3"))
    assert "top-p pi=0.3" in out and "mean=0.300" in out
    assert "movie[1.00*]" in out  # the top token is always kept


def test_top_p_undefined_scores_fall_back_with_a_note(tmp_path):
    path = tmp_path / "zero.jsonl"
    path.write_bytes(orjson.dumps(make("z", "random", [" a", " b"], [0.0, 0.0])) + b"\n")
    out = ok(invoke(str(path), "--top-p", "0.5"))
    assert "top-p view unavailable" in out and "a[0.00]" in out
    failure(invoke(str(path), "--top-p", "1.5"), BadInput)


def test_missing_file_and_malformed_line_are_one_line_errors(tmp_path, heatmaps):
    failure(invoke(str(tmp_path / "absent.jsonl")), NotFound)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(heatmaps.read_bytes() + b"{not json\n")
    assert "line 6" in failure(invoke(str(bad)), BadInput)
    partial = tmp_path / "partial.jsonl"
    partial.write_bytes(orjson.dumps({"kind": "heatmap", "id": "x", "method": "m"}) + b"\n")
    assert "line 1" in failure(invoke(str(partial)), BadInput)
    only_metrics = tmp_path / "metrics.jsonl"
    only_metrics.write_bytes(orjson.dumps({"kind": "metric", "id": "x"}) + b"\n")
    failure(invoke(str(only_metrics)), NotFound)


# --- HTML --------------------------------------------------------------------------------------------


def test_html_page_is_self_contained_with_a_section_per_id_and_a_column_per_method(tmp_path, heatmaps):
    page_path = tmp_path / "out" / "page.html"
    result = invoke(str(heatmaps), "--html", str(page_path))
    assert ok(result) == ""  # nothing on stdout; a one-line summary on stderr
    assert "wrote" in result.stderr and "2 input(s), 3 heatmap(s)" in result.stderr
    page = page_path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    for external in ("<script", "<link", "src=", "url(", "http:", "https:", "@import"):
        assert external not in page
    sections = re.findall(r'<section class="record"[^>]*data-id="([^"]*)"(.*?)</section>', page, flags=re.S)
    assert [record_id for record_id, _ in sections] == ["r1", "r2"]
    columns = {record_id: re.findall(r'<div class="method" data-method="([^"]*)"', body) for record_id, body in sections}
    assert columns == {"r1": ["grad-ellm", "saliency"], "r2": ["grad-ellm"]}
    assert "grid-template-columns:repeat(2," in sections[0][1] and "grid-template-columns:repeat(1," in sections[1][1]
    assert "&lt;evil&gt;" in page and "<evil>" not in page and "&amp;" in page and "&quot;quoted&quot;" in page
    tooltips = re.findall(r'class="t[^"]*" style="[^"]*" title="([^"]*)">', page)
    assert len(tooltips) == 2 * len(MOVIE) + 3 and all(t.startswith("score ") for t in tooltips)


def test_html_words_and_top_p(tmp_path, heatmaps):
    page_path = tmp_path / "page.html"
    ok(invoke(str(heatmaps), "--html", str(page_path), "--words", "--top-p", "0.3", "--id", "r1"))
    page = page_path.read_text(encoding="utf-8")
    assert page.count('<section class="record"') == 1
    assert ">\u00a0unbelievable<" not in page and "> unbelievable</span>" in page
    assert 'class="t kept"' in page and "keep-probability" in page and "mean=0.300" in page


def test_html_page_groups_generation_steps_in_their_column():
    steps = [make("g", "grad-ellm", [" Once"], [1.0], step=s, steps=3, target_token=t) for s, t in [(2, " a"), (0, " upon"), (1, " time")]]
    page = html_page(steps)
    assert page.count('<section class="record"') == 1 and page.count('<div class="method"') == 1
    assert page.index("step 0 (1 of 3)") < page.index("step 1 (2 of 3)") < page.index("step 2 (3 of 3)")
