"""mkdocs hook: every name that ``gradellm_cli`` exports has its ``:::`` block on the Python API page,
pointing at the module that defines it.

The names come from ``_EXPORTS`` in ``gradellm_cli/__init__.py`` (read without importing the package).
griffe, which mkdocstrings reads the code with, follows each export's re-imports to the module that
defines it. An exported name without a ``::: module.Name`` line on ``python-api.md``, or with one that
points elsewhere than its definition, is a warning that names the right line, so that
``mkdocs build --strict`` (``make docs``) fails until the page is right.
"""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

PAGE = "python-api.md"
PACKAGE = "gradellm_cli"
log = logging.getLogger("mkdocs.hooks.api_exports")


def exports(package_init: Path) -> dict[str, tuple[str, str]]:
    """``_EXPORTS``: public name -> (module under the package, attribute)."""
    tree = ast.parse(package_init.read_text(encoding="utf-8"))
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == "_EXPORTS" and node.value is not None:
            return ast.literal_eval(node.value)
    return {}


def defining_paths(repo: Path, table: dict[str, tuple[str, str]]) -> dict[str, str | None]:
    """Public name -> the dotted path of its definition, as griffe finds it (None: not found)."""
    import griffe

    package = griffe.load(PACKAGE, search_paths=[str(repo)])
    found: dict[str, str | None] = {}
    for name, (module, attribute) in table.items():
        try:
            obj = package[f"{module}.{attribute}"]
            found[name] = obj.final_target.path if obj.is_alias else obj.path
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            found[name] = None
    return found


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    repo = Path(config["docs_dir"]).resolve().parent
    table = exports(repo / PACKAGE / "__init__.py")
    if not table:
        log.warning("api_exports: no _EXPORTS found in %s/__init__.py", PACKAGE)
        return markdown
    blocks = {line.split()[1] for line in markdown.splitlines() if re.match(r"^:::\s+\S", line)}
    for name, path in defining_paths(repo, table).items():
        module, attribute = table[name]
        if path is None:
            log.warning("api_exports: %s exports %s as %s.%s.%s, which is not found", PACKAGE, name, PACKAGE, module, attribute)
        elif path not in blocks:
            elsewhere = sorted(block for block in blocks if block.rsplit(".", 1)[-1] == path.rsplit(".", 1)[-1])
            where = f"documents it as '::: {elsewhere[0]}'" if elsewhere else "has no block for it"
            log.warning("api_exports: %s exports %s, defined at %s; %s %s: write '::: %s'", PACKAGE, name, path, PAGE, where, path)
    return markdown
