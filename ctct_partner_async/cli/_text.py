"""Text for a terminal: row keys, error messages and server data, with nothing a terminal would obey.

An organization name from the server or a login name from a file may hold an ESC sequence that would
recolour, move the cursor or retitle the window if printed raw. :func:`printable` escapes what a
terminal acts on or can't show: C0 controls (tab and newline too), DEL, C1 controls, lone surrogates,
the Unicode line and paragraph separators and the bidi embedding, override and isolate controls (which
reorder what follows them). Letters of any script (``é``, ``ß``, ``日本``) pass as they are.
:func:`json_line` does the same for a ``--json`` line, with escapes JSON reads back to the same text.
"""

from __future__ import annotations

import json
import re

__all__ = ["json_line", "printable"]

UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# The same set less what json.dumps escapes already (C0, and backslash and quote, which aren't in it).
UNPRINTABLE_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def printable(text: object) -> str:
    """``str(text)`` with every character a terminal would act on escaped (``\\x1b``, ``\\u2028``)."""
    text = str(text)
    return UNPRINTABLE.sub(_escape, text) if UNPRINTABLE.search(text) else text


def json_line(value: object) -> str:
    """``value`` as one line of JSON that is also safe on a terminal (non-ASCII letters kept)."""
    return UNPRINTABLE_IN_JSON.sub(_json_escape, json.dumps(value, ensure_ascii=False))
