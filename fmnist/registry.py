"""One small registry for the things that register themselves by name (formats, runtimes,
variants): registration order kept, and an unknown name is one line listing the known ones."""
from __future__ import annotations


class UnknownName(KeyError):
    def __str__(self):
        return self.args[0]


class Registry:
    def __init__(self, kind: str):
        self.kind, self.entries = kind, {}

    def register(self, entry):
        self.entries[entry.name] = entry
        return entry

    def names(self) -> list[str]:
        return list(self.entries)

    def get(self, name: str):
        try:
            return self.entries[name]
        except KeyError:
            raise UnknownName(f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self.entries)}") from None
