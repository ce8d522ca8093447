"""Terminal heatmaps: tokens coloured by score, with rich.

Scores are shown relative to the largest score among the tokens displayed (source tokens only by
default), which is also how the metrics normalise them. Colours degrade to plain text in a pipe.
"""

from __future__ import annotations

from typing import Any

from rich.color import Color
from rich.style import Style
from rich.text import Text


def _style(weight: float) -> Style:
    """White (0) to deep red (1) background, with text that stays readable on it."""
    weight = min(max(weight, 0.0), 1.0)
    fade = int(round(255 * (1.0 - 0.85 * weight)))
    foreground = "white" if weight > 0.6 else "black"
    return Style(color=foreground, bgcolor=Color.from_rgb(255, fade, fade))


def _display(token: str) -> str:
    return token.replace("\n", "\u23ce ").replace("\t", "\u21e5")


def heatmap_text(record: dict[str, Any], all_tokens: bool = False, numbers: bool = False) -> Text:
    """A one-paragraph coloured rendering of one heatmap record; ``numbers`` appends each relative score
    (for output without colour, such as a pipe or a file)."""
    tokens, scores, source = record["tokens"], record["scores"], record["source_mask"]
    shown = [i for i in range(len(tokens)) if all_tokens or source[i]]
    top = max((scores[i] for i in shown), default=0.0)
    text = Text()
    for i in shown:
        weight = scores[i] / top if top > 0 else 0.0
        text.append(_display(tokens[i]), style=_style(weight))
        if numbers:
            text.append(f"[{weight:.2f}]", style="dim")
    return text


def heatmap_header(record: dict[str, Any]) -> Text:
    """The header line of a heatmap: id, model, method, step, target (and contrast), probability and logit."""
    # the record's own 0-based step, then its place among the steps, so the label matches the field
    step = f" step {record['step']} ({record['step'] + 1} of {record['steps']})" if record.get("steps", 1) > 1 else ""
    header = Text()
    header.append(f"{record['id']}", style="bold")
    header.append(f" {record['model']} {record['method']}{step} ", style="dim")
    header.append("target ")
    header.append(repr(record["target_token"]), style="bold cyan")
    if record.get("contrast_token") is not None:  # the explained scalar is target minus contrast
        header.append(" rather than ")
        header.append(repr(record["contrast_token"]), style="bold magenta")
    header.append(f" p={record['target_prob']:.3f} logit={record['target_logit']:.2f}", style="dim")
    return header


def print_heatmap(console, record: dict[str, Any], all_tokens: bool = False) -> None:
    """One heatmap record on a rich ``Console``, as ``gradellm explain`` prints it: its header line, then the
    source tokens coloured by score (relative scores in brackets where there is no colour)."""
    console.print(heatmap_header(record))
    plain = not console.is_terminal or console.no_color
    console.print(heatmap_text(record, all_tokens, numbers=plain))
    console.print()


def continuation_text(record: dict[str, Any]) -> str | None:
    """The whole reply a generation's last step completes (the tokens after the prompt, then its target);
    None for a classification record or any other step."""
    if record.get("label_ids") is not None or record.get("step") != record.get("steps", 1) - 1:
        return None
    start = record.get("prompt_length") or len(record["tokens"])
    return "".join(record["tokens"][start:]) + record["target_token"]


def print_continuation(console, record: dict[str, Any]) -> None:
    """After a generation's last heatmap: the reply whole (generated, or given with --continuation)."""
    text = continuation_text(record)
    if text is None:
        return
    source = "given" if record.get("target_source") == "given" else "generated"
    line = Text()
    line.append(f"{record['id']}", style="bold")
    line.append(f" {record['model']} {record['method']} {source} ({record['steps']} tokens): ", style="dim")
    line.append(repr(text))
    console.print(line)
    console.print()
