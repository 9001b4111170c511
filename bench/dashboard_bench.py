"""Time of each dashboard page at 1,000 and at 100,000 contacts, in the same run.

    python bench/dashboard_bench.py [--sizes 1000,100000] [--requests 60] [--every 0.1] [--keep]

For each size a fresh SQLite file is filled (straight SQL, through the real schema) as a wave leaves it after
its field work: N contacts of three networks in 60 countries, one launched wave that invited them all, the
invitation and a reminder sent to each, N/2 complete responses (some from a city that had answered), 5 %
partial audit lines, 2 % bounces, 1 % opt-outs, 50 unmatched responses, 200 interview opt-ins, 100 failed
messages, and each network's upload. Then ``python -m surveybot serve`` runs on it (its own process: the
client here does not share its GIL), a coordinator and a network sign in on ``/login``, and each page is
requested ``--requests`` times, one after the other, ``--every`` seconds apart, so the measurement spans
several refreshes of the figures the pages keep for a moment (as an open dashboard polling every 2 s would):
first "idle" (nothing changes, so the figures are not computed again), then "writes" (another process
records a complete response every second, so they are computed again all the time), then "webhook" (the
response comes through the wave's real signed webhook, so serve also records it in its event loop; how long
that takes is printed, and a page asked for meanwhile waits for it).

Printed per page and size: p50, p95 and max time (ms, measured in this client around GET and reading the
body), the first (cold) request, and p95 at the large size as a ratio to p95 at the small one. Targets:
p95 under 200 ms at 100,000 contacts and under 3x the 1,000-contact p95. Also printed: how long computing
each page's figures takes once, in this process, without anything kept (what a refresh costs the worker
thread; the event loop does not wait for it once a page has been shown).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import wait_until_healthy
from surveybot import tokens, waves
from surveybot.clock import iso, utcnow
from surveybot.db import open_db
from surveybot.platforms import ResponseEvent, signed
from surveybot.platforms.urls import webhook_signing_secret, webhook_url
from surveybot.recipients import survey_token
from surveybot.responses import record
from surveybot.signing import service_secret, token_hash

NETWORKS = ("Metropolis", "Eurocities", "Andes")
REGIONS = ("Europe", "Latin America", "Asia", "Africa", "North America")
SLUG = "bench"
MODES = ("idle", "writes", "webhook")


def fill(path: Path, size: int) -> dict[str, str]:
    """A database as a wave of ``size`` contacts leaves it; returns a coordinator's and a network's token."""
    rng = random.Random(size)
    db = open_db(path)
    secret = service_secret(db, None)
    now = utcnow()
    start = now - timedelta(days=6)
    stamp = iso(start)
    conn = db.conn
    conn.execute("BEGIN")
    for n, network in enumerate(NETWORKS, start=1):
        conn.execute(
            "INSERT INTO uploads (id, network, filename, sha256, source, state, created_at, finished_at, "
            "rows, imported) VALUES (?, ?, ?, '', 'cli', 'done', ?, ?, ?, ?)",
            [n, network, f"{network.lower()}.csv", stamp, stamp, size // 3, size // 3],
        )
    contacts = []
    for cid in range(1, size + 1):
        country = cid % 60
        contacts.append(
            (
                cid,
                f"officer{cid}@city{cid % (size // 2 + 1)}.example.org",
                f"Officer {cid}",
                f"City {cid % (size // 2 + 1)}",
                f"Country {country}",
                REGIONS[country % 5],
                ("en", "es", "")[cid % 3],
                stamp,
                stamp,
            )
        )
    conn.executemany(
        "INSERT INTO contacts (id, email, name, city, country, region, language, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        contacts,
    )
    conn.executemany(
        "INSERT INTO contact_sources (upload_id, row, contact_id, network) VALUES (?, ?, ?, ?)",
        [(cid % 3 + 1, cid + 1, cid, NETWORKS[cid % 3]) for cid in range(1, size + 1)],
    )
    conn.execute("COMMIT")
    waves.create_wave(
        db,
        waves.WaveSpec(
            slug=SLUG,
            title="Bench wave",
            platform="signed",
            survey_id="S",
            survey_url="https://survey.example.org/s",
            timezone="Europe/Madrid",
        ),
        start,
    )
    wave = waves.launch(db, SLUG, start)
    wid = wave["id"]
    conn.execute("BEGIN")
    conn.execute("UPDATE waves SET state = 'open' WHERE id = ?", [wid])
    conn.execute(
        "UPDATE wave_steps SET state = 'done', done_at = due_at WHERE wave_id = ? AND kind = 'invitation'", [wid]
    )
    conn.executemany(
        "INSERT INTO recipients (wave_id, contact_id, token_hash, invited_at) VALUES (?, ?, ?, ?)",
        [(wid, cid, token_hash(survey_token(secret, wid, cid)), stamp) for cid in range(1, size + 1)],
    )
    failed = set(rng.sample(range(1, size + 1), 100))
    outbox = []
    for cid in range(1, size + 1):
        state = "failed" if cid in failed else "sent"
        outbox.append(
            (
                f"wave:{wid}:contact:{cid}:invitation:1",
                wid,
                cid,
                "invitation",
                contacts[cid - 1][1],
                state,
                stamp,
                stamp,
                "451 4.3.0 try later" if state == "failed" else "",
            )
        )
        outbox.append(
            (
                f"wave:{wid}:contact:{cid}:reminder:2",
                wid,
                cid,
                "reminder",
                contacts[cid - 1][1],
                "sent",
                stamp,
                stamp,
                "",
            )
        )
    conn.executemany(
        "INSERT INTO outbox (key, wave_id, contact_id, kind, to_email, state, due_at, created_at, "
        "last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        outbox,
    )
    finished = rng.sample(range(1, size + 1), size // 2)
    responses = []
    seen_cities: set[str] = set()
    for n, cid in enumerate(finished):
        city = contacts[cid - 1][4]
        at = iso(start + timedelta(seconds=rng.randrange(6 * 86400)))
        responses.append(
            (wid, "signed", f"R{n}", cid, "complete", "city" if city in seen_cities else "", '{"Q1": "x"}', at)
        )
        seen_cities.add(city)
    responses += [(wid, "signed", f"U{n}", None, "unmatched", "", "{}", iso(now)) for n in range(50)]
    conn.executemany(
        "INSERT INTO responses (wave_id, platform, response_id, contact_id, status, duplicate, answers, "
        "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        responses,
    )
    conn.executemany(
        "UPDATE recipients SET completed_at = ? WHERE wave_id = ? AND contact_id = ?",
        [(r[7], wid, r[3]) for r in responses if r[3] is not None],
    )
    done = set(finished)
    others = [cid for cid in range(1, size + 1) if cid not in done]
    conn.executemany(
        "INSERT INTO partial_audit (wave_id, platform, response_id, contact_id, progress, reason, "
        "received_at) VALUES (?, 'signed', ?, ?, ?, 'not finished', ?)",
        [(wid, f"P{cid}", cid, rng.randrange(100), stamp) for cid in others[: size // 20]],
    )
    conn.executemany(
        "INSERT INTO suppressions (email, kind, created_at) VALUES (?, ?, ?)",
        [
            (contacts[cid - 1][1], "bounce" if n % 3 else "opt_out", stamp)
            for n, cid in enumerate(others[size // 20 : size // 20 + size * 3 // 100])
        ],
    )
    conn.executemany(
        "INSERT INTO interview_queue (wave_id, contact_id, response_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        [(wid, cid, f"R{n}", stamp, stamp) for n, cid in enumerate(finished[:200])],
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    made = {
        "coordinator": tokens.create(db, "coordinator", None, now)[1],
        "network": tokens.create(db, "network", "Metropolis", now)[1],
    }
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return made


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(folder: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SURVEYBOT_")}
    env.update(
        SURVEYBOT_DB=str(folder / "surveybot.db"),
        SURVEYBOT_MAIL_URL=f"maildir://{folder / 'mail'}",
        SURVEYBOT_BASE_URL=f"http://127.0.0.1:{port}",
    )
    log = open(folder / "serve.log", "w")
    return subprocess.Popen(
        [sys.executable, "-m", "surveybot", "serve", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def healthy(base: str) -> None:
    try:
        await wait_until_healthy(base)
    except RuntimeError as exc:
        raise SystemExit(f"serve did not start: {exc}") from None


class Responses:
    """A complete response every second from a recipient who has not answered yet (the field work going on
    while the dashboard is open): ``webhook`` posts it to the wave's real signed webhook, so ``serve``
    records it (in its event loop); ``writes`` records it from this process (``responses.record`` on its own
    connection, in a thread), so ``serve`` only sees the database change and computes its figures again."""

    def __init__(self, path: Path, base: str, mode: str) -> None:
        self.path, self.mode = path, mode
        db = open_db(path, migrate=False)
        secret = service_secret(db, None)
        self.wave = waves.get_wave(db, SLUG)
        self.url = webhook_url(base, secret, self.wave)
        self.whsec = signed.whsec(webhook_signing_secret(secret, self.wave))
        self.tokens = [
            survey_token(secret, self.wave["id"], cid)
            for (cid,) in db.execute(
                "SELECT contact_id FROM recipients WHERE wave_id = ? AND completed_at IS NULL", [self.wave["id"]]
            )
        ]
        db.close()
        self.sent, self.took = 0, []

    async def run(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        db = open_db(self.path, migrate=False)
        try:
            while not stop.is_set():
                started = time.perf_counter()
                if self.mode == "webhook":
                    await self._post(session)
                else:
                    event = ResponseEvent(
                        platform="signed",
                        response_id=f"live-{self.sent}",
                        finished=True,
                        token=self.tokens[self.sent],
                        answers={"Q1": "x"},
                    )
                    await asyncio.to_thread(record, db, self.wave, event, utcnow())
                self.took.append((time.perf_counter() - started) * 1000)
                self.sent += 1
                try:
                    await asyncio.wait_for(stop.wait(), 1.0)
                except TimeoutError:
                    pass
        finally:
            db.close()

    async def _post(self, session: aiohttp.ClientSession) -> None:
        body = json.dumps(
            {
                "type": "response.completed",
                "data": {
                    "response_id": f"live-{self.sent}",
                    "token": self.tokens[self.sent],
                    "progress": 100,
                    "answers": {"Q1": "x"},
                },
            }
        ).encode()
        stamp, message = int(time.time()), f"msg_live_{self.sent}"
        async with session.post(
            self.url,
            data=body,
            headers={
                "Content-Type": "application/json",
                "webhook-id": message,
                "webhook-timestamp": str(stamp),
                "webhook-signature": signed.sign(self.whsec, message, stamp, body),
            },
        ) as answer:
            assert answer.status == 200, await answer.text()


async def measure(base: str, token: str, paths: list[str], requests: int, every: float) -> dict[str, dict]:
    found = {}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.post(f"{base}/login", data={"token": token}, allow_redirects=False) as answer:
            assert answer.status == 303, answer.status
        for path in paths:
            times = []
            for _ in range(requests + 1):
                started = time.perf_counter()
                async with session.get(base + path) as answer:
                    await answer.read()
                    assert answer.status == 200, (path, answer.status)
                times.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(every)
            cold, warm = times[0], sorted(times[1:])
            found[path] = {
                "cold": cold,
                "p50": statistics.median(warm),
                "p95": warm[max(0, round(len(warm) * 0.95) - 1)],
                "max": warm[-1],
            }
    return found


def compute_once(path: Path) -> dict[str, float]:
    """Each page's figures computed once, in this process, with nothing kept."""
    from surveybot.web import dashboard, partners

    db = open_db(path, migrate=False)
    secret = service_secret(db, None)
    jobs = {
        "/waves": (dashboard._list_figures,),
        f"/waves/{SLUG}": (dashboard._wave_figures, SLUG, secret, "http://x"),
        "partner /waves": (partners._landing_figures, "Metropolis"),
        f"partner /waves/{SLUG}": (partners._wave_figures, "Metropolis", SLUG, 1),
    }
    spent = {}
    for name, (job, *args) in jobs.items():
        started = time.perf_counter()
        job(db, *args)
        spent[name] = (time.perf_counter() - started) * 1000
    db.close()
    return spent


