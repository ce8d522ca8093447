"""Whole files or nothing: the files gradellm replaces (a manifest, a resumed output, report tables)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from .errors import OutputError


def replace_atomically(path: Path, data: bytes, verb: str = "write") -> None:
    """Write ``data`` to a temporary file beside ``path``, sync it, and rename it over ``path``: a kill
    or a full disk at any moment leaves the old file or the new one, never half of one. The temporary
    name is unique (shards on several machines sharing a folder may have the same pid) and removed on
    failure; the new file gets the umask's mode, as any file the user writes."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise OutputError(f"cannot {verb} {path}: {exc.strerror}") from None
