"""Limits on failed sign-ins, counted per client address and per token tried.

    SignInGuard ── two Counters: by client (an IPv6 client by its /64, which one host usually holds whole)
                   and by the characters after ``sbt_`` of the token tried (one token sprayed from many
                   addresses is limited too)
    Counter     ── failures in a fixed window per key; at most ``capacity`` keys (the oldest are forgotten),
                   so an attacker rotating addresses cannot grow it without bound

A key that reached its limit is refused — even with a correct token — until its window has passed: answering
a right guess differently from a wrong one would turn the limit into an oracle. Tokens are never kept: the
token key is a hash of what was tried. ``client_address`` believes ``X-Forwarded-For`` only from a trusted
proxy (``SURVEYBOT_TRUSTED_PROXIES``).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from surveybot.tokens import PREFIX

WINDOW_S = 15 * 60.0
PER_CLIENT = 10  # failed sign-ins from one client address in a window
PER_TOKEN = 10  # failed sign-ins with one token, from anywhere, in a window
CAPACITY = 10_000  # keys remembered per counter (about 1 MB)

Proxies = Sequence[IPv4Network | IPv6Network]


@dataclass
class _Failures:
    count: int
    since: float


class Counter:
    """Failures per key in a fixed window that starts at the key's first failure."""

    def __init__(
        self,
        limit: int,
        window: float = WINDOW_S,
        capacity: int = CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window, self.capacity, self.clock = limit, window, capacity, clock
        self._keys: OrderedDict[str, _Failures] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may try again (0: it may now)."""
        entry = self._keys.get(key)
        if entry is None:
            return 0.0
        left = entry.since + self.window - self.clock()
        if left <= 0:
            del self._keys[key]
            return 0.0
        return left if entry.count >= self.limit else 0.0

    def fail(self, key: str) -> None:
        now = self.clock()
        entry = self._keys.get(key)
        if entry is None or entry.since + self.window <= now:
            entry = self._keys[key] = _Failures(0, now)
        entry.count += 1
        self._keys.move_to_end(key)
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)  # the least recently failing key


class SignInGuard:
    def __init__(
        self,
        per_client: int = PER_CLIENT,
        per_token: int = PER_TOKEN,
        window: float = WINDOW_S,
        capacity: int = CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clients = Counter(per_client, window, capacity, clock)
        self.tokens = Counter(per_token, window, capacity, clock)

    def wait(self, client: str, token: str) -> float:
        """Seconds before a sign-in from ``client`` with ``token`` is looked at (0: now)."""
        return max(self.clients.wait(client_key(client)), self.tokens.wait(token_key(token)))

    def failed(self, client: str, token: str) -> None:
        self.clients.fail(client_key(client))
        self.tokens.fail(token_key(token))


def client_key(address: str) -> str:
    """An IPv6 client counts by its /64; anything else by its address as given."""
    try:
        parsed = ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(parsed, IPv6Address) and parsed.ipv4_mapped is None:
        return str(IPv6Network((parsed, 64), strict=False))
    return str(parsed.ipv4_mapped if isinstance(parsed, IPv6Address) else parsed)


def token_key(token: str) -> str:
    """What was tried after ``sbt_`` (with or without it), hashed: the same guess counts once wherever it
    comes from, and no token is held in memory."""
    tried = token.strip()
    tried = tried[len(PREFIX) :] if tried.startswith(PREFIX) else tried
    return hashlib.sha256(tried.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def client_address(peer: str | None, forwarded_for: str, proxies: Proxies) -> str:
    """The client's address: the direct peer, or — only when that peer is a trusted proxy — the nearest
    address in ``X-Forwarded-For`` that is not a trusted proxy (read from the right: each proxy appends the
    address it saw, and anything to the left of a stranger's entry may be made up)."""
    address = peer or ""
    if not proxies or not _trusted(address, proxies):
        return address
    for entry in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        if _parse(entry) is None:
            break  # a malformed hop: believe nothing further left
        address = entry
        if not _trusted(entry, proxies):
            break
    return address


def _parse(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text)
    except ValueError:
        return None


def _trusted(address: str, proxies: Proxies) -> bool:
    parsed = _parse(address)
    if isinstance(parsed, IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return parsed is not None and any(parsed.version == net.version and parsed in net for net in proxies)
