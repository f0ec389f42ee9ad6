"""Fetch-spreading strategies: where in the fetch window a UE is told to fetch its next TEK.

The proposed TS 33.246 text (6.2.2 and 6.2.3.2, "congestion") has every UE fetch the next
TEK point to point before it is activated and leaves open how the requests are spread;
the spec option ``fetch_spreading`` names the remedies.  This module is the single
implementation of each: the live BM-SC's scheduler (:mod:`mbmssec.impl.service.bmsc`)
calls :func:`fetch_offset` for one UE, and the population simulation
(:mod:`mbmssec.simulation.load`) calls the same function on numpy arrays of UEs.  Both
give the strategy the same inputs:

* ``u``: a uniform draw in [0, 1) per UE (the BM-SC makes it from 32 random bits with
  :func:`uniform_from_bits`; the simulation draws it with numpy),
* ``rank`` and ``count``: the UE's slot among ``count`` slots (scheduled slots only),
* the window's length in seconds.

:func:`fetch_period` says how many windows pass between two fetches of one UE (several
with ``multi_key``, where one delivery carries several next TEKs).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Final, TypeVar

from mbmssec.errors import MbmssecError

if TYPE_CHECKING:  # the BM-SC and UE processes do not load numpy for a type
    import numpy as np
    import numpy.typing as npt

    F64 = npt.NDArray[np.float64]

X = TypeVar("X", float, "F64")

OPTION: Final = "fetch_spreading"
"""The spec option (spec/options.toml) whose values name the strategies below."""


class SpreadingError(MbmssecError):
    """An unknown strategy or an out-of-range input to a strategy."""


class FetchSpreading(StrEnum):
    """The values of the spec option ``fetch_spreading`` (spec/options.toml, checked by
    tests/test_spreading.py), each implemented once below."""

    NONE = "none"
    RANDOM_INTERVAL = "random_interval"
    SCHEDULED_SLOTS = "scheduled_slots"
    MULTI_KEY = "multi_key"


def fetch_period(strategy: FetchSpreading | str, keys: int = 1) -> int:
    """How many fetch windows pass between two fetches of one UE: ``keys`` when one
    delivery carries that many next TEKs (``multi_key``), else 1."""
    strategy = _known(strategy)
    if keys < 1:
        raise SpreadingError(f"keys per delivery must be >= 1, not {keys}")
    return keys if strategy is FetchSpreading.MULTI_KEY else 1


def fetch_offset(strategy: FetchSpreading | str, window: float, u: X, rank: X, count: X) -> X:
    """Seconds after the fetch window opens at which a UE fetches, for one UE (floats)
    or many (numpy arrays): the same arithmetic on both paths.

    ``none``: at the opening; ``random_interval`` and ``multi_key``: ``u`` of the way
    through the window; ``scheduled_slots``: slot ``rank`` of ``count`` equal slots."""
    strategy = _known(strategy)
    if strategy is FetchSpreading.NONE:
        return u * 0.0
    if strategy is FetchSpreading.SCHEDULED_SLOTS:
        return window * rank / count
    return window * u


def draws_at_random(strategy: FetchSpreading | str) -> bool:
    """Whether the strategy uses the UE's uniform draw ``u`` (so a caller that pays for
    randomness makes one only when it is used)."""
    return _known(strategy) in (FetchSpreading.RANDOM_INTERVAL, FetchSpreading.MULTI_KEY)


def _known(strategy: FetchSpreading | str) -> FetchSpreading:
    try:
        return FetchSpreading(strategy)
    except ValueError:
        known = ", ".join(FetchSpreading)
        raise SpreadingError(f"unknown fetch_spreading {strategy!r} (known: {known})") from None


def uniform_from_bits(bits: bytes) -> float:
    """A uniform draw in [0, 1) from 32 random bits (big-endian), as the BM-SC makes it."""
    if len(bits) != 4:
        raise SpreadingError(f"a uniform draw takes 4 random octets, not {len(bits)}")
    return int.from_bytes(bits, "big") / 2**32
