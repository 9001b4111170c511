"""The files in deploy/ work as written: the settings file lists every setting and, copied as it is, gives
the defaults; the systemd unit has its state directory, its hardening and reads the settings file the README
names; compose reads that file, restarts, pins its images and mounts the folder the README imports from; the
Dockerfile installs the wheel built from the same sources the packaging test installs. (Docker and systemd
do not run here: these are read, as their own parsers would.)"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from surveybot.config import DEFAULTS, DOCUMENTED, load_settings
from tests.test_packaging import SOURCES

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
README = (ROOT / "README.md").read_text(encoding="utf-8")
SETTING = re.compile(r"`([A-Z][A-Z0-9_]+)`")
# what systemd's EnvironmentFile=, compose's env_file and python-dotenv all read the same way
# (no '#' in a bare value: compose would take it for a comment; no $, ` or \\: each expands them its own way)
ENV_LINE = re.compile(r'^([A-Z][A-Z0-9_]*)=("[^"\\$`]*"|[^\s"\'#$`\\]([^"\'#$`\\]*[^\s"\'#$`\\])?|)$')


def readme_section(title: str) -> str:
    assert f"\n## {title}\n" in README, f"the README has no '## {title}' section"
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def readme_settings() -> list[str]:
    rows = [line for line in readme_section("Settings").splitlines() if line.startswith("| `")]
    return [name for row in rows for name in SETTING.findall(row.split("|")[1])]


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate((DEPLOY / ".env.example").read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = ENV_LINE.match(line)
        assert match, f".env.example line {number} is not KEY=value as systemd, compose and dotenv read it: {line!r}"
        key, value = match.group(1), match.group(2)
        assert key not in values, f".env.example sets {key} twice"
        values[key] = value.strip('"')
    return values


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False, comment_prefixes=("#", ";"))
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / name).read_text(encoding="utf-8"))
    return parser


def compose_services() -> dict[str, str]:
    """Each service's block of deploy/compose.yaml, as text."""
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    body = text.split("\nservices:\n", 1)[1].split("\nvolumes:\n", 1)[0]
    services: dict[str, str] = {}
    for block in re.split(r"\n(?=  [a-z][a-z0-9_-]*:\n)", "\n" + body):
        if block.strip():
            name, _, rest = block.strip("\n").partition(":\n")
            services[name.strip()] = rest
    return services


def test_env_example_lists_every_setting_of_the_readme():
    documented = readme_settings()
    assert len(documented) == len(set(documented))
    assert set(env_example()) == set(documented), "deploy/.env.example and the README's Settings table differ"
    assert set(documented) == set(DOCUMENTED), "the README's Settings table and surveybot.config.DOCUMENTED differ"


def test_env_example_as_written_gives_the_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    values = env_example()
    assert {k: values[k] for k in DEFAULTS} == DEFAULTS
    assert load_settings({}, env_file=DEPLOY / ".env.example") == load_settings({}, env_file=None)


def test_systemd_unit_has_its_state_directory_hardening_and_the_readme_settings_file():
    service = unit("surveybot.service")["Service"]
    state = f"/var/lib/{service['StateDirectory']}"
    assert service["WorkingDirectory"] == state
    assert state in service["ReadWritePaths"].split()
    assert (service["NoNewPrivileges"], service["ProtectSystem"]) == ("true", "strict")
    assert service["KillSignal"] == "SIGINT"
    settings_file = service["EnvironmentFile"]
    assert settings_file == "/etc/surveybot/surveybot.env"
    assert settings_file in README and settings_file in (DEPLOY / ".env.example").read_text()
    # the unit's header says how to make it from .env.example
    assert f"deploy/.env.example {settings_file}" in (DEPLOY / "surveybot.service").read_text()
    program = service["ExecStart"].split()[0]
    assert program.endswith("/bin/surveybot") and service["ExecStart"].split()[1] == "serve"
    backup = unit("surveybot-backup.service")["Service"]
    assert backup["EnvironmentFile"] == settings_file and backup["WorkingDirectory"] == state
    assert backup["ExecStart"].count(program) == 1


def test_compose_reads_the_settings_file_restarts_and_pins_its_images():
    services = compose_services()
    assert {"surveybot", "mailcatcher"} <= set(services)
    assert re.search(r"env_file:\n\s+- path: surveybot\.env\b", services["surveybot"])
    assert "deploy/surveybot.env" in README and "deploy/surveybot.env" in (DEPLOY / ".env.example").read_text()
    for name, block in services.items():
        assert re.search(r"\n    restart: (always|unless-stopped|on-failure)\n", "\n" + block), f"{name}: no restart"
        for image in re.findall(r"\n    image: (\S+)", "\n" + block):
            tag = image.rpartition(":")[2] if ":" in image.rsplit("/", 1)[-1] else ""
            assert tag and tag != "latest", f"{name}: image {image} is not pinned to a version"


def test_readme_shows_the_cli_in_the_container_and_a_csv_import_through_the_mounted_folder():
    deploy = readme_section("Deploy")
    surveybot = compose_services()["surveybot"]
    mount = re.search(r"- \./(\w+):(/\w+):ro\n", surveybot)
    assert mount, "compose mounts no folder for contact lists"
    host, container = mount.groups()
    assert "docker compose -f deploy/compose.yaml exec surveybot surveybot wave list" in deploy
    assert f"deploy/{host}/" in deploy
    assert re.search(rf"exec surveybot surveybot contacts import {container}/\S+\.csv --network", deploy)


def test_dockerfile_installs_the_wheel_built_from_the_packaged_sources():
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(stages) == 2, "a stage that builds the wheel, one that installs it"
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.MULTILINE).group(1)
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+", base), f"base image {base} not pinned to a release"
    build, runtime = text.split("\nFROM ", 2)[1:]
    copied = [name for line in re.findall(r"^COPY (?!--from)(.+)$", build, re.MULTILINE) for name in line.split()[:-1]]
    assert sorted(copied) == sorted(SOURCES), "the image builds its wheel from what tests/test_packaging.py checks"
    assert "pip wheel" in build and re.search(r"pip install [^\n]*\.whl", runtime)
    assert "-e ." not in text and "--editable" not in text
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") + 1 : ignore.index("*") + 1 + len(SOURCES)] == [
        f"!{name}/" if (ROOT / name).is_dir() else f"!{name}" for name in SOURCES
    ]
