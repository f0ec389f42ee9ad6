"""Shared fixtures and the test lanes.

Lanes (markers declared in pyproject.toml):

* ``slow``: long searches, proofs over every proposal, the documentation build, population
  load; left out of the fast lane (``bash tools/test.sh --fast``), never out of the full
  suite.
* ``exclusive``: tests that depend on wall-clock timing under load (the 1,000-UE
  registration storm); ``tools/test.sh`` runs them after the parallel
  phase, alone on the machine.  An exclusive test is also ``slow`` (checked at
  collection), so the fast lane has no exclusive phase.
* ``interop``: tests against an oracle the project did not write (libsrtp, tshark,
  Chromium).

The expensive checker results are computed once per test process (session scope) and
shared by every module that needs them; modules that use them are grouped on one
pytest-xdist worker (``xdist_group("checker")``) so that they are computed once per run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mbmssec.model.concrete import Universe
from mbmssec.oracles.pgcluster import PgCluster
from mbmssec.proofs.check import (
    Comparison,
    Report,
    check_overrides,
    check_proposal,
    compare,
    shipped_proposals,
    verdict_pool,
)
from mbmssec.spec.loader import Profile

CHECK_UNIVERSE = Universe(ue=2, svc=1, tek=2, pkt=1)
"""The universe of the baseline's shared check and of the proposals with a common KEK:
every shipped proposal's shortest counterexample fits in it (1-2 UEs, 2 TEKs, 1 packet),
and the baseline's verdicts are those of the default universe (tests/test_check.py checks
the expected verdicts)."""


PROPOSAL_UNIVERSE = Universe(ue=1, svc=1, tek=2, pkt=1)
"""The universe of the shared results of the shipped proposals, but those with a common
KEK (:func:`proposal_universe`): each of their shortest counterexamples involves one UE
(and two TEKs), so their verdicts and counterexample lengths are those of
:data:`CHECK_UNIVERSE` and of the default universe (``mbmssec check`` gives the same),
and the bounded search over one UE costs a fraction of one over two.  Only a verdict
that the bounded search could overturn depends on the universe: a counterexample that
needs two UEs would leave its property *unknown* (weakened, not broken), which the
expected-verdicts test (tests/test_check.py) would report; none of the proposals
expects a safety property to be neither proved nor refuted (tests/test_check.py checks
that), and the liveness property is judged by the lasso search, whose universe is its
own.  Induction does not depend on the universe at all."""


def proposal_universe(profile: Profile) -> Universe:
    """The universe a proposal's profile is checked in for the shared results: one UE
    (:data:`PROPOSAL_UNIVERSE`), or two with ``kek_scope=common``, whose counterexamples
    use what one UE holds against another (:data:`CHECK_UNIVERSE`)."""
    return CHECK_UNIVERSE if profile["kek_scope"] == "common" else PROPOSAL_UNIVERSE


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse an ``exclusive`` test that is not ``slow``: the fast lane
    (``tools/test.sh --fast``) runs no exclusive phase and would leave it out."""
    lone = [
        i.nodeid
        for i in items
        if i.get_closest_marker("exclusive") and not i.get_closest_marker("slow")
    ]
    if lone:
        raise pytest.UsageError(
            "tests marked exclusive must also be marked slow (the fast lane has no "
            f"exclusive phase): {', '.join(lone)}"
        )


@dataclass(frozen=True)
class CheckerResults:
    """The baseline report and every shipped proposal compared with it."""

    baseline: Report
    comparisons: list[Comparison]


@pytest.fixture(scope="session")
def baseline_report() -> Report:
    """The baseline's check (induction, vacuity witnesses, bounded search), once."""
    return check_overrides({}, universe=CHECK_UNIVERSE)


@pytest.fixture(scope="session")
def checker_results(baseline_report: Report) -> CheckerResults:
    """``mbmssec check --all`` in-process, computed once: the baseline on
    :data:`CHECK_UNIVERSE`, each proposal on :func:`proposal_universe` (the proposals in
    two worker processes; a proposal that states behaviour is read again from its file by
    the worker, as its model is more than its option values)."""
    props = shipped_proposals()
    # the longest check first, so that the two workers finish together
    order = sorted(props, key=lambda p: proposal_universe(p.profile) != CHECK_UNIVERSE)
    with verdict_pool(2) as pool:
        futures = {
            p.name: (
                pool.submit(check_proposal, p.name, universe=proposal_universe(p.profile))
                if p.behaviour
                else pool.submit(
                    check_overrides, dict(p.overrides), universe=proposal_universe(p.profile)
                )
            )
            for p in order
        }
        comparisons = [compare(baseline_report, futures[p.name].result(), p) for p in props]
    return CheckerResults(baseline_report, comparisons)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throw-away PostgreSQL server for the test session (initdb into a temporary
    folder, a Unix socket there, stopped by its PID at the end).  Tests that use it are
    kept on one pytest-xdist worker (``xdist_group("postgres")``, see :data:`PG`), so
    that a run starts one server.  The tests kill BM-SC processes, never the database
    server, so it runs without fsync (the benchmark's server fsyncs)."""
    with PgCluster(settings={"fsync": "off", "full_page_writes": "off"}) as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """The URL of a fresh database on the session's server."""
    return pg_cluster.create_database()


PG = pytest.mark.xdist_group("postgres")
"""The mark of every test that uses :func:`pg_cluster`."""
