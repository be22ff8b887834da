"""Text from runs shown on a terminal: never read as rich markup, and never acting on the terminal.

A run's text is untrusted (an agent's output, a web page it read): ``[/path]`` must print as written, and an escape
sequence (a colour, a window title, a clear-screen) is shown as ``\\x1b…`` rather than sent to the terminal.
"""

from __future__ import annotations

import re

from rich.text import Text

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 and C1 controls but tab and newline


def printable(text: str) -> str:
    """``text`` with each control character written as ``\\xNN``."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def plain(text: str, style: str = "") -> Text:
    """``text`` as a rich ``Text`` taken literally (no markup), its control characters made visible."""
    return Text(printable(text), style=style)
