"""What every page writer works with: the inputs, the generated folder and the charts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mbmssec.docgen.charts import Charts
from mbmssec.docgen.inputs import Inputs
from mbmssec.docgen.writer import PageWriter


@dataclass
class Site:
    """One generation: the inputs read, the writer of the generated folder and the
    counterexample charts drawn so far (each is drawn once, whichever page shows it)."""

    inp: Inputs
    writer: PageWriter
    charts: Charts

    @classmethod
    def create(cls, inp: Inputs, out: Path) -> Site:
        """A generation writing into the folder ``out``."""
        writer = PageWriter(out)
        return cls(inp, writer, Charts(inp, writer))

    def write(self, rel: str, text: str) -> Path:
        """Write a page (or any file) under the generated folder."""
        return self.writer.write(rel, text)
