"""Data sets: the paper's five benchmarks by name, or a local JSONL / CSV / Parquet file, read through ``datasets``.

:func:`load_records` returns plain records ``{"id": str, "values": {field: str}, "label": str | None}``
where ``values`` holds exactly the fields of the task's prompt template (``text``, or ``passage`` and
``question`` for BoolQ) and ``label`` is one of the task's label values (``positive``/``negative``,
``true``/``false``), or None for generation tasks and unlabelled rows.

Built-in names and where they are read from, first match wins:

1. ``data_dir`` (``--data-dir``): ``DATA_DIR/<file>`` must exist;
2. ``$GRADELLM_DATA``: ``$GRADELLM_DATA/<file>`` must exist;
3. a ``shared/data`` folder holding ``<file>`` in the current directory, the package folder, or any
   folder above either (a checkout next to the benchmark data finds it with no setup);
4. the Hugging Face hub (``_load_from_hub``, needs a network): the public dataset, mapped to our fields.

Selection, in this order: the rows in file order, or shuffled with ``random.Random(seed)`` when a
seed is given; ``offset`` rows dropped; then either the first ``limit`` rows, or with ``balanced``
the same number of rows per label (the exact rule is in :func:`_balanced`).

Local files are parsed by ``datasets``' json/csv/parquet builders, whose Arrow cache goes under the
gradellm cache (``<cache_root>/datasets``), never next to the data. JSONL is read by the builder (it
splits on ``\\n`` only), so text holding U+2028 (IMDb, BoolQ) stays whole.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BadInput, GradellmError, NotFound
from .jsonl import line_id, read_jsonl
from .prompts import Task, get_task

DATA_ENV = "GRADELLM_DATA"
BOOLQ_CONTEXTS = ("evidence", "passage")
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class Builtin:
    """A named benchmark: its task and its file name in a local data folder."""

    name: str
    task: str
    file: str


BUILTINS: dict[str, Builtin] = {
    "imdb": Builtin("imdb", "sentiment", "imdb.jsonl"),
    "sst2": Builtin("sst2", "sentiment", "sst2.jsonl"),
    "boolq": Builtin("boolq", "boolq", "boolq.jsonl"),
    "tellmewhy": Builtin("tellmewhy", "generate", "tellmewhy.jsonl"),
    "wikibio": Builtin("wikibio", "generate", "wikibio.jsonl"),
}


@dataclass
class LoadedDataset:
    """The selected records, the task they are for, and where they came from (a file path or a hub id)."""

    name: str
    task: str
    source: str
    records: list[dict[str, Any]] = field(default_factory=list)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)


def load_records(
    dataset: str,
    *,
    task: str | None = None,
    data_dir: str | Path | None = None,
    text_field: str = "text",
    label_field: str | None = None,
    id_field: str = "id",
    limit: int | None = None,
    offset: int = 0,
    seed: int | None = None,
    balanced: bool = False,
    boolq_context: str | None = None,
    continuation_field: str = "continuation",
    messages_field: str = "messages",
) -> LoadedDataset:
    """Load a built-in data set by name (``imdb``, ``sst2``, ``boolq``, ``tellmewhy``, ``wikibio``) or a
    ``.jsonl``/``.json``/``.csv``/``.parquet`` file, and select records from it.

    ``task`` defaults to the built-in's task (``sentiment`` for files). For files, ``text_field`` fills
    the ``text`` slot; ``passage``/``question`` come from columns of those names; ``label_field``
    (default ``label`` when the file has one) gives the gold label, and ``id_field`` the id (when a record
    has none: ``line-N`` in a JSONL file, N its line number, as ``gradellm explain --input`` names it;
    ``row-N``, 1-based, in other files). ``boolq_context`` picks the column that fills the BoolQ
    passage slot: ``evidence`` (the short human rationale, the default where the data has it) or
    ``passage`` (the full document). ``text_field``/``label_field``/``id_field`` apply to files only.

    A file with a ``continuation_field`` column gives each record a ``continuation`` (the text to
    explain token by token; task ``generate`` unless one is given); one with a ``messages_field``
    column is a file of chats (task ``chat``): each record's ``messages``, and no text fields.
    """
    if limit is not None and limit < 1:
        raise BadInput("`limit` must be at least 1")
    if offset < 0:
        raise BadInput("`offset` must be 0 or more")
    if boolq_context is not None and boolq_context not in BOOLQ_CONTEXTS:
        raise BadInput(f"`boolq_context` takes {' or '.join(BOOLQ_CONTEXTS)}, not {boolq_context!r}")
    builtin = BUILTINS.get(dataset.lower())
    if builtin is not None:
        the_task = get_task(task or builtin.task)
        path = locate(builtin, data_dir)
        if path is not None:
            table, source = load_file(path), str(path)
        else:
            table, source = _load_from_hub(builtin)
        line_numbers = None
        columns = {"text": "text", "passage": "passage", "question": "question"}
        label_column, id_column = None, "id"
    else:
        path = _file_path(dataset)
        table, line_numbers = read_table(path)
        source = str(path)
        the_task = get_task(task or _file_task(table.column_names, continuation_field, messages_field))
        columns = {"text": text_field, "passage": "passage", "question": "question"}
        label_column, id_column = label_field, id_field
    names = list(table.column_names)
    extras = {key: column for key, column in (("continuation", continuation_field), ("messages", messages_field)) if column in names}
    if the_task.is_classification and "continuation" in extras:
        raise BadInput(f"{source}: a continuation column needs a generation task (generate or raw), not {the_task.name}")
    if "passage" in the_task.fields:
        columns["passage"] = boolq_context or ("evidence" if "evidence" in names else "passage")
    slots = {slot: columns.get(slot, slot) for slot in the_task.fields}
    for column in slots.values():
        _need_column(column, names, source)
    if label_column is not None:
        _need_column(label_column, names, source)
    elif "label" in names:
        label_column = "label"
    if not the_task.is_classification:
        label_column = None
    ids = list(table[id_column]) if id_column in names else None

    def record_id(index: int) -> str:  # the id rule: the id field, else line-N (JSONL) or row-N (other files)
        value = ids[index] if ids is not None else None
        if value is not None:
            return str(value)
        return line_id(line_numbers[index]) if line_numbers is not None else f"row-{index + 1}"

    order = _select(table, the_task, source, label_column, record_id, limit, offset, seed, balanced)
    records = []
    for index, row in zip(order, table.select(order)):
        values = {slot: _as_text(row[column]) for slot, column in slots.items()}
        label = _label(row[label_column], the_task, record_id(index)) if label_column else None
        record = {"id": record_id(index), "values": values, "label": label}
        records.append(record | {key: row[column] for key, column in extras.items() if row[column] is not None})
    return LoadedDataset(builtin.name if builtin else Path(source).name, the_task.name, source, records)


def file_task(dataset: str, continuation_field: str = "continuation", messages_field: str = "messages") -> str:
    """The task a data file brings when none is given (see :func:`load_records`); sentiment for a file
    that cannot be read (loading it reports why)."""
    try:
        return _file_task(read_table(_file_path(dataset))[0].column_names, continuation_field, messages_field)
    except GradellmError:
        return "sentiment"


def _file_task(columns: list[str], continuation_field: str, messages_field: str) -> str:
    """A data file's task when none is given: chat, generate (a continuation column) or sentiment."""
    if messages_field in columns:
        return "chat"
    return "generate" if continuation_field in columns else "sentiment"


