"""Pulling a Qualtrics export of many responses, against a bare read of the same export.

    python bench/pull_bench.py [--responses 10000] [--json FILE]

The local stand-in of Qualtrics' export API (tests/fake_qualtrics_export.py) runs in its own process, holding
``--responses`` complete responses. Both runs talk to it over HTTP:
- baseline: start an export, wait for it, download the zip into memory and ``json.loads`` each line; nothing
  is stored;
- surveybot: ``pull_wave``, the same three calls, the file spooled to disk and read a line at a time, each
  response judged and recorded (200 to a transaction, with the continuation token stored with the last).
Reported: responses/s of each and their ratio, and the peak of memory Python allocated during each
(tracemalloc), which for surveybot must not grow with the size of the export.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import free_port, progress, write_json
from surveybot import pull, waves
from surveybot.clock import utcnow
from surveybot.config import load_settings
from surveybot.db import open_db

SERVER = """
import asyncio, sys
from aiohttp import web
from tests import fake_platforms
from tests.fake_qualtrics_export import QualtricsExports

async def main(port, count):
    fake = fake_platforms.FakePlatform()
    exports = QualtricsExports(fake, checks=1)
    for n in range(count):
        fake.add_qualtrics(f"R_{n:06d}", finished=True, token=None,
                           answers={"QID1": n % 5, "QID2_TEXT": "Twinning and city networks " * 4})
    app = fake.app()
    exports.routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""
TOKEN = "qualtrics-test-token"


async def bare(base: str) -> int:
    """The export read the plain way: all in memory, nothing judged or stored."""
    headers = {"X-API-TOKEN": TOKEN}
    exports = f"{base}/API/v3/surveys/SV_city/export-responses"
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(exports, json={"format": "ndjson", "compress": True}) as started:
            progress_id = (await started.json())["result"]["progressId"]
        while True:
            async with http.get(f"{exports}/{progress_id}") as checked:
                result = (await checked.json())["result"]
            if result["status"] == "complete":
                break
            await asyncio.sleep(0.2)
        async with http.get(f"{exports}/{result['fileId']}/file") as download:
            data = await download.read()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        text = archive.read(archive.namelist()[0]).decode("utf-8")
    return len([json.loads(line) for line in text.splitlines() if line.strip()])


async def ours(base: str, folder: Path) -> pull.PullResult:
    settings = load_settings(
        {"SURVEYBOT_DB": str(folder / "pull.db"), "QUALTRICS_BASE_URL": base, "QUALTRICS_API_TOKEN": TOKEN},
        env_file=None,
    )
    db = open_db(settings.db_path)
    spec = waves.WaveSpec(
        slug="city", title="City diplomacy", platform="qualtrics", survey_id="SV_city",
        survey_url="https://lab.qualtrics.com/jfe/form/SV_city", intake="poll",
    )  # fmt: skip
    waves.create_wave(db, spec, utcnow())
    wave = waves.launch(db, "city", utcnow())
    async with aiohttp.ClientSession() as http:
        return await pull.pull_wave(db, settings, http, wave)


def measured(run: Any) -> tuple[Any, float, float]:
    """(result, seconds, peak MB allocated by Python meanwhile)."""
    tracemalloc.start()
    started = time.perf_counter()
    result = asyncio.run(run)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=10_000)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    port = free_port()
    root = Path(__file__).resolve().parent.parent
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), str(args.responses)],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    base = f"http://127.0.0.1:{port}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            progress(f"bare read of an export of {args.responses:,} responses")
            read, bare_s, bare_mb = measured(bare(base))
            assert read == args.responses, read
            progress("surveybot pull of the same export")
            result, ours_s, ours_mb = measured(ours(base, Path(tmp)))
            assert result.error == "" and result.outcomes["unmatched"] == args.responses, result.as_json()
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)
    figures = {
        "responses": args.responses,
        "baseline_per_s": args.responses / bare_s,
        "surveybot_per_s": args.responses / ours_s,
        "ratio": bare_s / ours_s,
        "baseline_peak_mb": bare_mb,
        "surveybot_peak_mb": ours_mb,
    }
    print(f"responses: {args.responses:,}")
    print(f"baseline, export read into memory: {figures['baseline_per_s']:,.0f} responses/s, peak {bare_mb:.1f} MB")
    print(f"surveybot pull, judged and stored: {figures['surveybot_per_s']:,.0f} responses/s, peak {ours_mb:.1f} MB")
    print(f"ratio surveybot/baseline: {figures['ratio']:.2f}")
    if args.json:
        write_json(args.json, figures)


if __name__ == "__main__":
    main()
