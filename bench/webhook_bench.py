"""Accepted webhooks/s and latency of ``surveybot serve`` against a bare aiohttp handler, on loopback.

    python bench/webhook_bench.py [--requests 5000] [--concurrency 32] [--warmup 200] [--repeat 3]
                                  [--drain-timeout 60]

Each server runs in its own process on a free 127.0.0.1 port, so the load generator (this process) does
not share a GIL with it:
- baseline: a minimal aiohttp app whose POST handler reads the body and answers 200 JSON, no access log;
- surveybot: ``python -m surveybot serve`` (scheduler, dispatcher, inbox worker, JSON access log written to
  a file) on a fresh SQLite file, with one launched Qualtrics wave (no contacts, so nothing is mailed) and
  ``QUALTRICS_BASE_URL`` pointing at a third process, a stand-in for the Qualtrics API that answers every
  ``GET /API/v3/surveys/{survey}/responses/{response}`` with the documented single-response JSON. The
  webhook handler only writes the inbox row and answers; the worker fetches and records each response in
  the background, in the same process and event loop, as it would in production (the responses carry no
  invitation token, so they are recorded as unmatched and no thank-you is queued).
Load: ``--concurrency`` aiohttp workers in this process POST distinct ``application/x-www-form-urlencoded``
Qualtrics notifications (Topic, Status, SurveyID, ResponseID, CompletedDate, BrandID) over keep-alive
connections to the wave's webhook URL, and the same bodies to the baseline (same path shape). Each run
starts with ``--warmup`` requests that are not counted, then ``--requests`` measured ones; the targets
alternate for ``--repeat`` runs. Latency is measured per request in the client (``perf_counter`` around
POST and reading the answer), so it includes the client's own event-loop delays; only 200 answers count
as accepted. Reported: the best run's accepted/s (every run's rate beside it), p50 and p99 latency (ms)
over all measured requests, the ratio surveybot/bare of the best rates (target >= 0.5) and whether
surveybot's p99 is under 50 ms at 32 concurrent (target). Then the SQLite file is checked to hold exactly
one inbox row per accepted webhook (warm-up included), so the figure is for durable writes, and how many
responses the background worker fetched and recorded during each run and how long it took to record the
rest; the next run starts only when it has (waiting at most ``--drain-timeout`` s), so a backlog from one
run does not take CPU from the next.

All processes share the machine's cores (the count is printed), and the share of a core each used while
measuring is printed too. If the client is near 100 % during the baseline, the bare rate is bounded by
the client, not by aiohttp's server, and the ratio flatters surveybot. The stand-in API takes CPU that a
real, remote Qualtrics would not take from this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import wait_until_healthy
from surveybot import waves
from surveybot.clock import utcnow
from surveybot.db import open_db
from surveybot.platforms.urls import webhook_url
from surveybot.signing import service_secret

SURVEY_ID = "SV_bench"
API_TOKEN = "bench-qualtrics-token"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SERVE = [sys.executable, "-m", "surveybot", "serve"]  # + ["--port", N]

BARE = """
import sys
from aiohttp import web

async def hook(request):
    await request.read()
    return web.json_response({"status": "queued"})

async def healthz(request):
    return web.json_response({"status": "ok"})

app = web.Application()
app.router.add_post("/webhooks/{platform}/{wave}/{secret}", hook)
app.router.add_get("/healthz", healthz)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

