"""Settings: defaults that work, every bad value refused with one line naming it, secrets never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from surveybot.config import DOCUMENTED, load_settings
from surveybot.errors import SettingError

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_work_without_any_setting(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({}, env_file=None)
    assert settings.db_path == Path("surveybot.db")
    assert settings.mail.kind == "maildir" and settings.mail.path == Path("var/mail")
    assert settings.sender == "Survey team <survey@localhost>"
    assert settings.base_url == "http://127.0.0.1:8080"
    assert settings.send_rate == 10
    assert settings.secret is None


def test_env_file_is_read_and_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("SURVEYBOT_SEND_RATE=3\nSURVEYBOT_BASE_URL=https://survey.example.org/\n")
    settings = load_settings({"SURVEYBOT_SEND_RATE": "5"}, env_file=env_file)
    assert settings.send_rate == 5
    assert settings.base_url == "https://survey.example.org"


@pytest.mark.parametrize(
    "url, kind, host, port, tls, user",
    [
        ("smtp://mail.example.org", "smtp", "mail.example.org", 25, "none", None),
        ("smtp://u%40x:p%3Aw@mail.example.org:587?starttls=1", "smtp", "mail.example.org", 587, "starttls", "u@x"),
        ("smtps://mail.example.org", "smtp", "mail.example.org", 465, "tls", None),
        ("maildir:///var/spool/survey", "maildir", "", 0, "none", None),
        ("./outgoing", "maildir", "", 0, "none", None),
    ],
)
def test_mail_urls(url, kind, host, port, tls, user):
    mail = load_settings({"SURVEYBOT_MAIL_URL": url}, env_file=None).mail
    assert (mail.kind, mail.host, mail.port, mail.tls, mail.username) == (kind, host, port, tls, user)


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("SURVEYBOT_SEND_RATE", "fast", "must be a number"),
        ("SURVEYBOT_SEND_RATE", "0", "greater than 0"),
        ("SURVEYBOT_MAIL_URL", "ftp://mail.example.org", "smtp://, smtps:// or maildir://"),
        ("SURVEYBOT_MAIL_URL", "smtp://mail.example.org:99999", "port"),
        ("SURVEYBOT_MAIL_URL", "smtp://", "names no host"),
        ("SURVEYBOT_FROM", "Survey team", "needs an e-mail address"),
        ("SURVEYBOT_BASE_URL", "survey.example.org", "http:// or https://"),
        ("SURVEYBOT_DB", "/no/such/folder/s.db", "does not exist"),
        ("SURVEYBOT_TEMPLATES", "/no/such/folder", "not an existing folder"),
        ("SURVEYBOT_SECRET", "short", "at least 16 characters"),
        # URLs urllib cannot even split are refused like any other bad value, not with a traceback
        ("SURVEYBOT_MAIL_URL", "smtp://[mail.example.org", "is not a URL"),
        ("SURVEYBOT_BOUNCE_MAILBOX", "imaps://u:p@[mail.example.org/INBOX", "is not a URL"),
        ("SURVEYBOT_BOUNCE_MAILBOX", "imaps://u:p@mail.example.org/INBOX?insecure=maybe", "insecure must be 1 or 0"),
        ("LIMESURVEY_URL", "https://[survey.example.org", "is not a URL"),
        ("QUALTRICS_BASE_URL", "https://fra1.qualtrics.com:port", "port"),
        ("SURVEYBOT_BASE_URL", "https://survey.example.org:99999", "port"),
        ("SURVEYBOT_NETWORK_TIMEOUT", "0s", "longer than 0s"),
        # durations so long that the dates computed from them would overflow are refused when read
        ("SURVEYBOT_NETWORK_TIMEOUT", "99999999999999999999d", "longer than the longest duration taken, 3650d"),
        ("SURVEYBOT_POLL_EVERY", "999999999d", "longer than the longest duration taken, 3650d"),
        ("SURVEYBOT_TRUSTED_PROXIES", "10.0.0.0/33", "not an IP address or CIDR range"),
    ],
)
def test_bad_setting_is_refused_naming_the_key(key, value, words):
    with pytest.raises(SettingError) as caught:
        load_settings({key: value}, env_file=None)
    message = str(caught.value)
    assert key in message and words in message and "\n" not in message


def test_secrets_are_not_echoed_in_errors():
    with pytest.raises(SettingError) as caught:
        load_settings({"SURVEYBOT_SECRET": "tooshort"}, env_file=None)
    assert "tooshort" not in str(caught.value)
    with pytest.raises(SettingError) as caught:
        load_settings({"SURVEYBOT_MAIL_URL": "smtp://user:hunter2@mail.example.org:x"}, env_file=None)
    assert "hunter2" not in str(caught.value)
    with pytest.raises(SettingError) as caught:
        load_settings({"SURVEYBOT_REPLY_MAILBOX": "imaps://user:hunter2@[mail.example.org/INBOX"}, env_file=None)
    assert "hunter2" not in str(caught.value) and "user:***@" in str(caught.value)


def test_cli_stops_with_one_line_for_a_bad_setting(run_cli):
    result = run_cli("contacts", "list", extra_env={"SURVEYBOT_SEND_RATE": "lots"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["Error: invalid setting SURVEYBOT_SEND_RATE='lots': must be a number"]


def test_every_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for key in DOCUMENTED:
        assert f"`{key}`" in readme, f"{key} is not in the README's settings table"


def test_readme_begins_with_the_run_and_test_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    blocks = [lines[i + 1] for i, line in enumerate(lines[:12]) if line.startswith("```sh")]
    assert len(blocks) == 2
    run, test = blocks
    assert "pip install -e ." in run and run.endswith("surveybot serve")
    assert "pip install -e '.[test]'" in test and ".venv/bin/pytest" in test.rsplit("&&", 1)[-1]