# --- where a built-in's file is ----------------------------------------------------------------


def locate(builtin: Builtin, data_dir: str | Path | None = None) -> Path | None:
    """The local file of a built-in data set, or None when only the hub is left (see the module doc)."""
    for folder, origin in ((data_dir, "`data_dir`"), (os.environ.get(DATA_ENV) or None, f"${DATA_ENV}")):
        if folder is not None:
            path = Path(folder).expanduser() / builtin.file
            if not path.is_file():
                raise NotFound(f"{builtin.name}: {path} does not exist (data folder from {origin})")
            return path
    for base in _search_roots():
        for folder in (base, *base.parents):
            path = folder / "shared" / "data" / builtin.file
            if path.is_file():
                return path
    return None


def _search_roots() -> list[Path]:
    """Where to start looking for a ``shared/data`` folder: the current directory and the package."""
    return [Path.cwd().resolve(), Path(__file__).resolve().parent]


def _file_path(dataset: str) -> Path:
    path = Path(dataset).expanduser()
    if path.suffix.lower() not in FILE_BUILDERS:
        if path.exists():
            raise BadInput(f"{dataset}: use a .jsonl, .json, .csv or .parquet file")
        raise NotFound(f"unknown dataset {dataset!r}: use one of {', '.join(BUILTINS)}, or a .jsonl, .json, .csv or .parquet file")
    if not path.is_file():
        raise NotFound(f"data file {dataset} does not exist")
    return path


