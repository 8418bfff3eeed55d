"""Failed authentications per source address: a token bucket each, in memory.

Every failure (a signature that does not verify, an unknown key or instance, a registration refused) spends
a token of its address's bucket; the bucket holds `per_minute` tokens and refills at that rate. An address
whose bucket is empty is refused at once (the face's own Throttling error) before anything is checked, so
it costs neither a signature check nor a database read, and never the write lock; requests that succeed
spend nothing. IPv6 addresses are counted by /64, the block one host is given.

Addresses in `exempt` (by default loopback, as fail2ban's `ignoreip`) are never refused: behind a proxy on
the same host every client is 127.0.0.1, and one attacker would lock every client out.

Both the failures and the refusals are logged at most once per interval, with counts and the addresses
seen most, on the `cloudassist.edge` logger at WARNING: a line an operator can alert on.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Final

from cloudassist.edge.tally import Tally

log = logging.getLogger("cloudassist.edge")

#: Addresses remembered at once (~100 bytes each); the oldest are forgotten first, which only forgives them.
MAX_ADDRESSES: Final = 100_000


class Throttle:
    """The failure budgets of one face (`name`); `per_minute` 0 turns it off."""

    def __init__(
        self,
        name: str,
        per_minute: int,
        exempt: Iterable[str] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 10.0,
    ) -> None:
        self.exempt = tuple(ipaddress.ip_network(net, strict=False) for net in exempt)
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, as of)
        self.failures = Tally(log, f"{name} face: authentication failures", interval=interval)
        self.refusals = Tally(
            log, f"{name} face: requests refused after too many authentication failures", interval=interval
        )

    def retry_after(self, address: str) -> float:
        """0 when `address` may try; otherwise the seconds until it may (the refusal is counted)."""
        if not self._buckets:
            return 0.0
        key = _key(address)
        state = self._buckets.get(key)
        if state is None:
            return 0.0
        tokens = self._tokens(state)
        if tokens >= 1.0:
            return 0.0
        self.refusals.note(key)
        return (1.0 - tokens) / self.rate

    def failed(self, address: str) -> None:
        """`address` failed to authenticate: spend one of its tokens."""
        key = _key(address)
        self.failures.note(key)
        if not self.capacity or self._exempt(address):
            return
        state = self._buckets.pop(key, None)
        tokens = self.capacity if state is None else self._tokens(state)
        self._buckets[key] = (max(tokens - 1.0, 0.0), self.clock())
        if len(self._buckets) > MAX_ADDRESSES:
            self._buckets.popitem(last=False)

    def _exempt(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.exempt)

    def _tokens(self, state: tuple[float, float]) -> float:
        tokens, since = state
        return min(self.capacity, tokens + (self.clock() - since) * self.rate)


def _key(address: str) -> str:
    """An IPv4 address as it is; an IPv6 address by its /64 (an IPv4-mapped one as its IPv4)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
