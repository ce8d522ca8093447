"""Dataset loading: the five built-ins from the local benchmark folder, files of our own (JSONL, CSV,
Parquet), selection (limit, offset, seed, balanced), BoolQ's context choice, the hub adapters with a
stand-in for the network, and every error as one line."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import orjson
import pytest

from gradellm_cli import data
from gradellm_cli.data import BUILTINS, DATA_ENV, load_records, locate
from gradellm_cli.errors import BadInput, GradellmError, NotFound

SHARED = locate(BUILTINS["sst2"])
needs_shared = pytest.mark.skipif(SHARED is None, reason="no shared/data folder with the benchmark files")


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gradellm-cache")


@pytest.fixture(autouse=True)
def isolated(monkeypatch, cache):
    """Arrow caches in a per-session folder, and no $GRADELLM_DATA from the caller's shell."""
    monkeypatch.setenv("GRADELLM_CACHE", str(cache))
    monkeypatch.delenv(DATA_ENV, raising=False)


def first_lines(name: str, count: int) -> list[dict]:
    """The first records of a built-in's file, read independently of datasets (split on \\n only)."""
    rows = []
    with open(locate(BUILTINS[name]), "rb") as handle:
        for raw in handle:  # binary iteration splits on b"\n" only, never on U+2028
            if raw.strip():
                rows.append(orjson.loads(raw))
            if len(rows) == count:
                break
    return rows


def one_line(exc: GradellmError) -> str:
    text = str(exc)
    assert "\n" not in text and text
    return text


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


# --- built-ins -------------------------------------------------------------------------------------


@needs_shared
@pytest.mark.parametrize(
    ("name", "task", "fields"),
    [
        ("imdb", "sentiment", {"text": "text"}),
        ("sst2", "sentiment", {"text": "text"}),
        ("boolq", "boolq", {"passage": "evidence", "question": "question"}),
        ("tellmewhy", "generate", {"text": "text"}),
        ("wikibio", "generate", {"text": "text"}),
    ],
)
def test_builtin_first_records_match_the_file(name, task, fields):
    loaded = load_records(name, limit=3)
    assert loaded.task == task and loaded.name == name
    assert Path(loaded.source) == locate(BUILTINS[name])
    expected = first_lines(name, 3)
    assert [r["id"] for r in loaded] == [e["id"] for e in expected]
    for record, row in zip(loaded, expected):
        assert record["values"] == {slot: row[column] for slot, column in fields.items()}
        assert record["label"] == (row["label"] if task != "generate" else None)


@needs_shared
def test_boolq_context_evidence_or_passage():
    row = first_lines("boolq", 1)[0]
    (evidence,) = load_records("boolq", limit=1).records
    (passage,) = load_records("boolq", limit=1, boolq_context="passage").records
    assert evidence["values"]["passage"] == row["evidence"] and passage["values"]["passage"] == row["passage"]
    assert len(passage["values"]["passage"]) > len(evidence["values"]["passage"])
    assert evidence["values"]["question"] == passage["values"]["question"] == row["question"]
    with pytest.raises(BadInput):
        load_records("boolq", limit=1, boolq_context="summary")


@needs_shared
def test_limit_offset_and_seed():
    ids = [r["id"] for r in load_records("sst2", limit=6)]
    assert [r["id"] for r in load_records("sst2", offset=2, limit=3)] == ids[2:5]
    seeded = [r["id"] for r in load_records("sst2", seed=7, limit=6)]
    assert seeded == [r["id"] for r in load_records("sst2", seed=7, limit=6)]
    assert seeded != ids and seeded != [r["id"] for r in load_records("sst2", seed=8, limit=6)]
    assert len(load_records("wikibio")) == 238
    with pytest.raises(BadInput, match="offset"):
        load_records("wikibio", offset=238)