# --- reading a file through datasets -------------------------------------------------------------


def read_table(path: Path):
    """A data file as a ``datasets.Dataset``, with each row's line number for a JSONL file (None otherwise).

    A JSONL file is read by the reader of ``gradellm explain --input`` (:func:`gradellm_cli.jsonl.read_jsonl`),
    so both name a record without an id the same way (``line-N``) and refuse the same malformed lines;
    other formats go through ``datasets``' own loaders.
    """
    if path.suffix.lower() == ".jsonl":
        return _jsonl_table(path)
    return load_file(path), None


def _jsonl_table(path: Path):
    import datasets

    rows, numbers = [], []
    for line in read_jsonl(str(path)):
        if line.data is None:
            raise BadInput(f"data file {path}: {line.error}")
        rows.append(line.data)
        numbers.append(line.number)
    if not rows:
        raise BadInput(f"data file {path} is empty")
    try:
        columns = list(dict.fromkeys(key for row in rows for key in row))  # every field of any record, in order of appearance
        table = datasets.Dataset.from_dict({key: [row.get(key) for row in rows] for key in columns})
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types; the user needs one line
        raise BadInput(f"data file {path} could not be read as a table: {_innermost(exc)}") from None
    return table, numbers


def load_file(path: Path):
    """A ``datasets.Dataset`` of one local file; one-line errors for empty or unreadable files."""
    import datasets

    from .models import cache_root

    builder = FILE_BUILDERS[path.suffix.lower()]
    if builder != "parquet" and not _has_content(path):
        raise BadInput(f"data file {path} is empty")
    try:
        with _quiet_datasets():
            table = datasets.load_dataset(builder, data_files=str(path.resolve()), split="train", cache_dir=str(cache_root() / "datasets"))
    except (GradellmError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow/datasets raise many types; the user needs one line
        raise BadInput(f"data file {path} could not be read as {builder}: {_innermost(exc)}") from None
    if len(table) == 0:
        raise BadInput(f"data file {path} is empty")
    return table


def _has_content(path: Path) -> bool:
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 16):
            if chunk.strip():
                return True
    return False


@contextlib.contextmanager
def _quiet_datasets():
    """No progress bars or error logs from datasets: our error is the one line the user sees."""
    import datasets

    logger = logging.getLogger("datasets")
    level, bars = logger.level, datasets.is_progress_bar_enabled()
    logger.setLevel(logging.CRITICAL + 1)
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        logger.setLevel(level)
        if bars:
            datasets.enable_progress_bars()


def _innermost(exc: BaseException) -> str:
    while exc.__cause__ is not None or (exc.__context__ is not None and not exc.__suppress_context__):
        exc = exc.__cause__ or exc.__context__
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- selection ---------------------------------------------------------------------------------


def _select(table, task: Task, source: str, label_column, record_id, limit, offset, seed, balanced) -> list[int]:
    """Row indices of the selected rows, in the order they will be returned."""
    order = list(range(len(table)))
    if seed is not None:
        random.Random(seed).shuffle(order)
    if offset >= len(order):
        raise BadInput(f"`offset` {offset} skips all {len(order)} records of {source}")
    order = order[offset:]
    if balanced:
        if label_column is None:
            raise BadInput("`balanced` needs a classification task and a label field")
        return _balanced(list(table[label_column]), task, record_id, order, limit)
    return order[:limit]


