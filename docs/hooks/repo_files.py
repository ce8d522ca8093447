"""mkdocs hook: the repository files that the documentation links to, in the built site.

The pages in ``docs/`` link to files elsewhere in the repository with relative links such as
``../runs/paper/README.md`` or ``../examples/pi_curves_smollm2.png``, which work where the repository
is browsed (GitHub, an editor). mkdocs itself knows only the files under ``docs/``, so this hook adds
every such file to the site under ``repo/`` (Markdown files as pages, anything else copied as it is, a
linked folder without a README as a page listing its files), follows the links of the Markdown files
it adds in the same way, and rewrites the links to point there. A link to a file that does not exist
is left as written, so ``mkdocs build --strict`` still fails on it.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files, InclusionLevel

PREFIX = "repo"  # where the repository's files go in the site
LINK = re.compile(r"(!?\[[^\]\n]*\]\()(<?)([^)\s>]+)(>?(?:\s+\"[^\"]*\")?\))")
FENCE = re.compile(r"^\s*(```|~~~)")

_targets: dict[str, str] = {}  # repository path (posix, relative) -> src_uri in the site


def _links(markdown: str):
    """(match) of every inline link or image outside fenced code blocks."""
    fenced = False
    offset = 0
    for line in markdown.splitlines(keepends=True):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            for match in LINK.finditer(line):
                yield offset, match
        offset += len(line)


def _split(target: str) -> tuple[str, str]:
    """The path of a link target and its ``#anchor`` or ``?query`` tail."""
    cut = min((i for i in (target.find("#"), target.find("?")) if i >= 0), default=len(target))
    return target[:cut], target[cut:]


def _is_relative(path: str) -> bool:
    return bool(path) and "://" not in path and not path.startswith(("/", "mailto:"))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _add(path: Path, repo: Path, docs: Path, config, files: Files, queue: list[Path]) -> str | None:
    """The site's src_uri for a repository file or folder outside docs/, adding it on first sight."""
    if path.is_dir():
        for name in ("README.md", "index.md"):
            if (path / name).is_file():
                return _add(path / name, repo, docs, config, files, queue)
        rel = path.relative_to(repo).as_posix()
        uri = f"{PREFIX}/{rel}/index.md"
        if rel + "/" not in _targets:
            _targets[rel + "/"] = uri
            entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
            lines = [f"# `{rel}/`", "", "Files of this folder of the repository:", ""]
            for entry in entries:
                child = _add(entry, repo, docs, config, files, queue)
                if child is not None:
                    lines.append(f"* [`{entry.name}{'/' if entry.is_dir() else ''}`]({posixpath.relpath(child, posixpath.dirname(uri))})")
            files.append(File.generated(config, uri, content="\n".join(lines) + "\n", inclusion=InclusionLevel.NOT_IN_NAV))
        return _targets[rel + "/"]
    if not path.is_file():
        return None
    rel = path.relative_to(repo).as_posix()
    if rel not in _targets:
        uri = f"{PREFIX}/{rel}"
        _targets[rel] = uri
        files.append(File.generated(config, uri, abs_src_path=str(path), inclusion=InclusionLevel.NOT_IN_NAV))
        if path.suffix == ".md":
            queue.append(path)
    return _targets[rel]


def _resolve(target: str, source: Path, repo: Path, docs: Path) -> Path | None:
    path, _ = _split(target)
    if not _is_relative(path):
        return None
    return Path(os.path.normpath(source.parent / path))


def on_files(files: Files, config) -> Files:
    _targets.clear()
    docs = Path(config["docs_dir"]).resolve()
    repo = docs.parent
    queue = [Path(f.abs_src_path) for f in files.documentation_pages() if f.abs_src_path]
    while queue:
        source = queue.pop()
        for _, match in _links(source.read_text(encoding="utf-8")):
            path = _resolve(match.group(3), source, repo, docs)
            if path is None or _inside(path, docs) or not _inside(path, repo) or not path.exists():
                continue  # a docs page (mkdocs checks it), outside the repository, or missing (mkdocs warns)
            if any(part.startswith(".") for part in path.relative_to(repo).parts):
                continue
            _add(path, repo, docs, config, files, queue)
    return files


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    if not page.file.abs_src_path:
        return markdown  # a folder listing, written with its links already in place
    docs = Path(config["docs_dir"]).resolve()
    repo = docs.parent
    source = Path(page.file.abs_src_path)
    here = posixpath.dirname(page.file.src_uri)
    out, last = [], 0
    for offset, match in _links(markdown):
        path = _resolve(match.group(3), source, repo, docs)
        if path is None:
            continue
        _, tail = _split(match.group(3))
        if _inside(path, docs):
            uri = path.relative_to(docs).as_posix()
        elif _inside(path, repo):
            rel = path.relative_to(repo).as_posix()
            uri = _targets.get(rel + "/" if path.is_dir() else rel)
            if uri is None and path.is_dir():
                readme = next((path / n for n in ("README.md", "index.md") if (path / n).is_file()), None)
                uri = _targets.get(readme.relative_to(repo).as_posix()) if readme else None
            if uri is None:
                continue
        else:
            continue
        new = posixpath.relpath(uri, here or ".") + tail
        if new == match.group(3):
            continue
        start = offset + match.start(3)
        out.append(markdown[last:start])
        out.append(new)
        last = offset + match.end(3)
    out.append(markdown[last:])
    return "".join(out)
