"""Output shared by every command module.

Where things go:

* **stdout** carries data only: tables, and for ``--json`` exactly one JSON document
  (:func:`print_json`).
* **stderr** carries everything meant for the human: confirmations (:func:`success`), hints
  (:func:`note`) and the one-line errors printed by :func:`qcc.cli.main.main`.

Rich consoles are built with markup, highlighting and emoji codes off, so names, URLs and
messages from users print literally (``[bold]`` stays ``[bold]``). Secrets never reach this
module unmasked: the ``*_dict`` helpers go through :meth:`Credential.masked`.

Tables fit the terminal (:class:`FitTable`): a cell is never broken inside a word. When the
table is too wide, headers get their short forms, then low-value columns are dropped (in the
order of :data:`DROP_FIRST`), and free-text columns (:data:`FREE_TEXT`) are shortened at a word
boundary with an ellipsis. Piped output is not narrowed (see :data:`PIPE_WIDTH`).
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from qcc.config.model import Account, Cluster, Config, Credential

# Piped output is not wrapped at 80 columns: tables stay one row per line for grep and awk.
PIPE_WIDTH = 1000


def _console(stderr: bool) -> Console:
    out = Console(
        stderr=stderr,
        markup=False,
        highlight=False,
        emoji=False,
        soft_wrap=True,
    )
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = PIPE_WIDTH
    return out


def console() -> Console:
    """A console on stdout (built per call, so it follows redirected ``sys.stdout``)."""
    return _console(stderr=False)


def err_console() -> Console:
    """A console on stderr."""
    return _console(stderr=True)


def print_json(obj: Any) -> None:
    """Write ``obj`` as exactly one JSON document (plus a newline) on stdout, bypassing Rich."""
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


# Columns dropped when a table is too wide, first to last; columns not named here stay.
DROP_FIRST = (
    "cache read",
    "models",
    "since",
    "tokens in/out",
    "spend",
    "headroom",
    "until",
    "failures",
    "priority",
    "weight",
    "p50 ms",
    "req/s",
)
# Free text: shortened with "…" at a word boundary to what is left; every other cell is whole.
# Dropped, when still too wide, if every row holds the same value.
DROP_IF_SAME = frozenset({"cluster", "enabled"})
# Leading columns that together name a row (the heading of a block on a narrow terminal).
BLOCK_HEADING = frozenset({"name", "account"})
FREE_TEXT = frozenset({"reason", "last error", "detail"})
FREE_MIN = 16
FREE_LAST = 10  # before giving up on columns
SHORT_HEADERS = {
    "requests": "reqs",
    "failures": "fails",
    "priority": "prio",
    "weight": "wt",
    "enabled": "on",
    "latency ms": "ms",
    "tokens in/out": "tok in/out",
    "credential": "cred",
}


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells at a word boundary, ending with "…" when cut."""
    if cell_len(text) <= width:
        return text
    cut = text[: max(width - 1, 0)]
    space = cut.rfind(" ")
    if text[len(cut)] != " " and space >= width // 2:  # not at a word's end: back to one
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


def _plain(cell: object) -> str:
    return cell if isinstance(cell, str) else str(getattr(cell, "plain", cell))


