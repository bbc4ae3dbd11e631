"""Turning names into ids: ``Jürgen Weiß`` → ``juergen-weiss``."""

from __future__ import annotations

import re
import unicodedata

_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss",
                         "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ẞ": "Ss"})


def slugify(text: str, max_length: int = 60) -> str:
    """A lowercase slug of ``text`` that is always a valid crmkit id (or ``""``)."""
    text = re.sub(r"['’`´]", "", text)  # O'Connor → oconnor, not o-connor
    text = unicodedata.normalize("NFKD", text.translate(_GERMAN))
    text = text.encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return slug[:max_length].rstrip("-")
