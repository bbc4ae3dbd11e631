"""Text from the workspace made safe for a terminal: one line, nothing the terminal obeys.

Customer data, custom field keys and file names can hold anything, including escape
sequences that recolour the terminal, move the cursor and overwrite lines already
printed, and bidi overrides that show text in another order than it is stored.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

#: ESC and C1 sequences a terminal acts on: CSI (``ESC [`` or U+009B), OSC, DCS, SOS, PM
#: and APC strings (up to BEL or ST), and two-character escapes.  Removed whole, so that
#: no ``[31m`` remains of a colour code.
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?")


def clean(value: Any) -> str:
    """One line of text: escape sequences removed, every other control, format (bidi
    overrides, zero-width characters) or unassigned character shown as a space."""
    if value is None:
        return ""
    text = str(value)
    if text.isprintable():  # no control, format or unassigned character: most text
        return text
    text = _SEQUENCE.sub("", text)
    return "".join(" " if unicodedata.category(c)[0] == "C" else c for c in text)