class FitTable(Table):
    """A table that fits the width it is rendered in, without breaking a word.

    Rows are added as usual; at render time :meth:`fitted` picks the columns that fit. When
    even the columns that cannot go do not fit side by side (long names and URLs on a narrow
    terminal), each row is shown as a small block of ``column value`` lines instead.
    """

    def fitted(self, width: int) -> RenderableType:
        headers = [_plain(column.header) for column in self.columns]
        cells = [[_plain(cell) for cell in column.cells] for column in self.columns]
        keep = list(range(len(headers)))
        shown = list(headers)

        def need_full(i: int) -> int:
            return max([cell_len(shown[i]), *(cell_len(c) for c in cells[i])])

        floor = FREE_MIN

        def need(i: int) -> int:
            natural = need_full(i)
            return min(natural, floor) if headers[i] in FREE_TEXT else natural

        def total() -> int:
            return sum(need(i) for i in keep) + 3 * len(keep) - 1

        if total() > width:
            shown = [SHORT_HEADERS.get(h, h) for h in headers]
            for floor in (FREE_MIN, FREE_LAST):  # noqa: B007 - need() reads it
                keep = list(range(len(headers)))
                for name in DROP_FIRST:
                    if total() <= width:
                        break
                    keep = [i for i in keep if headers[i] != name]
                if total() > width and self.row_count > 1:  # the same in every row: drop it
                    keep = [
                        i for i in keep if headers[i] not in DROP_IF_SAME or len(set(cells[i])) > 1
                    ]
                if total() <= width:
                    break
            else:
                return self._blocks(headers, cells, width)
        # What is left goes to the free-text columns, the shortest first, each taking only
        # what it needs, so a long "last error" gets the room a short "reason" leaves.
        free = sorted((i for i in keep if headers[i] in FREE_TEXT), key=need_full)
        left = width - (sum(need(i) for i in keep if i not in free) + 3 * len(keep) - 1)
        room: dict[int, int] = {}
        for n, i in enumerate(free):
            room[i] = max(floor, min(need_full(i), left // (len(free) - n)))
            left -= room[i]
        title = self.title
        if isinstance(title, str) and cell_len(title) > width:  # wrapped here: soft_wrap is on
            title = "\n".join(
                textwrap.wrap(title, width, break_long_words=False, break_on_hyphens=False)
            )
        out = Table(
            title=title,
            title_justify=self.title_justify,
            header_style=self.header_style,
            show_edge=self.show_edge,
        )
        for i in keep:
            out.add_column(shown[i], no_wrap=True, overflow="ellipsis", min_width=need(i))
        for row in range(self.row_count):
            out.add_row(
                *(shorten(cells[i][row], room[i]) if i in room else cells[i][row] for i in keep)
            )
        return out

    def _blocks(self, headers: list[str], cells: list[list[str]], width: int) -> RenderableType:
        """Each row as a heading (its leading name cells, e.g. ``prod / main``), then one
        indented ``column  value`` line per other column."""
        lead = 1
        while lead < len(headers) - 1 and headers[lead] in BLOCK_HEADING:
            lead += 1
        label = max((cell_len(h) for h in headers[lead:]), default=0)
        lines: list[str] = []
        if isinstance(self.title, str):
            lines += [*textwrap.wrap(self.title, width, break_long_words=False), ""]
        for row in range(self.row_count):
            lines.append(" / ".join(cells[i][row] for i in range(lead)))
            room = max(width - label - 4, 1)
            for i in range(lead, len(headers)):
                value = cells[i][row]
                if headers[i] in FREE_TEXT:
                    value = shorten(value, room)
                parts = textwrap.wrap(
                    value, room, break_long_words=False, break_on_hyphens=False
                ) or [value]
                lines.append(f"  {headers[i].ljust(label)}  {parts[0]}")
                lines += [" " * (label + 4) + part for part in parts[1:]]
        return Text("\n".join(lines), no_wrap=True, overflow="ignore")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.fitted(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.fitted(options.max_width))


def table(title: str | None, columns: Sequence[str]) -> Table:
    """An empty table with the house style that fits the terminal; add rows, then
    ``console().print(t)``."""
    out = FitTable(title=title, title_justify="left", header_style="bold", show_edge=False)
    for column in columns:
        out.add_column(column, no_wrap=True)
    return out


def success(message: str) -> None:
    """Confirm a change on stderr (stdout stays for data)."""
    err_console().print(message)


def note(message: str) -> None:
    """A hint for the human on stderr, e.g. what to do when a list is empty."""
    err_console().print(message)


def stdin_is_tty() -> bool:
    """Whether we may ask questions; tests patch this."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except ValueError:  # closed stdin
        return False


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def models_text(models: Mapping[str, str]) -> str:
    return ", ".join(f"{source}→{target}" for source, target in models.items()) or "-"


def credential_dict(credential: Credential) -> dict[str, str]:
    """``{"kind", "value", "source"}`` with the value masked (env var names are shown as
    ``$NAME``); ``source`` is ``inline``, ``env:VAR``, ``command`` or ``oauth``."""
    return {"kind": credential.kind, "value": credential.masked(), "source": credential.source}


def account_dict(cluster: str, account: Account) -> dict[str, Any]:
    return {
        "name": account.name,
        "cluster": cluster,
        "base_url": account.base_url,
        "credential": credential_dict(account.credential),
        "weight": account.weight,
        "priority": account.priority,
        "enabled": account.enabled,
        "models": dict(account.models),
        "probe": account.probe,
    }


def account_counts(cluster: Cluster) -> dict[str, int]:
    enabled = sum(1 for account in cluster.accounts if account.enabled)
    return {"total": len(cluster.accounts), "enabled": enabled}


def cluster_summary(config: Config, cluster: Cluster) -> dict[str, Any]:
    """One row of ``cluster list --json``."""
    return {
        "name": cluster.name,
        "strategy": cluster.strategy,
        "sticky": cluster.sticky,
        "default": config.default_cluster == cluster.name,
        "accounts": account_counts(cluster),
    }


def cluster_dict(config: Config, cluster: Cluster) -> dict[str, Any]:
    """``cluster show --json``: the summary plus every account (masked)."""
    return {
        "name": cluster.name,
        "strategy": cluster.strategy,
        "sticky": cluster.sticky,
        "default": config.default_cluster == cluster.name,
        "accounts": [account_dict(cluster.name, account) for account in cluster.accounts],
    }


ACCOUNT_COLUMNS = (
    "cluster",
    "name",
    "base_url",
    "credential",
    "weight",
    "priority",
    "enabled",
    "models",
)


def account_row(cluster: str, account: Account) -> list[str]:
    """The cells of one account in the order of :data:`ACCOUNT_COLUMNS`."""
    return [
        cluster,
        account.name,
        account.base_url,
        account.credential.masked(),
        str(account.weight),
        str(account.priority),
        yes_no(account.enabled),
        models_text(account.models),
    ]
