"""Helpers the benchmark runner and the soak share: ports, process memory, percentiles, progress, JSON files."""

from __future__ import annotations

import json
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_STARTED = time.monotonic()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def progress(message: str) -> None:
    """One progress line on stderr (stdout is kept for the results)."""
    print(f"[{time.monotonic() - _STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident set size, its high-water mark) of a running process in MB, from Linux's /proc."""
    found = {"VmRSS": 0.0, "VmHWM": 0.0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in found:
            found[key] = int(value.split()[0]) / 1024  # kB
    return found["VmRSS"], found["VmHWM"]


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0..100) of ``values``; 0.0 when there are none."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[max(0, round(p * 10) - 1)]


def machine() -> dict[str, Any]:
    """What the figures were taken on: core count and load average (a shared machine skews them)."""
    one, five, fifteen = os.getloadavg()
    return {"cpus": os.cpu_count(), "load_average": [round(one, 2), round(five, 2), round(fifteen, 2)]}


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


async def wait_until_healthy(
    base: str, *, died: Callable[[], str | None] = lambda: None, timeout: float = 30.0, pause: float = 0.1
) -> None:
    """Return once ``base``/healthz answers 200; ``died()`` says why the server process is gone (None while it
    runs). Raises RuntimeError with that reason, or when ``timeout`` seconds pass."""
    import asyncio

    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if (why := died()) is not None:
                raise RuntimeError(why)
            try:
                async with session.get(f"{base}/healthz") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(pause)
    raise RuntimeError(f"{base} did not answer /healthz within {timeout:.0f} s")
