"""surveybot installed from its wheel (not from this checkout) works: the e-mail and web templates ship inside
it, so it previews a wave in English and Spanish, sends a test wave and serves its pages.

The wheel is built from a copy of the sources, installed into a fresh virtualenv without touching the
index (its dependencies come from the running interpreter's site-packages through a .pth line), and run in
a folder far from the checkout with none of the test environment's settings."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.service import wave_create_args

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "setup.py", "README.md", "surveybot", "templates")
SHIPPED = (
    "surveybot/templates/email/invitation.en.txt.j2",
    "surveybot/templates/email/invitation.es.html.j2",
    "surveybot/templates/email/bilingual.txt.j2",
    "surveybot/templates/web/upload.html.j2",
    "surveybot/templates/web/static/localtime.js",
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """A wheel built from the sources, installed (not editable) into a new virtualenv."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(base / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (base / "dist").glob("surveybot-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the dependencies, from where the tests run; a plain path line does not run that folder's .pth files,
    # so the checkout's editable install stays out of sight
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    work = base / "work"
    work.mkdir()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SURVEYBOT_", "QUALTRICS_", "SURVEYMONKEY_", "PYTHON"))
    }
    return {"wheel": wheel, "venv": venv, "python": python, "work": work, "env": env}


def surveybot(installed: dict, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [installed["venv"] / "bin" / "surveybot", *args],
        cwd=installed["work"],
        env=installed["env"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"surveybot {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def test_the_wheel_holds_the_templates(installed):
    with zipfile.ZipFile(installed["wheel"]) as wheel:
        names = set(wheel.namelist())
    missing = [name for name in SHIPPED if name not in names]
    assert not missing, f"not in the wheel: {missing}"
    assert not [n for n in names if "__pycache__" in n or n.startswith("templates/")]


WHERE = "import surveybot.mail.render as r, surveybot.web.pages as p; print(r.BUILTIN); print(p.FOLDER)"


def test_installed_wheel_reads_its_own_templates(installed):
    where = subprocess.run(
        [installed["python"], "-c", WHERE],
        cwd=installed["work"],
        env=installed["env"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    packaged = installed["venv"].resolve() / "lib"
    assert [(Path(w).resolve().is_relative_to(packaged), Path(w).name, Path(w).is_dir()) for w in where] == [
        (True, "email", True),
        (True, "web", True),
    ], where


def test_installed_wheel_previews_and_test_sends_in_both_languages(installed):
    surveybot(
        installed,
        *wave_create_args(title="City diplomacy 2026", survey_id="SV_1"),
        "--survey-url-es",
        "https://survey.example.org/s-es",
    )
    english = surveybot(installed, "wave", "preview", "w", "--kind", "invitation", "--language", "en").stdout
    spanish = surveybot(installed, "wave", "preview", "w", "--kind", "invitation", "--language", "es").stdout
    assert "Subject: Invitation: City diplomacy 2026" in english
    assert "Subject: Invitación: City diplomacy 2026" in spanish
    assert "https://survey.example.org/s-es" in spanish
    surveybot(installed, "wave", "test-send", "w", "--to", "coordinator@example.org")
    sent = list((installed["work"] / "var" / "mail" / "new").iterdir())
    assert len(sent) == 12  # 4 kinds x (English, Spanish, both)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_installed_wheel_serves_pages(installed):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    service = subprocess.Popen(
        [installed["venv"] / "bin" / "surveybot", "serve", "--port", str(port)],
        cwd=installed["work"],
        env=installed["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and service.poll() is None:
            try:
                status = get(f"{base}/healthz")[0]
            except OSError:
                status = None
            if status == 200:
                break
            time.sleep(0.1)
        if status != 200:
            service.kill()
            pytest.fail(f"serve never answered /healthz with 200:\n{service.communicate()[1]}")
        status, page = get(f"{base}/upload")
        assert status == 200 and "Upload a contact list" in page
        assert get(f"{base}/static/localtime.js")[0] == 200
    finally:
        if service.poll() is None:
            service.send_signal(signal.SIGINT)
        try:
            _, stderr = service.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
            _, stderr = service.communicate()
    assert service.returncode == 0, stderr


def test_editable_install_reads_the_checkout_templates():
    """In a checkout the templates coordinators edit are the ones used (no stale copy elsewhere)."""
    from surveybot.mail.render import BUILTIN
    from surveybot.web.pages import FOLDER

    assert (BUILTIN, FOLDER) == (ROOT / "templates" / "email", ROOT / "templates" / "web")