@needs_shared
def test_balanced_takes_the_first_records_of_each_label_in_file_order():
    rows = [r for r in first_lines("boolq", 1000)]
    loaded = load_records("boolq", limit=6, balanced=True)
    firsts = {label: [r["id"] for r in rows if r["label"] == label][:3] for label in ("true", "false")}
    assert sorted(r["id"] for r in loaded) == sorted(firsts["true"] + firsts["false"])
    order = [r["id"] for r in rows]
    assert [r["id"] for r in loaded] == sorted((r["id"] for r in loaded), key=order.index)  # file order kept
    everything = load_records("sst2", balanced=True)  # 909 positive / 912 negative: 909 of each
    assert len(everything) == 2 * 909
    assert sum(r["label"] == "positive" for r in everything) == 909
    with pytest.raises(BadInput, match="multiple of 2"):
        load_records("sst2", limit=5, balanced=True)
    with pytest.raises(BadInput, match="classification"):
        load_records("wikibio", limit=4, balanced=True)


@needs_shared
def test_data_dir_and_env_var_take_precedence(tmp_path, monkeypatch):
    write_jsonl(tmp_path / "imdb.jsonl", [{"id": "mine", "text": "fine", "label": "Positive"}])
    assert [r["id"] for r in load_records("imdb", data_dir=tmp_path)] == ["mine"]
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert [r["id"] for r in load_records("imdb")] == ["mine"]
    with pytest.raises(NotFound, match="sst2.jsonl"):  # an explicit folder must hold the file
        load_records("sst2")
    with pytest.raises(NotFound, match="`data_dir`"):
        load_records("sst2", data_dir=tmp_path / "nowhere")


# --- files of our own ------------------------------------------------------------------------------


def test_jsonl_file_keeps_u2028_and_writes_no_cache_next_to_it(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    text = "first line\u2028still the same record\u2029and this"
    path = write_jsonl(folder / "mine.jsonl", [{"id": 1, "text": text, "label": "NEGATIVE"}, {"text": "ok", "label": None}])
    before = sorted(os.listdir(folder))
    loaded = load_records(str(path))
    assert loaded.task == "sentiment" and loaded.name == "mine.jsonl"
    assert loaded.records == [
        {"id": "1", "values": {"text": text}, "label": "negative"},
        {"id": "line-2", "values": {"text": "ok"}, "label": None},
    ]
    assert sorted(os.listdir(folder)) == before


def test_csv_with_custom_fields(tmp_path):
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["key", "review", "sentiment"])
        writer.writerows([["a", "loved it, truly", "Positive"], ["b", 'dull "and" long', "negative"], ["c", "meh", "positive"]])
    loaded = load_records(str(path), text_field="review", label_field="sentiment", id_field="key", offset=1)
    assert [(r["id"], r["values"]["text"], r["label"]) for r in loaded] == [("b", 'dull "and" long', "negative"), ("c", "meh", "positive")]
    unlabelled = load_records(str(path), text_field="review", id_field="key", task="generate", limit=1)
    assert unlabelled.records == [{"id": "a", "values": {"text": "loved it, truly"}, "label": None}]


def test_parquet_boolq_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "qa.parquet"
    table = pa.table(
        {"passage": ["The sky is blue.", "Fish swim."], "question": ["is the sky blue", "do fish fly"], "answer": [True, False]}
    )
    pq.write_table(table, path)
    loaded = load_records(str(path), task="boolq", label_field="answer")
    assert [r["label"] for r in loaded] == ["true", "false"]  # booleans become the task's labels
    assert loaded.records[1] == {"id": "row-2", "values": {"passage": "Fish swim.", "question": "do fish fly"}, "label": "false"}
    with pytest.raises(BadInput, match="'evidence'"):  # no evidence column to choose
        load_records(str(path), task="boolq", boolq_context="evidence")


# --- errors ----------------------------------------------------------------------------------------


def test_unknown_dataset_name_and_missing_file(tmp_path):
    with pytest.raises(NotFound) as caught:
        load_records("imbd")
    assert "imdb" in one_line(caught.value)  # the message lists the names
    with pytest.raises(NotFound):
        load_records(str(tmp_path / "absent.jsonl"))
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(BadInput, match="jsonl"):
        load_records(str(other))


def test_unknown_field(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "review": "good", "label": "positive"}])
    with pytest.raises(BadInput) as caught:
        load_records(str(path))
    assert "'text'" in one_line(caught.value) and "review" in str(caught.value)
    with pytest.raises(BadInput, match="'gold'"):
        load_records(str(path), text_field="review", label_field="gold")


@pytest.mark.parametrize(("name", "content"), [("e.jsonl", b""), ("w.jsonl", b"\n  \n"), ("h.csv", b"text,label\n")])
def test_empty_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BadInput, match="empty") as caught:
        load_records(str(path))
    one_line(caught.value)