# The Qualtrics single-response API: GET /API/v3/surveys/{survey}/responses/{response} with X-API-TOKEN.
STANDIN = """
import sys
from aiohttp import web

TOKEN = sys.argv[2]

async def response(request):
    if request.headers.get("X-API-TOKEN") != TOKEN:
        return web.json_response({"meta": {"httpStatus": "401 - Unauthorized"}}, status=401)
    rid = request.match_info["response"]
    values = {"startDate": "2026-11-25T09:00:00Z", "endDate": "2026-11-25T09:20:00Z", "status": 0,
              "ipAddress": "203.0.113.9", "progress": 100, "duration": 1200, "finished": 1,
              "recordedDate": "2026-11-25T09:20:01.5Z", "_recordId": rid, "locationLatitude": "4.6",
              "locationLongitude": "-74.1", "distributionChannel": "anonymous", "userLanguage": "ES",
              "QID1": 4, "QID2": [1, 3], "QID3_TEXT": "Cooperación con ciudades hermanas", "network": "Metropolis"}
    return web.json_response({"result": {"responseId": rid, "values": values, "labels": {},
                                         "displayedFields": list(values), "displayedValues": {}},
                              "meta": {"requestId": "req-bench", "httpStatus": "200 - OK"}})

async def healthz(request):
    return web.json_response({"status": "ok"})

app = web.Application()
app.router.add_get("/API/v3/surveys/{survey}/responses/{response}", response)
app.router.add_get("/healthz", healthz)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def notifications(tag: str, count: int) -> list[bytes]:
    """``count`` distinct Qualtrics completed-response notifications, form-encoded."""
    prefix = f"{tag}{secrets.token_hex(3)}"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return [
        urlencode(
            {
                "Topic": f"surveyengine.completedResponse.{SURVEY_ID}",
                "Status": "Complete",
                "SurveyID": SURVEY_ID,
                "ResponseID": f"R_{prefix}{i:08d}",
                "CompletedDate": stamp,
                "BrandID": "citydiplomacylab",
            }
        ).encode()
        for i in range(count)
    ]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    base: str
    log: Path

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start(name: str, command: list[str], folder: Path, port: int, env: dict | None = None) -> Server:
    log = folder / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    return Server(name, proc, f"http://127.0.0.1:{port}", log)


async def wait_healthy(server: Server, timeout: float = 30.0) -> None:
    def died() -> str | None:
        if server.proc.poll() is None:
            return None
        return f"{server.name} exited with {server.proc.returncode}:\n{server.tail()}"

    await wait_until_healthy(server.base, died=died, timeout=timeout, pause=0.05)


def stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()  # aiohttp's run_app stops gracefully on SIGTERM
        try:
            server.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=10)


@dataclass
class Run:
    wall: float
    latencies: list[float]
    statuses: Counter
    warm_accepted: int
    client_cpu: float
    server_cpu: dict[str, float] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        return self.statuses[200]

    @property
    def rate(self) -> float:
        return self.accepted / self.wall


async def drive(url: str, warmup: list[bytes], bodies: list[bytes], concurrency: int, watched: list[Server]) -> Run:
    """POST ``warmup`` then ``bodies`` to ``url`` from ``concurrency`` workers; time the second part."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def worker(queue, latencies: list[float] | None, statuses: Counter) -> None:
            for body in queue:  # one iterator shared by all workers
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=FORM) as response:
                        await response.read()
                        status = response.status
                except (TimeoutError, aiohttp.ClientError) as exc:
                    status = exc.__class__.__name__
                if latencies is not None:
                    latencies.append(time.perf_counter() - t0)
                statuses[status] += 1

        warm = Counter()
        queue = iter(warmup)
        await asyncio.gather(*(worker(queue, None, warm) for _ in range(concurrency)))
        latencies: list[float] = []
        statuses: Counter = Counter()
        queue = iter(bodies)
        cpu0 = {s.name: cpu_seconds(s.proc.pid) for s in watched}
        client0 = time.process_time()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(queue, latencies, statuses) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
        client = time.process_time() - client0
        used = {s.name: cpu_seconds(s.proc.pid) - cpu0[s.name] for s in watched}
    return Run(wall, latencies, statuses, warm[200], client, used)


def prepare(folder: Path, base_url: str) -> tuple[Path, str]:
    """A fresh database with one launched Qualtrics wave; returns its path and the wave's webhook URL."""
    db_path = folder / "surveybot.db"
    db = open_db(db_path)
    spec = waves.WaveSpec(
        slug="bench",
        title="City diplomacy 2026",
        platform="qualtrics",
        survey_id=SURVEY_ID,
        survey_url=f"https://lab.qualtrics.com/jfe/form/{SURVEY_ID}",
    )
    waves.create_wave(db, spec, utcnow())
    wave = waves.launch(db, "bench", utcnow())
    url = webhook_url(base_url, service_secret(db, None), wave)
    db.close()
    return db_path, url


