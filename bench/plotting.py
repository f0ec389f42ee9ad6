"""Drawing helpers shared by the benchmarks' plots (matplotlib, Agg backend, PNG files).

matplotlib is imported on first use, so a benchmark module stays cheap to import and a
machine without a usable matplotlib still gets its results (the plots become a note).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mbmssec.bench.benchmark import Figure, Plot, PlotData

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["bars", "pyplot", "ratio_chart", "ratios_plot", "save", "unity"]


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path) -> bool:
    """Write the figure to ``path`` as a PNG and close it; True, for a plot's return."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    return True


def unity(ax: Axes, label: str = "reference = 1") -> None:
    """A dashed line at ratio 1: the reference."""
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label=label)


def bars(ax: Axes, labels: Sequence[str], values: Sequence[float], colour: str = "C0") -> None:
    """A bar per value, each labelled with its value."""
    xs = range(len(values))
    ax.bar(xs, values, color=colour)
    ax.set_xticks(list(xs), labels, rotation=20, ha="right", fontsize="small")
    for x, v in zip(xs, values, strict=True):
        ax.annotate(f"{v:.3g}", (x, v), ha="center", va="bottom", fontsize="small")


def ratio_chart(figures: Sequence[Figure], title: str, path: Path) -> bool:
    """Horizontal bars of every figure's ratio to its reference; False if none has one."""
    rated = [f for f in figures if f.ratio is not None and f.unit != "check"]
    if not rated:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * len(rated)))
    ys = list(range(len(rated)))
    values = [float(f.ratio or 0.0) for f in rated]
    ax.barh(ys, values)
    ax.set_yticks(ys, [f.name for f in rated], fontsize="small")
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
    if all(v > 0 for v in values) and max(values) / min(values) > 20:
        ax.set_xscale("log")
    for y, v in zip(ys, values, strict=True):
        ax.annotate(f" {v:.3g}", (v, y), va="center", fontsize="small")
    ax.set_xlabel("ratio to the reference")
    ax.set_title(title)
    return save(fig, path)


def ratios_plot(file: str, title: str, chart_title: str) -> Plot:
    """A plot of a benchmark's ratios (:func:`ratio_chart` of its figures)."""

    def draw(data: PlotData, path: Path) -> bool:
        return ratio_chart(data.figures, chart_title, path)

    return Plot(file, title, draw)
