"""Soak: a big wave sending while webhooks stream in and a dashboard stays open, checked for leaks and losses.

    python -m bench.soak [--contacts 20000] [--webhooks 10000] [--minutes 5] [--send-rate 200] [--json FILE]

``python -m surveybot serve`` runs in its own process on a fresh SQLite file holding ``--contacts`` contacts
and one launched wave on the signed generic platform (its invitations queued, as ``wave launch`` leaves
them); it sends through a real SMTP server (aiosmtpd, a third process) that keeps each ``Message-ID`` it
receives. Meanwhile this process
- posts ``--webhooks`` signed webhooks (Standard Webhooks headers) spread evenly over ``--minutes``: 80 %
  complete and 20 % partial responses of distinct recipients (without a token once every recipient has one),
  and every tenth one a delivery sent again, as a platform retries; a refused one (not 200) is sent again
  up to five times, backing off, as a platform would;
- keeps the wave's page open as a coordinator: signs in on ``/login``, loads ``/waves/SLUG``, follows its
  live refresh (the page's ``data-poll`` interval, with the header ``live.js`` sends) and loads the page
  again every ``--reload`` seconds;
- samples the serve process's resident memory every second.
After the webhooks it waits (at most ``--drain-timeout`` s) until nothing is left to send, then checks
that nothing was lost: every accepted webhook's response recorded exactly once (a complete response or a
partial's audit line), every outbox row sent and received by the SMTP server exactly once, nothing
failed. Printed: memory at start, after and at its peak, webhook latency p50/p99 (measured here, around
each POST), messages sent and their rate, the dashboard's request times and errors. The exit status is 1
if anything was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import free_port, machine, memory_mb, percentile, progress, wait_until_healthy, write_json
from surveybot import plan, tokens, waves
from surveybot.clock import iso, utcnow
from surveybot.db import open_db, transaction
from surveybot.platforms import signed
from surveybot.platforms.urls import webhook_signing_secret, webhook_url
from surveybot.recipients import survey_token
from surveybot.signing import service_secret

SLUG = "soak"
ATTEMPTS = 5  # deliveries of one webhook before it counts as given up
IN_FLIGHT = 256  # webhooks awaiting an answer at once, at most

# A real SMTP server that counts the Message-IDs it receives and, when its stdin closes, prints them as JSON.
SINK = r"""
import json, re, sys, threading
from collections import Counter
from aiosmtpd.controller import Controller

MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)

class Sink:
    def __init__(self):
        self.ids, self.lock = Counter(), threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        content = envelope.content
        head = content[: content.find(b"\r\n\r\n")] if b"\r\n\r\n" in content else content
        found = MESSAGE_ID.search(head)
        with self.lock:
            self.ids[found.group(1).decode() if found else ""] += 1
        return "250 OK"