def inbox_states(db_path: Path) -> Counter:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return Counter(dict(conn.execute("SELECT state, count(*) FROM webhook_inbox GROUP BY state").fetchall()))
    finally:
        conn.close()


async def drain(db_path: Path, timeout: float) -> float | None:
    """Seconds until no inbox row is pending (None: some still are after ``timeout``)."""
    t0 = time.monotonic()
    while inbox_states(db_path)["pending"]:
        if time.monotonic() - t0 > timeout:
            return None
        await asyncio.sleep(0.1)
    return time.monotonic() - t0


def server_env(folder: Path, db_path: Path, base_url: str, api_url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SURVEYBOT_", "QUALTRICS_", "SURVEYMONKEY_"))}
    env.update(
        {
            "SURVEYBOT_DB": str(db_path),
            "SURVEYBOT_MAIL_URL": f"maildir://{folder / 'mail'}",
            "SURVEYBOT_BASE_URL": base_url,
            "SURVEYBOT_FROM": "City Diplomacy Lab <lab@example.org>",
            "QUALTRICS_BASE_URL": api_url,
            "QUALTRICS_API_TOKEN": API_TOKEN,
        }
    )
    return env


@dataclass
class Target:
    """The measured runs of one target: best rate, latencies and CPU over all of them."""

    runs: list[Run] = field(default_factory=list)

    @property
    def best(self) -> Run:
        return max(self.runs, key=lambda r: r.rate)

    def percentile(self, p: float) -> float:
        latencies = [x for run in self.runs for x in run.latencies]
        return statistics.quantiles(latencies, n=1000, method="inclusive")[round(p * 10) - 1] * 1000

    def cpu(self, name: str | None = None) -> float:
        """Share of one core used by the process ``name`` (None: the client) over all measured runs."""
        used = sum(r.client_cpu if name is None else r.server_cpu[name] for r in self.runs)
        return used / sum(r.wall for r in self.runs)

    def cpu_per_request(self, name: str) -> float:
        return sum(r.server_cpu[name] for r in self.runs) / max(sum(r.accepted for r in self.runs), 1)

    def line(self, label: str) -> str:
        best = self.best
        spread = ", ".join(f"{r.rate:,.0f}" for r in self.runs)
        refused = Counter()
        for run in self.runs:
            refused.update({k: v for k, v in run.statuses.items() if k != 200})
        return (
            f"{label} {best.rate:8,.0f} accepted/s ({best.accepted:,} in {best.wall:.2f} s; runs: {spread}), "
            f"p50 {self.percentile(50):5.1f} ms, p99 {self.percentile(99):5.1f} ms"
            + (f" (not accepted: {dict(refused)})" if refused else "")
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="measured requests per target and run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=200, help="requests before each measured run")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per target, alternated")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=60.0,
        help="seconds to wait after each surveybot run for the inbox worker to fetch the rest",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    args = parser.parse_args()
    if (
        not 1 <= args.requests <= 1_000_000
        or not 1 <= args.concurrency <= 1024
        or not 0 <= args.warmup <= 100_000
        or not 1 <= args.repeat <= 20
    ):
        parser.error("--requests 1..1,000,000, --concurrency 1..1024, --warmup 0..100,000, --repeat 1..20")

    servers: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as tmp:
        folder = Path(tmp)
        try:
            bare_port, api_port, our_port = free_port(), free_port(), free_port()
            ours_base = f"http://127.0.0.1:{our_port}"
            db_path, url = prepare(folder, ours_base)
            bare = start("bare", [sys.executable, "-c", BARE, str(bare_port)], folder, bare_port)
            servers.append(bare)
            api = start(
                "qualtrics-standin", [sys.executable, "-c", STANDIN, str(api_port), API_TOKEN], folder, api_port
            )
            servers.append(api)
            ours = start(
                "surveybot",
                [*SERVE, "--port", str(our_port)],
                folder,
                our_port,
                server_env(folder, db_path, ours_base, api.base),
            )
            servers.append(ours)
            for server in servers:
                await wait_healthy(server)

            bare_url = bare.base + url[len(ours_base) :]
            base, mine = Target(), Target()
            at_end, drains = [], []
            for n in range(args.repeat):
                warm_bodies, bodies = notifications(f"W{n}", args.warmup), notifications(f"M{n}", args.requests)
                base.runs.append(await drive(bare_url, warm_bodies, bodies, args.concurrency, [bare]))
                before = inbox_states(db_path)["done"]
                mine.runs.append(await drive(url, warm_bodies, bodies, args.concurrency, [ours, api]))
                at_end.append(inbox_states(db_path)["done"] - before)
                # The worker goes on fetching after the load; let it finish so the next run has the machine.
                drains.append(await drain(db_path, args.drain_timeout))
            states = inbox_states(db_path)

            print(
                f"webhooks: {args.requests:,} per run at concurrency {args.concurrency} (after {args.warmup:,} "
                f"warm-up), best of {args.repeat} alternated runs; loopback, keep-alive; {os.cpu_count()} CPUs"
            )
            print(base.line("baseline, bare aiohttp handler (200 JSON):"))
            print(mine.line("surveybot serve, durable inbox write:     "))
            ratio = mine.best.rate / base.best.rate
            p99 = mine.percentile(99)
            print(
                f"ratio surveybot/bare: {ratio:.2f} (target >= 0.5: {'met' if ratio >= 0.5 else 'MISSED'}); "
                f"surveybot p99 {p99:.1f} ms at {args.concurrency} concurrent "
                f"(target < 50 ms: {'met' if p99 < 50 else 'MISSED'})"
            )
            print(
                f"cpu, share of a core while measuring: baseline: client {base.cpu():.0%}, server "
                f"{base.cpu('bare'):.0%}; surveybot: client {mine.cpu():.0%}, server {mine.cpu('surveybot'):.0%}, "
                f"API stand-in {mine.cpu('qualtrics-standin'):.0%}. Server CPU per accepted webhook: surveybot "
                f"{mine.cpu_per_request('surveybot') * 1e6:.0f} µs, bare {base.cpu_per_request('bare') * 1e6:.0f} µs"
            )

            expected = sum(r.accepted + r.warm_accepted for r in mine.runs)
            rows = sum(states.values())
            print(
                f"inbox: {rows:,} rows for {expected:,} accepted webhooks (warm-up included): "
                f"{'one each' if rows == expected else 'MISMATCH'}; {states['done']:,} fetched and recorded, "
                f"{states['pending']:,} pending, {states['failed']:,} failed"
            )
            recorded = ", ".join(f"{done:,} of {r.accepted + r.warm_accepted:,}" for done, r in zip(at_end, mine.runs))
            drained = ", ".join("not within the timeout" if d is None else f"{d:.1f} s" for d in drains)
            print(
                f"background fetch: recorded while each run lasted: {recorded}; the rest recorded in {drained} after it"
            )
            if args.json:
                figures = {
                    "requests": args.requests,
                    "concurrency": args.concurrency,
                    "repeat": args.repeat,
                    "baseline_per_s": base.best.rate,
                    "surveybot_per_s": mine.best.rate,
                    "baseline_runs_per_s": [r.rate for r in base.runs],
                    "surveybot_runs_per_s": [r.rate for r in mine.runs],
                    "baseline_p50_ms": base.percentile(50),
                    "baseline_p99_ms": base.percentile(99),
                    "surveybot_p50_ms": mine.percentile(50),
                    "surveybot_p99_ms": p99,
                    "ratio": ratio,
                    "target_ratio_min": 0.5,
                    "target_p99_ms_max": 50,
                    "inbox_rows": rows,
                    "accepted": expected,
                    "inbox_states": dict(states),
                    "cpu_server_us_per_webhook": mine.cpu_per_request("surveybot") * 1e6,
                    "cpu_bare_us_per_webhook": base.cpu_per_request("bare") * 1e6,
                }
                args.json.write_text(json.dumps(figures, indent=2) + "\n")
            if rows != expected:
                raise SystemExit(f"inbox holds {rows} rows for {expected} accepted webhooks")
        finally:
            for server in reversed(servers):  # surveybot first, while the stand-in still answers
                stop(server)


if __name__ == "__main__":
    asyncio.run(main())
