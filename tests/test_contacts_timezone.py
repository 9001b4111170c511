"""``contacts list`` says each contact's time zone and where it comes from, and ``--no-timezone`` finds the
contacts whose working hours and closing times are unknown (they get UTC)."""

from __future__ import annotations

import json

CSV = (
    "name,email,city,country,timezone\n"
    "Ana Pérez,ana@bogota.example.org,Bogotá,Colombia,\n"  # derived from the city
    "Joe Bloggs,joe@leeds.example.org,Leeds,UK,Europe/Dublin\n"  # the list's own column wins
    "Kim Lee,kim@nowhere.example.org,Atlantis,Neverland,\n"  # nothing to derive from
    "Pat Doe,pat@x.example.org,,Colombia,\n"  # the whole country keeps one zone
    "Sam Roe,sam@y.example.org,Springfield,United States,\n"  # a city that is in several zones: unknown
)


def contacts(run_cli, *args: str) -> dict[str, dict]:
    listed = json.loads(run_cli("contacts", "list", "--json", *args, check=True).stdout)["contacts"]
    return {c["email"]: c for c in listed}


def test_json_gives_every_contact_its_zone_and_its_source(run_cli, tmp_path):
    (tmp_path / "list.csv").write_text(CSV, encoding="utf-8")
    run_cli("contacts", "import", "list.csv", "--network", "Metropolis", check=True)
    listed = contacts(run_cli)
    found = {email: (c["timezone"], c["timezone_source"]) for email, c in listed.items()}
    assert found["ana@bogota.example.org"] == ("America/Bogota", "city")
    assert found["joe@leeds.example.org"] == ("Europe/Dublin", "import")
    assert found["kim@nowhere.example.org"] == ("", "none")
    assert found["pat@x.example.org"] == ("America/Bogota", "country")
    assert found["sam@y.example.org"][1] in ("city", "none")  # whichever the gazetteer holds, said so


def test_no_timezone_lists_only_the_contacts_without_one(run_cli, tmp_path):
    (tmp_path / "list.csv").write_text(CSV, encoding="utf-8")
    run_cli("contacts", "import", "list.csv", "--network", "Metropolis", check=True)
    unknown = {email for email, c in contacts(run_cli).items() if not c["timezone"]}
    assert "kim@nowhere.example.org" in unknown
    listed = contacts(run_cli, "--no-timezone")
    assert set(listed) == unknown
    assert all(c["timezone_source"] == "none" for c in listed.values())

    human = run_cli("contacts", "list", "--no-timezone", check=True).stdout
    assert "kim@nowhere.example.org" in human
    assert "ana@bogota.example.org" not in human and "joe@leeds.example.org" not in human
    assert f"{len(unknown)} contact" in human.splitlines()[-1] and "no time zone" in human.splitlines()[-1]

    everyone = run_cli("contacts", "list", check=True).stdout
    assert "America/Bogota (city)" in everyone  # a derived zone is shown as the guess it is
    assert "Europe/Dublin" in everyone


def test_no_timezone_says_so_when_every_contact_has_one(run_cli, tmp_path):
    (tmp_path / "list.csv").write_text(CSV.splitlines()[0] + "\n" + CSV.splitlines()[1] + "\n", encoding="utf-8")
    run_cli("contacts", "import", "list.csv", "--network", "Metropolis", check=True)
    assert contacts(run_cli, "--no-timezone") == {}
    assert "has a time zone" in run_cli("contacts", "list", "--no-timezone", check=True).stdout