def _balanced(labels, task: Task, record_id, order: list[int], limit: int | None) -> list[int]:
    """Equal numbers per label: walk ``order`` (file order, or the seeded shuffle, after the offset) and
    keep a row while its label has fewer than ``quota`` rows kept; rows without a label are passed over.
    ``quota`` is ``limit / number of labels`` (``limit`` must divide evenly), or without a limit the count
    of the rarest label. The kept rows stay in walk order (labels interleaved as in the file)."""
    walk = [(index, _label(labels[index], task, record_id(index))) for index in order]
    counts = Counter(label for _, label in walk if label is not None)
    if limit is None:
        quota = min(counts.get(label, 0) for label in task.labels)
    else:
        if limit % len(task.labels):
            raise BadInput(f"`balanced` needs a `limit` that is a multiple of {len(task.labels)} (one share per label)")
        quota = limit // len(task.labels)
    short = [label for label in task.labels if counts.get(label, 0) < max(quota, 1)]
    if short:
        raise BadInput(f"`balanced`: only {counts.get(short[0], 0)} {short[0]!r} record(s) to pick from, {max(quota, 1)} needed")
    kept: Counter[str] = Counter()
    result = []
    for index, label in walk:
        if label is not None and kept[label] < quota:
            kept[label] += 1
            result.append(index)
            if len(result) == quota * len(task.labels):
                break
    return result


def _need_column(column: str, names: list[str], source: str) -> None:
    if column not in names:
        raise BadInput(f"unknown field {column!r} in {source}: its fields are {', '.join(names)}")


def _as_text(value: Any) -> str:
    """Field values as text; a missing value becomes "" (explain then reports that record as empty)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _label(value: Any, task: Task, record_id: str) -> str | None:
    """A gold label as one of the task's label values: strings match case-insensitively, booleans give
    true/false; anything else is an error naming the record."""
    if value is None:
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value).strip().lower()
    if text not in task.labels:
        raise BadInput(f"label {value!r} is not one of {', '.join(task.labels)} (task {task.name})", record=record_id)
    return text


# --- the Hugging Face hub (needs a network; the rows are mapped onto the local files' fields) --------

_SENTIMENT = {0: "negative", 1: "positive"}


def _first_sentences(text: str, count: int = 2) -> str:
    return " ".join(re.split(r"(?<=[.!?])\s+", text.strip())[:count])


# name -> (hub id, split, row mapper(row, index) -> our fields)
HUB: dict[str, tuple[str, str, Callable[[dict[str, Any], int], dict[str, Any]]]] = {
    "imdb": ("stanfordnlp/imdb", "test", lambda r, i: {"id": f"imdb-test-{i}", "text": r["text"], "label": _SENTIMENT[r["label"]]}),
    "sst2": (
        "stanfordnlp/sst2",
        "validation",  # the test split has no labels
        lambda r, i: {"id": f"sst2-validation-{r['idx']}", "text": r["sentence"], "label": _SENTIMENT[r["label"]]},
    ),
    "boolq": (
        "google/boolq",  # its passage is the original short one (no separate evidence field)
        "validation",
        lambda r, i: {"id": f"boolq-validation-{i}", "passage": r["passage"], "question": r["question"], "label": str(r["answer"]).lower()},
    ),
    "tellmewhy": (
        "StonyBrookNLP/tellmewhy",
        "test",
        lambda r, i: {"id": f"tellmewhy-test-{i}", "text": f"{r['narrative'].strip()} {r['question'].strip()}", "answer": r["answer"]},
    ),
    "wikibio": (
        "potsawee/wiki_bio_gpt3_hallucination",
        "evaluation",
        lambda r, i: {"id": f"wikibio-test-{r['wiki_bio_test_idx']}", "text": _first_sentences(r["wiki_bio_text"])},
    ),
}


def _load_from_hub(builtin: Builtin):
    import datasets

    from .models import cache_root

    hub_id, split, mapper = HUB[builtin.name]
    try:
        with _quiet_datasets():
            table = datasets.load_dataset(hub_id, split=split, cache_dir=str(cache_root() / "datasets"))
            table = table.map(mapper, with_indices=True, remove_columns=table.column_names)
    except (GradellmError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - network, hub and schema errors all end the same way
        raise NotFound(
            f"{builtin.name}: no local {builtin.file} (use `data_dir` or ${DATA_ENV}) and loading {hub_id} from the hub failed: "
            f"{_innermost(exc)}"
        ) from None
    return table, f"hf://{hub_id} ({split})"
