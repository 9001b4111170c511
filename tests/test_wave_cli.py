"""The wave commands, and ``surveybot serve`` picking up what other processes write, as a coordinator uses them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

from tests.mailsink import free_port

CONTACTS = (
    "name,email,city,country,language\n"
    "Ana Pérez,ana@bogota.example.org,Bogotá,Colombia,es\n"
    "Joe Bloggs,joe@leeds.example.org,Leeds,UK,en\n"
    "Pat Doe,pat@lima.example.org,Lima,Peru,\n"
)
CREATE = (
    "wave",
    "create",
    "w1",
    "--title",
    "City diplomacy 2026",
    "--platform",
    "qualtrics",
    "--survey-id",
    "SV_1",
    "--survey-url",
    "https://lab.qualtrics.com/jfe/form/SV_1",
)


def setup_contacts(tmp_path, run_cli):
    (tmp_path / "list.csv").write_text(CONTACTS, encoding="utf-8")
    run_cli("contacts", "import", "list.csv", "--network", "Metropolis", check=True)


def wait_for(condition, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_serve_picks_up_launch_pause_and_close_from_other_processes(tmp_path, run_cli, mail_sink):
    setup_contacts(tmp_path, run_cli)
    env = {"SURVEYBOT_MAIL_URL": mail_sink.url, "SURVEYBOT_SEND_RATE": "100"}
    run_cli(*CREATE, "--reminders", "3s", "--close-after", "60s", extra_env=env, check=True)
    port = free_port()
    server_env = {k: v for k, v in os.environ.items() if not k.startswith("SURVEYBOT_")}
    server_env.update(env, SURVEYBOT_DB=str(tmp_path / "surveybot.db"))
    server = subprocess.Popen(
        [sys.executable, "-m", "surveybot", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=server_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: _healthy(port), what="/healthz")
        assert mail_sink.received == []  # a draft sends nothing
        started = time.monotonic()
        run_cli("wave", "launch", "w1", extra_env=env, check=True)
        wait_for(lambda: len(mail_sink.received) == 3, what="three invitations")
        assert time.monotonic() - started < 5
        run_cli("wave", "pause", "w1", extra_env=env, check=True)
        time.sleep(4)  # the reminder falls due while paused
        assert len(mail_sink.received) == 3
        status = json.loads(run_cli("wave", "status", "w1", "--json", extra_env=env, check=True).stdout)
        assert status["state"] == "paused" and status["next_step"]["kind"] == "reminder"
        run_cli("wave", "resume", "w1", extra_env=env, check=True)
        wait_for(lambda: len(mail_sink.received) == 6, what="three reminders after resuming")
        run_cli("wave", "close", "w1", extra_env=env, check=True)
        status = json.loads(run_cli("wave", "status", "w1", "--json", extra_env=env, check=True).stdout)
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=15)
    except AssertionError:
        server.kill()
        raise AssertionError("service output:\n" + server.communicate()[0]) from None
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, output
    assert "Traceback" not in output
    for key in (
        "state",
        "invited",
        "sent",
        "failed",
        "bounced",
        "opted_out",
        "completed",
        "partial_discarded",
        "interview_queue",
        "next_step",
        "webhook_url",
    ):
        assert key in status
    assert (status["state"], status["invited"], status["sent"], status["next_step"]) == ("closed", 3, 6, None)
    assert status["webhook_url"].startswith("http://127.0.0.1:8080/webhooks/qualtrics/w1/")
    assert len(status["webhook_url"].rsplit("/", 1)[1]) >= 32


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def test_preview_renders_each_language_with_real_dates(tmp_path, run_cli):
    setup_contacts(tmp_path, run_cli)
    run_cli(*CREATE, check=True)
    spanish = run_cli(
        "wave", "preview", "w1", "--kind", "invitation", "--contact", "ana@bogota.example.org", check=True
    ).stdout
    assert "Subject: Invitación: City diplomacy 2026" in spanish
    assert "Content-Language: es" in spanish
    assert "La encuesta cierra en 14 días, el " in spanish and " de " in spanish
    assert "Q_Language=ES" in spanish and "token=" in spanish
    both = run_cli(
        "wave", "preview", "w1", "--kind", "reminder", "--contact", "pat@lima.example.org", check=True
    ).stdout
    assert "Content-Language: es, en" in both and "Recordatorio" in both and "Reminder" in both
    everything = run_cli("wave", "preview", "w1", check=True).stdout
    assert everything.count("Subject: ") == 8  # four kinds, two languages
    html = run_cli("wave", "preview", "w1", "--kind", "thank_you", "--language", "en", "--html", check=True).stdout
    assert "<html" in html and "Thank you for answering" in html


def test_preview_of_a_broken_override_template_names_the_template(tmp_path, run_cli):
    setup_contacts(tmp_path, run_cli)
    run_cli(*CREATE, check=True)
    folder = tmp_path / "mytemplates"
    folder.mkdir()
    (folder / "invitation.en.txt.j2").write_text("Subject: Hello {{ name }}\n\nDear {{ nmae }},\n")
    result = run_cli(
        "wave",
        "preview",
        "w1",
        "--kind",
        "invitation",
        "--language",
        "en",
        extra_env={"SURVEYBOT_TEMPLATES": str(folder)},
    )
    assert result.returncode == 1
    assert "invitation.en.txt.j2" in result.stderr and "nmae" in result.stderr and "Traceback" not in result.stderr
    (folder / "invitation.en.txt.j2").write_text("Subject: Hello {{ name }}\n\nCustom text for {{ city }}.\n")
    ok = run_cli(
        "wave",
        "preview",
        "w1",
        "--kind",
        "invitation",
        "--contact",
        "joe@leeds.example.org",
        extra_env={"SURVEYBOT_TEMPLATES": str(folder)},
        check=True,
    ).stdout
    assert "Subject: Hello Joe Bloggs" in ok and "Custom text for Leeds." in ok


def test_test_send_delivers_every_kind_in_both_languages(tmp_path, run_cli, mail_sink):
    setup_contacts(tmp_path, run_cli)
    env = {"SURVEYBOT_MAIL_URL": mail_sink.url}
    run_cli(*CREATE, extra_env=env, check=True)
    result = run_cli("wave", "test-send", "w1", "--to", "Coordinator@Lab.example.org", extra_env=env, check=True)
    assert "Sent 12 of 12" in result.stdout
    assert {r.rcpt_tos[0] for r in mail_sink.received} == {"coordinator@lab.example.org"}
    languages = sorted(str(r.message["Content-Language"]) for r in mail_sink.received)
    assert languages == ["en"] * 4 + ["es"] * 4 + ["es, en"] * 4
    subjects = [str(r.message["Subject"]).strip() for r in mail_sink.received]  # folded: leading space
    assert all(s.startswith("[test] ") for s in subjects), subjects


def test_wave_create_refuses_bad_input_with_one_line(tmp_path, run_cli):
    setup_contacts(tmp_path, run_cli)
    cases = [
        (("--reminders", "7d,20d"), "the reminder at 20d falls outside the wave"),
        (("--reminders", "soon"), "not a duration"),
        (("--in-progress-timeout", "999999999d"), "longer than the longest duration taken, 3650d"),
        (("--start", "next tuesday"), "ISO 8601"),
        (("--network", "Nowhere"), "no contacts were imported for network 'Nowhere'"),
        (("--interview-question", "Q9"), "go together"),
    ]
    for extra, words in cases:
        result = run_cli(*CREATE, *extra)
        assert result.returncode != 0, extra
        assert words in result.stderr and "Traceback" not in result.stderr, (extra, result.stderr)
    run_cli(*CREATE, check=True)
    again = run_cli(*CREATE)
    assert again.returncode == 1 and "exists already" in again.stderr
    missing = run_cli("wave", "status", "nope", "--json")
    error = json.loads(missing.stdout)["error"]
    assert missing.returncode == 1 and error.startswith("no wave named 'nope' in the database /")
    assert error.endswith("surveybot.db (its waves: w1)")
