"""Delivery throughput through the whole path against a bare aiosmtplib loop, and launch time of a big wave.

    python bench/send_bench.py [--messages 5000] [--concurrency 4] [--launch-contacts 100000]

Both runs deliver to the same local aiosmtpd sink, running in its own process as a real server would, at
the same concurrency:
- baseline: ``--concurrency`` aiosmtplib connections sending the same messages pre-rendered to bytes
  (``sendmail``), nothing else; and, for reference, the common loop of ``send_message`` with pre-built
  ``EmailMessage`` objects;
- surveybot: plan step → outbox rows → claim → render (Jinja2 + babel) → MIME → SMTP → mark sent, with the
  rate limit set out of the way. Reported as messages/s and the ratio surveybot/baseline (target ≥ 0.8).
  What a process loads once (the time-zone gazetteer, about a second) is loaded before the clock starts and
  reported on its own line.
Then the time to launch a wave of ``--launch-contacts`` contacts: recipients with their tokens and one
outbox row each (target < 10 s).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import aiosmtplib

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from surveybot import plan, waves
from surveybot.clock import iso, utcnow
from surveybot.config import load_settings
from surveybot.db import open_db, transaction
from surveybot.dispatcher import Dispatcher
from surveybot.mail.compose import Composer
from surveybot.mail.transports import open_transport
from surveybot.signing import service_secret
from tests.mailsink import free_port

SINK = """
import sys
from aiosmtpd.controller import Controller

class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"

controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
controller.stop()
"""


def fill_contacts(db, count: int) -> None:
    stamp = iso(utcnow())
    languages = ["en", "es", ""]
    with transaction(db):
        db.conn.executemany(
            "INSERT INTO contacts (email, name, city, country, region, language, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    f"officer{i}@city{i % 3000}.example.org",
                    f"Officer Núñez {i}",
                    f"City {i % 3000}",
                    "Country",
                    "Latin America",
                    languages[i % 3],
                    stamp,
                    stamp,
                )
                for i in range(count)
            ),
        )


def new_wave(db, slug: str):
    spec = waves.WaveSpec(
        slug=slug,
        title="City diplomacy 2026",
        platform="qualtrics",
        survey_id="SV_1",
        survey_url="https://lab.qualtrics.com/jfe/form/SV_1",
        reminders=(timedelta(days=7),),
        close_after=timedelta(days=14),
    )
    waves.create_wave(db, spec, utcnow())
    waves.launch(db, slug, utcnow())


async def baseline(port: int, messages: list, concurrency: int, as_objects: bool = False) -> float:
    if as_objects:
        messages = [message_from_bytes(m.data, policy=policy.SMTP) for m in messages]

    async def worker(share: list) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        for message in share:
            if as_objects:
                await client.send_message(message)
            else:
                await client.sendmail(message.sender, [message.recipient], message.data)
        await client.quit()

    start = time.perf_counter()
    await asyncio.gather(*(worker(messages[i::concurrency]) for i in range(concurrency)))
    return time.perf_counter() - start


async def full_path(folder: Path, port: int, count: int, concurrency: int) -> tuple[float, list, float]:
    settings = load_settings(
        {
            "SURVEYBOT_DB": str(folder / "send.db"),
            "SURVEYBOT_MAIL_URL": f"smtp://127.0.0.1:{port}",
            "SURVEYBOT_SEND_RATE": "1000000",
            "SURVEYBOT_FROM": "Lab <lab@example.org>",
        },
        env_file=None,
    )
    db = open_db(settings.db_path)
    fill_contacts(db, count)
    new_wave(db, "bench")
    secret = service_secret(db, None)
    composer = Composer(db, settings, secret)
    warm_start = time.perf_counter()
    composer.warm()  # once per process (the gazetteer of time zones): not part of the per-message path
    warm = time.perf_counter() - warm_start
    transport = open_transport(settings.mail, concurrency)
    dispatcher = Dispatcher(db, composer, transport, rate=settings.send_rate, concurrency=concurrency)
    start = time.perf_counter()
    plan.run_due(db, secret, utcnow())
    while await dispatcher.send_due():
        pass
    elapsed = time.perf_counter() - start
    await transport.close()
    sent = db.execute("SELECT count(*) FROM outbox WHERE state = 'sent'").fetchone()[0]
    assert sent == count, f"only {sent} of {count} sent"
    wave = waves.get_wave(db, "bench")
    prerendered = [composer.message("invitation", wave, composer.contact(i), utcnow()) for i in range(1, count + 1)]
    return elapsed, prerendered, warm


def launch_time(folder: Path, count: int) -> float:
    db = open_db(folder / "launch.db")
    fill_contacts(db, count)
    new_wave(db, "big")
    start = time.perf_counter()
    plan.run_due(db, service_secret(db, None), utcnow())
    elapsed = time.perf_counter() - start
    queued = db.execute("SELECT count(*) FROM outbox WHERE state = 'queued'").fetchone()[0]
    assert queued == count, queued
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--launch-contacts", type=int, default=100_000, help="0 to skip")
    args = parser.parse_args()
    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, "-c", SINK, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert sink.stdout.readline().strip() == "ready"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            ours, prerendered, warm = await full_path(folder, port, args.messages, args.concurrency)
            bare = await baseline(port, prerendered, args.concurrency)
            objects = await baseline(port, prerendered, args.concurrency, as_objects=True)
            ours_rate, bare_rate, objects_rate = (args.messages / t for t in (ours, bare, objects))
            print(f"messages: {args.messages:,} at concurrency {args.concurrency}")
            print(f"baseline, aiosmtplib sendmail(pre-rendered bytes): {bare_rate:,.0f} msgs/s ({bare:.2f} s)")
            print(f"reference, aiosmtplib send_message(EmailMessage):  {objects_rate:,.0f} msgs/s ({objects:.2f} s)")
            print(f"surveybot full path:                               {ours_rate:,.0f} msgs/s ({ours:.2f} s)")
            print(f"(before it, once per process: loading the time-zone gazetteer, {warm:.2f} s)")
            print(
                f"ratio surveybot/baseline: {ours_rate / bare_rate:.2f} (target >= 0.8); "
                f"surveybot/reference: {ours_rate / objects_rate:.2f}"
            )
            if args.launch_contacts:
                seconds = launch_time(folder, args.launch_contacts)
                print(
                    f"launching a wave of {args.launch_contacts:,} contacts (recipients + outbox): {seconds:.2f} s "
                    f"(target < 10 s)"
                )
    finally:
        sink.stdin.close()
        sink.wait(timeout=10)
        sink.stdout.close()


if __name__ == "__main__":
    asyncio.run(main())
