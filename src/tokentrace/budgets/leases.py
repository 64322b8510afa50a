"""The leases one process admits calls from, in memory: how big a lease is, taking a call's estimate from them,
settling an ended call against them, finding the ones to give back, and what their calls cost past their estimates
until the ledger holds their rows.

A *lease* is one reservation in the ledger worth ``LEASE_FRACTION`` of what its budget had left; while it has room,
the process admits calls from it with no database round trip (``LeaseBook.take``). The ledger side (reserving a
lease, taking what is left of it off the reservation) is ``budgets.store``'s. Stdlib only; thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from . import Budget

LEASE_FRACTION = 1 / 16
"""A lease is this share of what its budget has left (after this call's estimate)."""
LEASE_MIN_CALLS = 8
"""No lease smaller than this many of the call's estimates: closer to the limit, calls take the exact path."""
LEASE_IDLE_S = 2.0
"""What is left of a lease unused this long goes back to the fleet."""


@dataclass
class Lease:
    """A reservation this process admits calls from without a round trip."""

    id: int
    budget: str
    usd_left: float
    tokens_left: int
    in_flight: int = 0
    last_used: float = 0.0
    """time.monotonic() of the last call admitted from it."""
    retired: bool = False
    """Given back: no more calls are admitted from it; its calls in flight still settle against it."""
    debt_usd: float = 0.0
    """What calls of the budget's earlier leases cost beyond their estimates after this one was granted: not the
    ledger's (those calls' own rows and ``Beyond`` count it there), but no call is admitted from this lease until
    it is covered, so a process that learns its spend ran past its estimates decides the next call exactly."""
    debt_tokens: int = 0

    def fits(self, budget: Budget, usd: float, tokens: int) -> bool:
        return not self.retired and (budget.limit_usd is None or self.usd_left - self.debt_usd >= usd) and (
            budget.limit_tokens is None or self.tokens_left - self.debt_tokens >= tokens)


Take = tuple[Lease, float, int]
"""A call's estimate taken from a lease: (lease, USD, tokens)."""
class Beyond:
    """What calls admitted from leases cost beyond the estimate they took, by budget: counted by admission until the
    writer has their rows (``after_write``: the writer calls it once the transaction that wrote them is over, or the
    rows were dropped)."""

    __slots__ = ("after_write", "charges")

    def __init__(self, charges: tuple[tuple[str, float, int], ...],
                 after_write: Callable[[Beyond], None] | None = None) -> None:
        self.charges = charges
        self.after_write = after_write

    def written(self) -> None:
        if self.after_write is not None:
            self.after_write(self)


Settlement = int | tuple[int, float, int] | Beyond
"""What the ledger writer does for an ended call, in the transaction that writes its row: a reservation id to drop,
(lease id, USD, tokens) to take off a lease, or a ``Beyond`` to hand back once the row is written."""


def lease_size(budget: Budget, used_usd: float, used_tokens: int, usd: float, tokens: int) -> tuple[float, int] | None:
    """The (USD, tokens) a fresh lease of ``budget`` holds beyond this call's estimate, given what the fleet has used;
    None when it would be too small to be worth one (near the limit) or the budget limits calls (a lease holds money
    and tokens, not calls)."""
    if budget.limit_requests is not None:
        return None
    lease_usd = 0.0 if budget.limit_usd is None else (budget.limit_usd - used_usd - usd) * LEASE_FRACTION
    lease_tokens = 0 if budget.limit_tokens is None else \
        int((budget.limit_tokens - used_tokens - tokens) * LEASE_FRACTION)
    if (budget.limit_usd is not None and lease_usd < LEASE_MIN_CALLS * usd) or (
            budget.limit_tokens is not None and lease_tokens < LEASE_MIN_CALLS * max(tokens, 1)):
        return None
    return lease_usd, lease_tokens


class LeaseBook:
    """Budget name -> the lease its calls are admitted from now, the least recently used first (so finding the idle
    ones reads only them, however many principals hold leases)."""

    def __init__(self) -> None:
        self._leases: OrderedDict[str, Lease] = OrderedDict()
        self._lock = threading.Lock()
        self._unwritten: dict[str, list[float]] = {}
        """By budget: (USD, tokens) ended leased calls cost past their estimates, their rows still queued."""

    def __bool__(self) -> bool:
        return bool(self._leases)

    def take(self, budgets: Sequence[Budget], usd: float, tokens: int) -> tuple[Take, ...] | None:
        """Take a call's estimate from each budget's lease when every one has room; else None (nothing taken)."""
        with self._lock:
            leases = [self._leases.get(b.name) for b in budgets]
            if not all(lease is not None and lease.fits(b, usd, tokens) for lease, b in zip(leases, budgets,
                                                                                              strict=True)):
                return None
            mono = time.monotonic()
            takes = []
            for lease in leases:
                assert lease is not None
                lease.usd_left -= usd
                lease.tokens_left -= tokens
                lease.in_flight += 1
                lease.last_used = mono
                self._leases.move_to_end(lease.budget)
                takes.append((lease, usd, tokens))
            return tuple(takes)

    def add(self, granted: Iterable[Lease]) -> None:
        with self._lock:
            for lease in granted:
                self._leases[lease.budget] = lease

    def retire(self, names: Iterable[str] | None = None, idle_before: float | None = None) -> list[Lease]:
        """Stop admitting from the leases of ``names``, or those unused since ``idle_before``, or all; returns them
        (what is left of each goes back to the ledger, by the caller)."""
        with self._lock:
            if names is not None:
                retiring = [self._leases[name] for name in names if name in self._leases]
            elif idle_before is None:
                retiring = list(self._leases.values())
            else:
                retiring = []
                for lease in self._leases.values():  # the least recently used first: stop at the first in use
                    if lease.last_used >= idle_before:
                        break
                    retiring.append(lease)
            for lease in retiring:
                del self._leases[lease.budget]
                lease.retired = True
            return retiring

    def holds(self, names: Iterable[str]) -> bool:
        """Whether this process has a lease in any of the budgets ``names``."""
        with self._lock:
            return any(name in self._leases for name in names)

    def has_idle(self, idle_before: float) -> bool:
        """Whether any lease has been unused since ``idle_before`` (the oldest is first)."""
        with self._lock:
            oldest = next(iter(self._leases.values()), None)
            return oldest is not None and oldest.last_used < idle_before

    def beyond(self, takes: Sequence[Take], usd: float, tokens: int) -> Beyond | None:
        """What a call taken from leases cost past the estimates it took, by budget (fees no estimate could know):
        counted by ``unwritten`` until the writer has the call's row (the returned ``Beyond`` rides with it)."""
        found = tuple((lease.budget, usd - taken_usd, tokens - taken_tokens) for lease, taken_usd, taken_tokens in takes
                      if usd > taken_usd or tokens > taken_tokens)
        if not found:
            return None
        with self._lock:
            for name, over_usd, over_tokens in found:
                counted = self._unwritten.setdefault(name, [0.0, 0])
                counted[0] += max(over_usd, 0.0)
                counted[1] += max(over_tokens, 0)
        return Beyond(found, self._written)

    def unwritten(self, name: str) -> tuple[float, int]:
        """(USD, tokens) this process's ended leased calls of budget ``name`` cost past their estimates and the
        ledger does not hold yet: exact admission adds them to what the ledger says."""
        with self._lock:
            counted = self._unwritten.get(name)
            return (counted[0], int(counted[1])) if counted else (0.0, 0)

    def _written(self, beyond: Beyond) -> None:
        """The rows of the calls ``beyond`` counted are in the ledger (or dropped): no longer added."""
        with self._lock:
            for name, over_usd, over_tokens in beyond.charges:
                counted = self._unwritten.get(name)
                if counted is not None:
                    counted[0] = max(counted[0] - max(over_usd, 0.0), 0.0)
                    counted[1] = max(counted[1] - max(over_tokens, 0), 0)
                    if counted[0] <= 1e-15 and not counted[1]:
                        del self._unwritten[name]

    def settle(self, takes: Iterable[Take], usd: float, tokens: int) -> tuple[list[Settlement], list[int]]:
        """A call taken from leases ended costing ``usd``/``tokens``: the settlements its row carries (the unused
        estimate goes back to a live lease; a retired one is charged the whole estimate, its leftovers having gone
        back already), and the ids of retired leases with no call left in flight (no longer renewed)."""
        settlements: list[Settlement] = []
        done: list[int] = []
        with self._lock:
            for lease, taken_usd, taken_tokens in takes:
                lease.in_flight -= 1
                if lease.retired:
                    settlements.append((lease.id, taken_usd, taken_tokens))
                    if not lease.in_flight:
                        done.append(lease.id)
                    current = self._leases.get(lease.budget)
                    if current is not None and (usd > taken_usd or tokens > taken_tokens):
                        current.debt_usd += max(usd - taken_usd, 0.0)
                        current.debt_tokens += max(tokens - taken_tokens, 0)
                else:
                    lease.usd_left += taken_usd - usd
                    lease.tokens_left += taken_tokens - tokens
                    settlements.append((lease.id, usd, tokens))
        return settlements, done
