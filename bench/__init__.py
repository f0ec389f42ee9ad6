"""The project's benchmarks, each a ratio against a reference measured in the same run.

A benchmark is a module that defines ``BENCHMARK``, a :class:`Benchmark`: its name, a
one-line description, the sizes of a quick and a full run, the function that measures,
how its result reads as figures, its plots and its check. The project's benchmarks are
registered once, in :data:`mbmssec.bench.registry.MODULES`; ``mbmssec bench --module
MODULE`` adds one for a run (a dotted module name or a ``.py`` file). For example::

    from mbmssec.bench import Benchmark

    def measure(rounds: int) -> dict[str, float]:
        ...  # time the work and a reference, same rounds
        return {"requests_per_second": ours, "reference_per_second": ref}

    BENCHMARK = Benchmark("mine", "my requests/s against a reference", measure, 10, 1000)

:mod:`mbmssec.bench.suite` runs the benchmarks (each in its own process) and
:mod:`mbmssec.bench.report` writes results.json, results.md and the plots; each
benchmark module also runs on its own (``python -m mbmssec.bench.srtp_bench --quick``).
"""

from mbmssec.bench.benchmark import Benchmark, Figure, Plot, PlotData

__all__ = ["Benchmark", "Figure", "Plot", "PlotData"]
