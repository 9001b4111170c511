"""A coordinator cannot shoot themselves in the foot: a named database, safe launches, forgiving input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from surveybot import plan, waves
from surveybot.clock import utcnow
from surveybot.db import open_db
from surveybot.signing import service_secret

LIST = (
    "name,email,city,country,region,language\n"
    "Ana Pérez,ana@bogota.example.org,Bogotá,Colombia,Latin America,es\n"
    "Joe Bloggs,joe@leeds.example.org,Leeds,UK,Europe,en\n"
    "Pat Doe,pat@lima.example.org,Lima,Peru,Latin America,\n"
)
CREATE = ("--title", "City diplomacy 2026", "--survey-id", "SV_1", "--survey-url", "https://survey.example.org/s1")


def test_commands_name_the_database_they_read_and_never_start_an_empty_one_by_mistake(tmp_path, run_cli):
    database = tmp_path / "surveybot.db"
    for command in (("contacts", "list"), ("wave", "status", "w"), ("wave", "list"), ("report", "w")):
        result = run_cli(*command)
        assert result.returncode == 1 and str(database) in result.stderr and "SURVEYBOT_DB" in result.stderr
        assert not database.exists()
    # a refused first import leaves nothing behind; a good one creates the database and says where
    (tmp_path / "empty.csv").write_text("")
    assert run_cli("contacts", "import", "empty.csv", "--network", "Metropolis").returncode == 1
    assert not database.exists()
    (tmp_path / "list.csv").write_text(LIST, encoding="utf-8")
    created = run_cli("contacts", "import", "list.csv", "--network", "Metropolis", check=True)
    assert f"Created a new database at {database}" in created.stderr
    again = run_cli("contacts", "import", "list.csv", "--network", "Metropolis", check=True)
    assert "Created" not in again.stderr
    run_cli("wave", "create", "spring", "--platform", "signed", *CREATE, check=True)
    missing = run_cli("wave", "status", "sprung")
    assert missing.returncode == 1 and str(database) in missing.stderr and "its waves: spring" in missing.stderr


def test_wave_list_and_the_whole_plan_in_status(tmp_path, run_cli):
    (tmp_path / "list.csv").write_text(LIST, encoding="utf-8")
    run_cli("contacts", "import", "list.csv", "--network", "Metropolis", check=True)
    run_cli("wave", "create", "spring", "--platform", "Qualtrics", "--close-after", "2w", *CREATE, check=True)
    run_cli("wave", "create", "autumn", "--platform", "SIGNED", "--reminders", "1w", *CREATE, check=True)
    run_cli("wave", "launch", "spring", "--yes", check=True)
    listed = json.loads(run_cli("wave", "list", "--json", check=True).stdout)["waves"]
    assert [(w["slug"], w["state"], w["platform"]) for w in listed] == [
        ("spring", "scheduled", "qualtrics"),
        ("autumn", "draft", "signed"),
    ]
    assert "spring" in run_cli("wave", "list", check=True).stdout
    status = run_cli("wave", "status", "spring", check=True).stdout
    for kind in ("invitation", "reminder", "final_reminder", "close"):
        assert f"  {kind}" in status
    assert status.count(" UTC") >= 4
    db = open_db(tmp_path / "surveybot.db")
    spring = waves.get_wave(db, "spring")
    assert spring["close_after"] == 14 * 86400 and waves.get_wave(db, "autumn")["reminders"] == [7 * 86400]


def test_launch_shows_the_audience_refuses_nobody_and_warns_about_overlap_and_no_service(tmp_path, run_cli):
    (tmp_path / "list.csv").write_text(LIST, encoding="utf-8")
    run_cli("contacts", "import", "list.csv", "--network", "Metropolis", check=True)
    run_cli("contacts", "suppress", "pat@lima.example.org", check=True)
    run_cli("wave", "create", "first", "--platform", "signed", *CREATE, check=True)
    run_cli("wave", "create", "second", "--platform", "signed", *CREATE, check=True)
    first = json.loads(run_cli("wave", "launch", "first", "--json", check=True).stdout)
    assert first["audience"]["recipients"] == 2 and first["audience"]["suppressed"] == 1
    assert first["audience"]["by_language"] == {"en": 1, "es": 1}
    assert first["audience"]["by_network"] == {"Metropolis": 2}
    assert [step["kind"] for step in first["plan"]] == ["invitation", "reminder", "final_reminder", "close"]
    assert any("no 'surveybot serve'" in w for w in first["warnings"])
    # the first wave's invitations go out (as serve would do): its recipients are now in an open wave
    db = open_db(tmp_path / "surveybot.db")
    plan.run_due(db, service_secret(db, None), utcnow())
    db.close()
    warned = run_cli("wave", "launch", "second", "--yes")
    assert warned.returncode == 0 and "2 in first" in warned.stderr and "--skip-overlap" in warned.stderr
    assert "2 recipients" in warned.stdout and "Metropolis" in warned.stdout
    db = open_db(tmp_path / "surveybot.db")
    plan.run_due(db, service_secret(db, None), utcnow())  # the second wave's invitations go out too
    db.close()
    # with --skip-overlap those two are left out: here nobody would be left, so it is refused and says why
    run_cli("wave", "create", "third", "--platform", "signed", *CREATE, check=True)
    skipped = run_cli("wave", "launch", "third", "--skip-overlap", "--yes")
    assert skipped.returncode == 1 and "in another open wave" in skipped.stderr
    # a newcomer joins: only she is invited by a wave launched with --skip-overlap
    (tmp_path / "more.csv").write_text(
        LIST.splitlines()[0] + "\nEva Ruiz,eva@quito.example.org,Quito,Ecuador,,es\n", encoding="utf-8"
    )
    run_cli("contacts", "import", "more.csv", "--network", "Metropolis", check=True)
    skipped = json.loads(run_cli("wave", "launch", "third", "--skip-overlap", "--json", check=True).stdout)
    assert skipped["audience"]["recipients"] == 1
    db = open_db(tmp_path / "surveybot.db")
    plan.run_due(db, service_secret(db, None), utcnow())
    third = waves.get_wave(db, "third")
    invited = db.execute(
        "SELECT c.email FROM recipients r JOIN contacts c ON c.id = r.contact_id WHERE r.wave_id = ?", [third["id"]]
    ).fetchall()
    assert [e for (e,) in invited] == ["eva@quito.example.org"]
    db.close()
    # a wave of a network nobody listed: nobody to invite, refused
    run_cli("wave", "create", "nobody", "--platform", "signed", *CREATE, check=True)
    for address in ("ana@bogota.example.org", "joe@leeds.example.org", "eva@quito.example.org"):
        run_cli("contacts", "suppress", address, check=True)
    refused = run_cli("wave", "launch", "nobody", "--yes")
    assert refused.returncode == 1 and "would invite nobody" in refused.stderr
    assert json.loads(run_cli("wave", "list", "--json", check=True).stdout)["waves"][-1]["state"] == "draft"


def test_launch_at_a_terminal_asks_first(tmp_path, run_cli):
    (tmp_path / "list.csv").write_text(LIST, encoding="utf-8")
    run_cli("contacts", "import", "list.csv", "--network", "Metropolis", check=True)
    run_cli("wave", "create", "w", "--platform", "signed", *CREATE, check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SURVEYBOT_")}
    env["SURVEYBOT_DB"] = str(tmp_path / "surveybot.db")
    for answer, launched in (("n", False), ("y", True)):
        primary, secondary = os.openpty()
        os.write(primary, f"{answer}\n".encode())
        process = subprocess.run(
            [sys.executable, "-m", "surveybot", "wave", "launch", "w"],
            stdin=secondary,
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
        os.close(primary)
        os.close(secondary)
        assert "Launch w?" in process.stdout
        assert (process.returncode == 0) is launched, process.stderr
        state = json.loads(run_cli("wave", "list", "--json", check=True).stdout)["waves"][0]["state"]
        assert state == ("scheduled" if launched else "draft")


def test_a_start_in_the_past_is_refused_and_resume_needs_a_pause(tmp_path, run_cli):
    (tmp_path / "list.csv").write_text(LIST, encoding="utf-8")
    run_cli("contacts", "import", "list.csv", "--network", "Metropolis", check=True)
    past = run_cli("wave", "create", "w", "--platform", "signed", "--start", "2020-01-01T09:00+00:00", *CREATE)
    assert past.returncode == 1 and "in the past" in past.stderr
    run_cli("wave", "create", "w", "--platform", "signed", *CREATE, check=True)
    run_cli("wave", "launch", "w", "--yes", check=True)
    resumed = run_cli("wave", "resume", "w")
    assert resumed.returncode == 1 and "not paused" in resumed.stderr
    run_cli("wave", "pause", "w", check=True)
    assert run_cli("wave", "pause", "w").returncode == 1
    assert run_cli("wave", "resume", "w").returncode == 0


def test_a_misspelled_network_is_caught_and_a_new_one_is_not(tmp_path, run_cli):
    (tmp_path / "list.csv").write_text(LIST, encoding="utf-8")
    run_cli("contacts", "import", "list.csv", "--network", "Metropolis", check=True)  # the first is simply new
    typo = run_cli("contacts", "import", "list.csv", "--network", "Metroplis")
    assert typo.returncode == 1 and "did you mean 'Metropolis'" in typo.stderr and "--new-network" in typo.stderr
    assert (
        run_cli("contacts", "import", "list.csv", "--network", "metropolis ").returncode == 0
    )  # same, spelled loosely
    assert run_cli("contacts", "import", "list.csv", "--network", "Metroplis", "--new-network").returncode == 0
    assert run_cli("contacts", "import", "list.csv", "--network", "Eurocities").returncode == 0  # unlike any: new
    networks = {
        n
        for c in json.loads(run_cli("contacts", "list", "--json", check=True).stdout)["contacts"]
        for n in c["networks"]
    }
    assert {"Metropolis", "Metroplis", "Eurocities"} <= {n.strip() for n in networks}


def test_a_mistaken_opt_out_can_be_lifted_with_a_reason_a_bounce_cannot(tmp_path, run_cli):
    (tmp_path / "list.csv").write_text(LIST, encoding="utf-8")
    run_cli("contacts", "import", "list.csv", "--network", "Metropolis", check=True)
    db = open_db(tmp_path / "surveybot.db")
    from surveybot.suppressions import suppress

    suppress(db, "ana@bogota.example.org", "opt_out", "unsubscribe link (wave 1)")
    suppress(db, "joe@leeds.example.org", "bounce", "550 5.1.1 no such user")
    db.close()
    assert run_cli("contacts", "unsuppress", "ana@bogota.example.org").returncode != 0  # --reason is required
    lifted = run_cli("contacts", "unsuppress", "ana@bogota.example.org", "--reason", "her assistant clicked it")
    assert lifted.returncode == 0 and "opt-out" in lifted.stdout
    bounce = run_cli("contacts", "unsuppress", "joe@leeds.example.org", "--reason", "try again")
    assert bounce.returncode == 1 and "bounce" in bounce.stderr
    db = open_db(tmp_path / "surveybot.db")
    assert [r[0] for r in db.execute("SELECT email FROM suppressions")] == ["joe@leeds.example.org"]
    assert db.execute("SELECT email, kind, lift_reason FROM suppression_lifts").fetchall() == [
        ("ana@bogota.example.org", "opt_out", "her assistant clicked it")
    ]
