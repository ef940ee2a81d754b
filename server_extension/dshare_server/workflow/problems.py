"""Problems found in a workflow file, and the error that carries them.

A problem points at a 1-based line and column so editors and the notebook can underline
it; ``str(SpecError)`` renders every problem like a compiler would, with the offending
source line and a caret under the column.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass


@dataclass(frozen=True, order=True)
class Problem:
    line: int
    column: int
    message: str
    hint: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class SpecError(ValueError):
    """The workflow file was refused; ``problems`` says where and why."""

    def __init__(
        self, problems: Iterable[Problem], source: str = "", filename: str = "workflow.yaml"
    ) -> None:
        self.problems: list[Problem] = sorted(problems)
        self.source = source
        self.filename = filename
        super().__init__(self.render())

    def render(self) -> str:
        lines = self.source.splitlines()
        out: list[str] = []
        for p in self.problems:
            out.append(f"{self.filename}:{p.line}:{p.column}: error: {p.message}")
            if 1 <= p.line <= len(lines):
                text = lines[p.line - 1].expandtabs(1)
                # Long lines (a 1 MB single-line file) would drown the message.
                if len(text) > 200:
                    text = text[:200] + "..."
                out.append(f"    {text}")
                out.append("    " + " " * (min(p.column, 201) - 1) + "^")
            if p.hint:
                out.append(f"  hint: {p.hint}")
        n = len(self.problems)
        out.append(f"{n} problem{'s' if n != 1 else ''} found in {self.filename}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.render()
