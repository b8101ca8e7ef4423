"""One registry class for methods, suite kinds and model presets.

Objects register where they are defined (a decorator in the defining file);
duplicates are refused and unknown names get did-you-mean suggestions.
"""

from __future__ import annotations

import difflib
from typing import Generic, Iterator, TypeVar

from kdbench.errors import KdbenchError

T = TypeVar("T")


def did_you_mean(word: str, choices: list[str]) -> str:
    """A hint naming the closest valid choices, or all of them when none is close."""
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.5)
    valid = f"valid: {', '.join(sorted(choices))}" if len(choices) <= 12 else "`kdbench --help` lists them all"
    if close:
        return f"did you mean {' or '.join(repr(c) for c in close)}? {valid}"
    return valid


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KdbenchError(f"unknown {self.kind} {name!r}; {did_you_mean(name, self.names())}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def names(self) -> list[str]:
        return sorted(self._items)

    def __iter__(self) -> Iterator[tuple[str, T]]:
        return iter(sorted(self._items.items()))


METHODS: Registry = Registry("method")
SUITE_KINDS: Registry = Registry("suite kind")  # the classes a suite TOML's `kind` names (kdbench.suites.base)
MODELS: Registry = Registry("model preset")