sink = Sink()
controller = Controller(sink, hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
with sink.lock:
    print(json.dumps(dict(sink.ids)), flush=True)
"""


@dataclass(frozen=True)
class Delivery:
    message_id: str
    response_id: str
    kind: str  # complete, partial, unmatched
    body: bytes
    repeat: bool = False


@dataclass
class Hooks:
    sent: int = 0
    accepted: set[str] = field(default_factory=set)  # response ids answered 200
    repeats_accepted: int = 0
    latencies: list[float] = field(default_factory=list)  # ms, every attempt
    refused: Counter[str] = field(default_factory=Counter)  # status or error → attempts
    given_up: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)  # what serve answered: complete, partial, repeat…


@dataclass
class Dashboard:
    pages: list[float] = field(default_factory=list)  # ms, full page loads
    live: list[float] = field(default_factory=list)  # ms, live refreshes
    errors: Counter[str] = field(default_factory=Counter)
    changes: int = 0  # refreshes whose figures differed from the previous ones
    poll_ms: int = 0


def _fill(db_path: Path, contacts: int) -> None:
    db = open_db(db_path)
    stamp = iso(utcnow())
    with transaction(db):
        db.conn.executemany(
            "INSERT INTO contacts (id, email, name, city, country, region, language, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    cid,
                    f"officer{cid}@city{cid % 3000}.example.org",
                    f"Officer Núñez {cid}",
                    f"City {cid % 3000}",
                    f"Country {cid % 190}",
                    "Latin America",
                    ("en", "es", "")[cid % 3],
                    stamp,
                    stamp,
                )
                for cid in range(1, contacts + 1)
            ),
        )
    db.close()


def prepare(db_path: Path, contacts: int, base_url: str) -> dict[str, Any]:
    """The contacts and a launched wave whose invitations are queued; the webhook URL, its signing secret
    (``whsec_``), a coordinator's token and each contact's survey token."""
    _fill(db_path, contacts)
    db = open_db(db_path)
    now = utcnow()
    spec = waves.WaveSpec(
        slug=SLUG,
        title="City diplomacy 2026",
        platform="signed",
        survey_id="S1",
        survey_url="https://survey.example.org/s1",
        reminders=(timedelta(days=7),),
        close_after=timedelta(days=14),
    )
    waves.create_wave(db, spec, now)
    wave = waves.launch(db, SLUG, now)
    secret = service_secret(db, None)
    plan.run_due(db, secret, now)  # what `serve` would do first: recipients and their invitations
    prepared = {
        "url": webhook_url(base_url, secret, wave),
        "whsec": signed.whsec(webhook_signing_secret(secret, wave)),
        "coordinator": tokens.create(db, "coordinator", None, now)[1],
        "tokens": [survey_token(secret, wave["id"], cid) for cid in range(1, contacts + 1)],
        "wave_id": wave["id"],
    }
    db.close()
    return prepared


def deliveries(count: int, survey_tokens: list[str], seed: int = 2026) -> list[Delivery]:
    """``count`` webhooks: distinct responses (4 complete to 1 partial; a token each while there are
    recipients left), every tenth one a delivery sent again."""
    rng = random.Random(seed)
    plan_: list[Delivery] = []
    distinct: list[Delivery] = []
    for n in range(count):
        if n % 10 == 9 and distinct:
            plan_.append(replace(distinct[rng.randrange(len(distinct))], repeat=True))
            continue
        i = len(distinct)
        token = survey_tokens[i] if i < len(survey_tokens) else None
        finished = i % 5 != 4
        kind = "partial" if not finished else ("complete" if token else "unmatched")
        data: dict[str, Any] = {"response_id": f"R_soak{i:07d}", "progress": 100 if finished else 40}
        if token:
            data["token"] = token
        if finished:
            data["answers"] = {"Q1": "4", "Q2": "Cooperación con ciudades hermanas"}
        body = json.dumps({"type": f"response.{'completed' if finished else 'partial'}", "data": data}).encode()
        distinct.append(Delivery(f"msg_soak_{i}", data["response_id"], kind, body))
        plan_.append(distinct[-1])
    return plan_


async def deliver(session: aiohttp.ClientSession, url: str, whsec: str, item: Delivery, hooks: Hooks) -> None:
    delay = 0.5
    for _ in range(ATTEMPTS):
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": item.message_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": signed.sign(whsec, item.message_id, stamp, item.body),
        }
        started = time.perf_counter()
        status: int | str
        answer: dict[str, Any] = {}
        try:
            async with session.post(url, data=item.body, headers=headers) as response:
                status = response.status
                if status == 200:
                    answer = await response.json()
                else:
                    await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            status = exc.__class__.__name__
        hooks.latencies.append((time.perf_counter() - started) * 1000)
        if status == 200:
            hooks.accepted.add(item.response_id)
            hooks.repeats_accepted += item.repeat
            hooks.outcomes[str(answer.get("status"))] += 1
            return
        hooks.refused[str(status)] += 1
        await asyncio.sleep(delay)
        delay *= 2
    hooks.given_up.append(item.response_id)


async def post_webhooks(url: str, whsec: str, plan_: list[Delivery], seconds: float, hooks: Hooks) -> None:
    """Each webhook at its own moment, evenly over ``seconds``, whatever the answers to earlier ones take."""
    gap = seconds / max(len(plan_), 1)
    limit = asyncio.Semaphore(IN_FLIGHT)
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def one(item: Delivery) -> None:
            try:
                await deliver(session, url, whsec, item, hooks)
            finally:
                limit.release()

        start = time.monotonic()
        async with asyncio.TaskGroup() as group:
            for n, item in enumerate(plan_):
                wait = start + n * gap - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                await limit.acquire()
                group.create_task(one(item))
                hooks.sent += 1


_FIGURES = re.compile(rb'<section id="funnel".*?</section>', re.DOTALL)
_POLL = re.compile(rb'data-poll="([0-9]+)"')


async def keep_dashboard_open(base: str, token: str, reload_every: float, stop: asyncio.Event, seen: Dashboard) -> None:
    """A coordinator's browser on the wave's page: signed in once, live refresh as ``live.js`` does it."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.post(f"{base}/login", data={"token": token}, allow_redirects=False) as answer:
            if answer.status != 303:
                seen.errors[f"login {answer.status}"] += 1
                return
        reload_at, figures, poll = 0.0, b"", 2.0
        while not stop.is_set():
            live = time.monotonic() < reload_at
            headers = {"X-Requested-With": "surveybot-live"} if live else {}
            started = time.perf_counter()
            try:
                async with session.get(f"{base}/waves/{SLUG}", headers=headers, allow_redirects=False) as answer:
                    body, status = await answer.read(), answer.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                body, status = b"", 0
                seen.errors[exc.__class__.__name__] += 1
            spent = (time.perf_counter() - started) * 1000
            if status == 200:
                (seen.live if live else seen.pages).append(spent)
                if not live:
                    reload_at = time.monotonic() + reload_every
                    found = _POLL.search(body)
                    poll = int(found.group(1)) / 1000 if found else poll
                    seen.poll_ms = round(poll * 1000)
                now = _FIGURES.search(body)
                if now is not None and figures and now.group(0) != figures:
                    seen.changes += 1
                figures = now.group(0) if now is not None else figures
            elif status:
                seen.errors[str(status)] += 1
            try:
                await asyncio.wait_for(stop.wait(), poll)
            except TimeoutError:
                pass


def _read(db_path: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def outbox_states(db_path: Path) -> Counter[str]:
    return Counter({state: n for state, n in _read(db_path, "SELECT state, count(*) FROM outbox GROUP BY state")})


async def sample_memory(pid: int, stop: asyncio.Event, series: list[tuple[float, float]]) -> None:
    start = time.monotonic()
    while not stop.is_set():
        try:
            series.append((time.monotonic() - start, memory_mb(pid)[0]))
        except OSError:
            return
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass


async def report_progress(db_path: Path, pid: int, hooks: Hooks, stop: asyncio.Event, every: float) -> None:
    while True:
        try:
            await asyncio.wait_for(stop.wait(), every)
            return
        except TimeoutError:
            pass
        states = outbox_states(db_path)
        progress(
            f"soak: {hooks.sent:,} webhooks posted, {len(hooks.accepted):,} responses accepted; "
            f"{states['sent']:,} messages sent, {states['queued'] + states['sending']:,} to send; "
            f"serve RSS {memory_mb(pid)[0]:.0f} MB"
        )


async def wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    def died() -> str | None:
        if proc.poll() is None:
            return None
        return f"serve exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}"

    try:
        await wait_until_healthy(base, died=died, timeout=timeout)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None


async def drain(db_path: Path, timeout: float) -> float | None:
    """Seconds until no outbox row is left to send (None: some still are after ``timeout``)."""
    started = time.monotonic()
    while True:
        states = outbox_states(db_path)
        if not states["queued"] and not states["sending"]:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        await asyncio.sleep(0.25)


def check(db_path: Path, wave_id: int, hooks: Hooks, received: Counter[str]) -> dict[str, Any]:
    """Lost or doubled: accepted webhooks against recorded responses, outbox rows against the SMTP server."""
    recorded: Counter[str] = Counter()
    for table in ("responses", "partial_audit"):
        recorded.update(
            rid for (rid,) in _read(db_path, f"SELECT response_id FROM {table} WHERE wave_id = ?", (wave_id,))
        )
    sent = {mid for (mid,) in _read(db_path, "SELECT message_id FROM outbox WHERE state = 'sent'")}
    states = outbox_states(db_path)
    return {
        "webhooks_not_recorded": sum(1 for rid in hooks.accepted if not recorded[rid]),
        "webhooks_recorded_twice": sum(1 for rid in hooks.accepted if recorded[rid] > 1),
        "webhooks_given_up": len(hooks.given_up),
        "messages_not_sent": states["queued"] + states["sending"],
        "messages_failed": states["failed"],
        "messages_not_received": len(sent - set(received)),
        "messages_received_twice": sum(1 for n in received.values() if n > 1),
        "messages_received_unknown": len(set(received) - sent),
    }


def serve_env(folder: Path, db_path: Path, base: str, smtp_port: int, send_rate: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SURVEYBOT_", "QUALTRICS_", "SURVEYMONKEY_"))}
    env.update(
        SURVEYBOT_DB=str(db_path),
        SURVEYBOT_MAIL_URL=f"smtp://127.0.0.1:{smtp_port}",
        SURVEYBOT_BASE_URL=base,
        SURVEYBOT_FROM="City Diplomacy Lab <lab@example.org>",
        SURVEYBOT_SEND_RATE=f"{send_rate:g}",
    )
    return env


async def soak(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    db_path, port, smtp_port = folder / "surveybot.db", free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    progress(f"soak: preparing {args.contacts:,} contacts and a launched wave")
    prepared = prepare(db_path, args.contacts, base)
    plan_ = deliveries(args.webhooks, prepared["tokens"])
    queued_at_start = outbox_states(db_path)["queued"]
    sink = subprocess.Popen(
        [sys.executable, "-c", SINK, str(smtp_port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=folder
    )
    assert sink.stdin is not None and sink.stdout is not None
    log = folder / "serve.log"
    server: subprocess.Popen[bytes] | None = None
    try:
        if sink.stdout.readline().strip() != b"ready":
            raise SystemExit("the SMTP sink did not start")
        with open(log, "wb") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "surveybot", "serve", "--port", str(port)],
                cwd=folder,
                env=serve_env(folder, db_path, base, smtp_port, args.send_rate),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        await wait_healthy(base, server, log)
        rss_start = memory_mb(server.pid)[0]
        progress(f"soak: serve up (RSS {rss_start:.0f} MB); {len(plan_):,} webhooks over {args.minutes:g} min")
        hooks, seen = Hooks(), Dashboard()
        series: list[tuple[float, float]] = []
        stop_watch, stop_progress = asyncio.Event(), asyncio.Event()
        started = time.monotonic()
        watchers = [
            asyncio.create_task(keep_dashboard_open(base, prepared["coordinator"], args.reload, stop_watch, seen)),
            asyncio.create_task(sample_memory(server.pid, stop_watch, series)),
            asyncio.create_task(report_progress(db_path, server.pid, hooks, stop_progress, args.progress_every)),
        ]
        try:
            await post_webhooks(prepared["url"], prepared["whsec"], plan_, args.minutes * 60, hooks)
            webhook_seconds = time.monotonic() - started
            progress(f"soak: webhooks done in {webhook_seconds:.1f} s; waiting for the outbox to empty")
            drained = await drain(db_path, args.drain_timeout)
        finally:
            stop_watch.set()
            stop_progress.set()
            await asyncio.gather(*watchers)
        total_seconds = time.monotonic() - started
        rss_after, rss_peak = memory_mb(server.pid)
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=40)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
        sink.stdin.close()
        received: Counter[str] = Counter(json.loads(sink.stdout.readline() or b"{}"))
        sink.wait(timeout=30)
        sink.stdout.close()
    problems = check(db_path, prepared["wave_id"], hooks, received)
    states = outbox_states(db_path)
    sent = sum(received.values())
    return {
        "machine": machine(),
        "contacts": args.contacts,
        "webhooks": args.webhooks,
        "minutes": args.minutes,
        "send_rate": args.send_rate,
        "memory_mb": {
            "start": rss_start,
            "after": rss_after,
            "peak": rss_peak,
            "growth": rss_after - rss_start,
            "series": [(round(t, 1), round(rss, 1)) for t, rss in series[:: max(1, len(series) // 120)]],
        },
        "webhook": {
            "posted": hooks.sent,
            "distinct_accepted": len(hooks.accepted),
            "repeats_accepted": hooks.repeats_accepted,
            "answers": dict(hooks.outcomes),
            "refused_attempts": dict(hooks.refused),
            "p50_ms": percentile(hooks.latencies, 50),
            "p99_ms": percentile(hooks.latencies, 99),
            "max_ms": max(hooks.latencies, default=0.0),
            "seconds": webhook_seconds,
        },
        "mail": {
            "queued_at_start": queued_at_start,
            "outbox": dict(states),
            "received_by_smtp": sent,
            "per_second": sent / total_seconds if total_seconds else 0.0,
            "drained_after_webhooks_s": drained,
        },
        "dashboard": {
            "poll_ms": seen.poll_ms,
            "page_loads": len(seen.pages),
            "live_refreshes": len(seen.live),
            "figures_changed": seen.changes,
            "p50_ms": percentile(seen.pages + seen.live, 50),
            "p99_ms": percentile(seen.pages + seen.live, 99),
            "errors": dict(seen.errors),
        },
        "seconds": total_seconds,
        "problems": problems,
        "nothing_lost": not any(problems.values()),
    }


def summary(result: dict[str, Any]) -> list[str]:
    mem, hook, mail, dash = result["memory_mb"], result["webhook"], result["mail"], result["dashboard"]
    lost = {k: v for k, v in result["problems"].items() if v}
    drained = mail["drained_after_webhooks_s"]
    return [
        f"soak: {result['contacts']:,} contacts, {result['webhooks']:,} webhooks over {result['minutes']:g} min, "
        f"{result['seconds']:.0f} s in all; {result['machine']['cpus']} CPUs, "
        f"load average {result['machine']['load_average'][0]}",
        f"serve memory (RSS): start {mem['start']:.0f} MB, after {mem['after']:.0f} MB, peak {mem['peak']:.0f} MB "
        f"(growth {mem['growth']:+.0f} MB)",
        f"webhooks: {hook['distinct_accepted']:,} responses accepted ({hook['repeats_accepted']:,} repeated "
        f"deliveries too), p50 {hook['p50_ms']:.1f} ms, p99 {hook['p99_ms']:.1f} ms, max {hook['max_ms']:.0f} ms; "
        f"refused attempts: {hook['refused_attempts'] or 'none'}",
        f"mail: {mail['received_by_smtp']:,} messages received by the SMTP server "
        f"({mail['per_second']:.0f}/s over the soak; outbox {mail['outbox']}); "
        + ("outbox empty " + f"{drained:.0f} s after the webhooks" if drained is not None else "outbox NOT empty"),
        f"dashboard: {dash['page_loads']} page loads and {dash['live_refreshes']} live refreshes every "
        f"{dash['poll_ms']} ms (figures changed {dash['figures_changed']} times), p50 {dash['p50_ms']:.0f} ms, "
        f"p99 {dash['p99_ms']:.0f} ms, errors: {dash['errors'] or 'none'}",
        "nothing lost: every accepted webhook recorded once, every queued message sent once"
        if result["nothing_lost"]
        else f"LOST OR DOUBLED: {lost}",
    ]


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(prog="python -m bench.soak", description=(__doc__ or "").splitlines()[0])
    found.add_argument("--contacts", type=int, default=20_000)
    found.add_argument("--webhooks", type=int, default=10_000)
    found.add_argument("--minutes", type=float, default=5.0, help="how long the webhooks take to post")
    found.add_argument("--send-rate", type=float, default=200.0, help="SURVEYBOT_SEND_RATE for serve")
    found.add_argument("--reload", type=float, default=30.0, help="seconds between full loads of the page")
    found.add_argument("--drain-timeout", type=float, default=600.0, help="seconds to wait for the outbox")
    found.add_argument("--progress-every", type=float, default=10.0, help="seconds between progress lines")
    found.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    found.add_argument("--keep", action="store_true", help="keep the working folder (its path is printed)")
    return found


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.contacts < 1 or args.webhooks < 1 or args.minutes <= 0 or args.send_rate <= 0:
        parser().error("--contacts and --webhooks must be at least 1, --minutes and --send-rate above 0")
    folder = Path(tempfile.mkdtemp(prefix="surveybot-soak-"))
    try:
        result = asyncio.run(soak(args, folder))
    finally:
        if args.keep:
            progress(f"soak: working folder kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    for line in summary(result):
        print(line, flush=True)
    if args.json:
        write_json(args.json, result)
    return 0 if result["nothing_lost"] else 1


if __name__ == "__main__":
    sys.exit(main())
