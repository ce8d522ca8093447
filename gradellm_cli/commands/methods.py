"""``gradellm methods``: the registered attribution methods, one line each."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def methods() -> None:
    """List the attribution methods with a one-line description each.

    Example: gradellm methods
    """
    from ..methods import get_method, method_names  # torch: imported as the command runs, not for its --help

    console = Console()
    if not console.is_terminal:  # scripts: one method per line, name, a tab, its description, never wrapped
        for name in method_names():
            print(f"{name}\t{get_method(name).description}")
        return
    table = Table("method", "what it computes", box=None, header_style="bold")
    for name in method_names():
        table.add_row(name, get_method(name).description)
    console.print(table)
