"""``qcc dashboard``: open the running proxy's web dashboard in the default browser."""

from __future__ import annotations

import sys
import webbrowser

import typer


def dashboard() -> None:
    """Open the running proxy's web dashboard (/ui/) in the default browser.

    Prints the URL; when no browser can be opened (a server, an SSH session) only the URL, to
    open elsewhere. With proxy.access_key set, the page asks for the key once per tab.
    Exit code 1 (with one line) when no proxy runs.

    \b
    Example:
      qcc dashboard
      BROWSER=firefox qcc dashboard

    \b
    Environment:
      BROWSER  the browser command to use (Python's webbrowser module)
    """
    from qcc.proxy.record import require_record

    url = require_record().url + "/ui/"
    typer.echo(url)
    try:
        opened = webbrowser.open(url, new=2)
    except webbrowser.Error:
        opened = False
    if opened:
        sys.stderr.write("qcc: opened in the default browser\n")
