"""Typed, located access to a plugin's section of ``crmkit.yaml``.

Plugins read their settings through :class:`Options`: a wrong value falls back
to the default and becomes a diagnostic pointing at the value, so validation
(``crmkit_validate``) and computation read the settings the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .diagnostics import Diagnostic, Location
from .model import Settings
from .schema import did_you_mean
from .yamlsource import YamlMap


class Options:
    def __init__(self, settings: Settings, *path: str, source: str = "crmkit") -> None:
        self.settings = settings
        self.path = path
        self.source = source
        self.diagnostics: list[Diagnostic] = []
        value: Any = settings.sections.get(path[0]) if path else None
        for key in path[1:]:
            value = value.get(key) if isinstance(value, dict) else None
        self.data: dict = value if isinstance(value, dict) else {}
        if value is not None and not isinstance(value, dict):
            self._problem(None, f"'{self.name}' must be a mapping (key: value lines)")

    @property
    def name(self) -> str:
        return ".".join(self.path)

    def locate(self, key: str | None = None) -> Location:
        """Where ``key`` (or this section) is written in crmkit.yaml."""
        data = self.data
        if isinstance(data, YamlMap):
            line, col = data.marks.get(key, data.start) if key is not None else data.start
            if line:
                return Location("crmkit.yaml", line, col)
        return self.settings.locate(self.path[0]) if self.path else self.settings.location

    def _problem(self, key: str | None, message: str) -> None:
        self.diagnostics.append(Diagnostic.error(message, self.locate(key), source=self.source))

    def sub(self, key: str) -> Options:
        child = Options(self.settings, *self.path, key, source=self.source)
        self.diagnostics.extend(child.diagnostics)
        child.diagnostics = self.diagnostics
        return child

    def check_keys(self, allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        for key in self.data:
            if key not in allowed:
                where = self.data.key_marks.get(key) if isinstance(self.data, YamlMap) else None
                location = Location("crmkit.yaml", *where) if where else self.locate()
                self.diagnostics.append(Diagnostic.error(
                    f"unknown setting {key!r} in '{self.name}'"
                    f"{did_you_mean(str(key), allowed)}", location, source=self.source))

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def integer(self, key: str, default: int, minimum: int | None = None) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or (
                minimum is not None and value < minimum):
            low = f" of at least {minimum}" if minimum is not None else ""
            self._problem(key, f"'{self.name}.{key}' must be a whole number{low}, "
                          f"not {value!r}")
            return default
        return value

    def number(self, key: str, default: float, minimum: float | None = None,
               maximum: float | None = None) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                minimum is not None and value < minimum) or (
                maximum is not None and value > maximum):
            bounds = ""
            if minimum is not None and maximum is not None:
                bounds = f" between {minimum} and {maximum}"
            elif minimum is not None:
                bounds = f" of at least {minimum}"
            self._problem(key, f"'{self.name}.{key}' must be a number{bounds}, not {value!r}")
            return default
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self._problem(key, f"'{self.name}.{key}' must be true or false, not {value!r}")
            return default
        return value

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get(key, default)
        if value is not None and not isinstance(value, str):
            self._problem(key, f"'{self.name}.{key}' must be text, not {value!r}")
            return default
        return value

    def text_list(self, key: str, default: Iterable[str] = ()) -> tuple[str, ...]:
        value = self.data.get(key)
        if value is None:
            return tuple(default)
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self._problem(key, f"'{self.name}.{key}' must be a list of text")
            return tuple(default)
        return tuple(value)