async def run_size(size: int, requests: int, every: float, keep: bool) -> tuple[dict, dict]:
    folder = Path(tempfile.mkdtemp(prefix=f"dashboard-bench-{size}-"))
    started = time.perf_counter()
    made = fill(folder / "surveybot.db", size)
    print(f"{size:,} contacts: database filled in {time.perf_counter() - started:.1f} s ({folder})", flush=True)
    computed = compute_once(folder / "surveybot.db")
    port = free_port()
    server = serve(folder, port)
    base = f"http://127.0.0.1:{port}"
    pages = {}
    try:
        await healthy(base)
        for mode in MODES:
            stop = asyncio.Event()
            responses = Responses(folder / "surveybot.db", base, mode)
            async with aiohttp.ClientSession() as session:
                feeding = asyncio.create_task(responses.run(session, stop)) if mode != "idle" else None
                found = await measure(base, made["coordinator"], ["/waves", f"/waves/{SLUG}"], requests, every)
                partner = await measure(base, made["network"], ["/waves", f"/waves/{SLUG}"], requests, every)
                stop.set()
                if feeding is not None:
                    await feeding
                    took = sorted(responses.took)
                    print(
                        f"  {size:,} {mode}: {responses.sent} responses recorded, each in p50 "
                        f"{statistics.median(took):.0f} ms, max {took[-1]:.0f} ms",
                        flush=True,
                    )
            found.update({f"partner {p}": v for p, v in partner.items()})
            pages.update({(mode, p): v for p, v in found.items()})
    finally:
        server.terminate()
        server.wait(timeout=30)
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    return pages, computed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--every", type=float, default=0.1)
    parser.add_argument("--keep", action="store_true", help="keep the databases (their folders are printed)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{os.cpu_count()} cores; {args.requests} requests a page, {args.every} s apart", flush=True)
    results = {size: await run_size(size, args.requests, args.every, args.keep) for size in sizes}
    small, large = sizes[0], sizes[-1]
    print()
    print(
        "idle: nothing changes while the pages are read; writes: another process records a response every "
        "second; webhook: a response every second through serve's webhook"
    )
    print(f"{'page':<24}{'mode':<8}{'contacts':>10}{'cold':>9}{'p50':>8}{'p95':>8}{'max':>8}{'compute':>10}   ms")
    for mode, page in results[small][0]:
        for size in sizes:
            pages, computed = results[size]
            r = pages[(mode, page)]
            print(
                f"{page:<24}{mode:<8}{size:>10,}{r['cold']:>9.1f}{r['p50']:>8.1f}{r['p95']:>8.1f}{r['max']:>8.1f}"
                f"{computed[page]:>10.1f}"
            )
        ratio = results[large][0][(mode, page)]["p95"] / results[small][0][(mode, page)]["p95"]
        p95 = results[large][0][(mode, page)]["p95"]
        print(
            f"{'':<32}p95 {large:,} / {small:,} = {ratio:.2f}x (target < 3x: {'met' if ratio < 3 else 'NOT met'}); "
            f"p95 at {large:,} {'under' if p95 < 200 else 'NOT under'} 200 ms"
        )
    if args.json:
        figures = {
            "sizes": sizes,
            "requests": args.requests,
            "target_p95_ms_max": 200,
            "target_growth_max": 3,
            "pages": [
                {"page": page, "mode": mode, "size": size, **results[size][0][(mode, page)]}
                | {"compute": results[size][1][page]}
                for mode, page in results[small][0]
                for size in sizes
            ],
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