def test_label_outside_the_task_names_the_record(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "text": "x", "label": "positive"}, {"id": "b", "text": "y", "label": "neutral"}])
    with pytest.raises(BadInput) as caught:
        load_records(str(path))
    assert "record b" in one_line(caught.value) and "neutral" in str(caught.value)
    assert len(load_records(str(path), limit=1)) == 1  # only the selected records are checked
    with pytest.raises(BadInput, match="neutral"):  # balancing reads every label
        load_records(str(path), balanced=True)


def test_malformed_jsonl_and_bad_options(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine", "label": "positive"}\n{not json\n')
    with pytest.raises(BadInput, match="bad.jsonl: line 2 is not valid JSON") as caught:
        load_records(str(path))
    one_line(caught.value)
    good = write_jsonl(tmp_path / "g.jsonl", [{"text": "a", "label": "positive"}] * 3 + [{"text": "b", "label": "negative"}])
    with pytest.raises(BadInput, match="limit"):
        load_records(str(good), limit=0)
    with pytest.raises(BadInput, match="offset"):
        load_records(str(good), offset=-1)
    with pytest.raises(BadInput, match="only 1 'negative'"):
        load_records(str(good), limit=4, balanced=True)
    assert [r["label"] for r in load_records(str(good), balanced=True)] == ["positive", "negative"]


# --- the hub, with a stand-in for the network ------------------------------------------------------


def test_hub_rows_are_mapped_to_our_fields(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, split=None, cache_dir=None, **kwargs):
        calls.append((path, split))
        if path == "google/boolq":
            return datasets.Dataset.from_dict({"question": ["is it", "is it not"], "answer": [True, False], "passage": ["P1", "P2"]})
        return datasets.Dataset.from_dict({"text": ["bad film", "good film"], "label": [0, 1]})

    monkeypatch.setattr(data, "_search_roots", lambda: [])
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    imdb = load_records("imdb")
    assert calls[-1] == ("stanfordnlp/imdb", "test") and imdb.source.startswith("hf://stanfordnlp/imdb")
    assert imdb.records[1] == {"id": "imdb-test-1", "values": {"text": "good film"}, "label": "positive"}
    boolq = load_records("boolq", limit=1)
    assert boolq.records == [{"id": "boolq-validation-0", "values": {"passage": "P1", "question": "is it"}, "label": "true"}]


def test_hub_failure_is_one_line(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no route to host\nsecond line")

    monkeypatch.setattr(data, "_search_roots", lambda: [])
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(NotFound, match="no route to host") as caught:
        load_records("wikibio")
    assert "GRADELLM_DATA" in one_line(caught.value)


def test_a_jsonl_file_gets_the_same_ids_as_input_and_as_dataset(tmp_path):
    """One reader and one id rule: line-N, N the line number, blank lines counted, whether the file is
    given to `explain --input` or as `--dataset FILE.jsonl`."""
    from gradellm_cli.pipelines import jsonl_inputs
    from gradellm_cli.settings import ExplainSettings

    path = tmp_path / "mine.jsonl"
    path.write_text('{"text": "a fine film"}\n\n{"id": "k", "text": "dull"}\n{"text": "long, slow"}\n')
    as_dataset = [record["id"] for record in load_records(str(path))]
    as_input = [item.record_id for item in jsonl_inputs(str(path), ExplainSettings())]
    assert as_dataset == as_input == ["line-1", "k", "line-4"]


def test_outputs_with_the_old_row_ids_of_jsonl_data_files_resume(tmp_path):
    from types import SimpleNamespace

    from gradellm_cli.pipelines.explaining import resume_pairs
    from gradellm_cli.settings import ExplainSettings

    config = {"method": "random"}
    out = tmp_path / "out.jsonl"
    out.write_bytes(orjson.dumps({"kind": "heatmap", "id": "row-2", "model": "m", "method": "random", "config": config, "step": 0,
                                  "steps": 1}) + b"\n")
    explainer = SimpleNamespace(model_name="m", method_config=lambda *args: config)
    assert resume_pairs(str(out), False, explainer, ExplainSettings(methods=["random"])) == {("row-2", "random"), ("line-2", "random")}
