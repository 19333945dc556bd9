"""Plain-text and markdown tables for terminal output and report files."""

from __future__ import annotations

from collections.abc import Sequence


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A column-aligned plain-text table."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)] if rows else \
        [len(h) for h in headers]
    line = "  ".join(f"{h:<{w}}" for h, w in zip(headers, widths, strict=True))
    body = ["  ".join(f"{c!s:<{w}}" for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([line, "-" * len(line), *body])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(c: object) -> str:
        return str(c).replace("|", "\\|")

    out = ["| " + " | ".join(map(cell, headers)) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(out)
