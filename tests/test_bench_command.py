"""`python -m bench`: every benchmark runs and lands in one table; the soak's loss check finds losses."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bench import soak
from surveybot.db import open_db

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ["benchmark", "surveybot", "baseline", "ratio", "target", "met?"]


def bench(*args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_quick_run_prints_one_table_and_the_soak_loses_nothing(tmp_path):
    saved = tmp_path / "results.json"
    result = bench("--quick", "--soak", "--json", str(saved))
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    # progress went to stderr, one block per benchmark; the table to stdout
    for name in ("import", "send", "webhook", "dashboard", "pull", "soak"):
        assert f"  [{name}] " in result.stderr
    lines = result.stdout.splitlines()
    header = next(n for n, line in enumerate(lines) if line.startswith("benchmark"))
    assert lines[header].split() == COLUMNS
    body = lines[header + 2 : lines.index("", header)]
    assert [line.split()[0] for line in body] == [
        "import,",
        "import",
        "send,",
        "launch",
        "webhooks",
        "webhook",
        "webhook",
        "dashboard",
        "dashboard",
        "Qualtrics",
        "pull",
        "soak",
        "soak",
        "soak",
    ]
    assert all(line.rstrip().endswith(("met", "MISSED", "-")) for line in body)
    assert "dashboard cost from 1,000 to 3,000 contacts" in result.stdout

    found = json.loads(saved.read_text())
    assert found["failed"] == []
    rows = {r["benchmark"].split(",")[0].split(" (")[0]: r for r in found["rows"]}
    for name in ("import", "send", "webhooks accepted", "webhook latency p99", "Qualtrics export pulled"):
        assert rows[name]["surveybot"] > 0 and rows[name]["baseline"] > 0, rows[name]
        assert rows[name]["ratio"] == pytest.approx(
            rows[name]["surveybot"] / rows[name]["baseline"]
            if name != "import"
            else found["figures"]["import"]["ratio"]
        )
    assert rows["webhook inbox rows per accepted"]["met"] is True
    grown = found["dashboard_growth"]
    assert {(g["small"], g["large"]) for g in grown} == {(1000, 3000)}
    assert {g["page"] for g in grown} == {"/waves", "/waves/bench", "partner /waves", "partner /waves/bench"}
    assert {g["mode"] for g in grown} == {"idle", "writes", "webhook"}

    run = found["soak"]
    assert run["nothing_lost"] is True and not any(run["problems"].values())
    assert "nothing lost: every accepted webhook recorded once" in result.stdout
    # 200 webhooks: 180 distinct responses (144 complete, 36 partial) and 20 deliveries sent again
    assert run["webhook"]["distinct_accepted"] == 180 and run["webhook"]["repeats_accepted"] == 20
    assert run["webhook"]["answers"] == {"complete": 144, "partial": 36, "repeat": 20}
    # every invitation not cancelled by its recipient finishing first, and a thank-you each, reached the server
    outbox = run["mail"]["outbox"]
    assert outbox["sent"] + outbox.get("cancelled", 0) == 300 + 144
    assert run["mail"]["received_by_smtp"] == outbox["sent"]
    assert run["memory_mb"]["start"] > 0 and run["memory_mb"]["peak"] >= run["memory_mb"]["start"]
    assert run["dashboard"]["page_loads"] >= 1 and run["dashboard"]["errors"] == {}


def test_soak_check_reports_what_was_lost_or_doubled(tmp_path):
    db_path = tmp_path / "soak.db"
    prepared = soak.prepare(db_path, 4, "http://127.0.0.1:9")
    wave_id = prepared["wave_id"]
    db = open_db(db_path)
    db.execute("UPDATE outbox SET state = 'sent', message_id = '<a@lab>' WHERE contact_id = 1")
    db.execute("UPDATE outbox SET state = 'sent', message_id = '<b@lab>' WHERE contact_id = 2")
    db.execute("UPDATE outbox SET state = 'failed' WHERE contact_id = 3")
    db.execute(
        "INSERT INTO responses (wave_id, platform, response_id, contact_id, status, duplicate, answers, received_at) "
        "VALUES (?, 'signed', 'R_twice', 4, 'complete', '', '{}', '2026-11-25T10:00:00Z')",
        [wave_id],
    )
    db.execute(
        "INSERT INTO partial_audit (wave_id, platform, response_id, progress, reason, received_at) "
        "VALUES (?, 'signed', 'R_twice', 40, 'not finished', '2026-11-25T10:00:00Z')",
        [wave_id],
    )
    db.close()
    hooks = soak.Hooks(accepted={"R_twice", "R_never_recorded"}, given_up=["R_refused"])

    problems = soak.check(db_path, wave_id, hooks, Counter({"<a@lab>": 2, "<stranger@lab>": 1}))

    assert problems == {
        "webhooks_not_recorded": 1,
        "webhooks_recorded_twice": 1,
        "webhooks_given_up": 1,
        "messages_not_sent": 1,  # contact 4's invitation is still queued
        "messages_failed": 1,
        "messages_not_received": 1,  # <b@lab>
        "messages_received_twice": 1,  # <a@lab>
        "messages_received_unknown": 1,
    }


def test_unknown_benchmark_is_refused_by_name():
    result = bench("--only", "import,nope", timeout=30)
    assert result.returncode == 2
    assert "--only: no benchmark named nope" in result.stderr
