"""A partner network sees and changes only its own listing of a contact; a coordinator sees all and chooses.

Through the real service (aiohttp app, real tokens, real SQLite file) and the real command line.
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from surveybot.contacts.importer import import_contacts
from surveybot.db import open_db
from surveybot.suppressions import suppress
from tests.service import running, settings_for, upload_service_db

EVE = "eve@lyon.example.org"  # listed by Eurocities (upload_service_db): Eve Euro, Lyon, France, Europe, en
STRANGER = "nobody.known@nowhere.example.org"  # listed by nobody
VALUES = ("name", "city", "country", "region", "language", "position", "timezone")


def probe(email: str) -> bytes:
    """What a curious network would send: other values for an address, and the blanks Eve's record has."""
    return (f"E-mail,Full name,City,Language,Timezone,Role\n{email},Mallory Spy,Paris,es,Asia/Tokyo,Mayor\n").encode()


def contact_row(settings, email: str) -> dict:
    conn = sqlite3.connect(settings.db_path)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM contacts WHERE email = ?", (email,)).fetchone()
    finally:
        conn.close()
    return {k: row[k] for k in (*VALUES, "attributes", "values_from")} if row else {}


def private(report: dict, email: str) -> dict:
    """The report with the address it speaks of blanked out, and without what differs on every upload."""
    data = {k: v for k, v in report.items() if k not in ("upload_id",)}
    return json.loads(json.dumps(data).replace(email, "ADDRESS"))


@pytest.fixture
async def service(tmp_path):
    settings = settings_for(tmp_path, f"maildir://{tmp_path / 'mail'}")
    db, made = upload_service_db(settings)
    suppress(db, EVE, "opt_out", "asked not to be mailed")
    async with running(settings) as (app, base), aiohttp.ClientSession() as session:
        yield {"db": db, "base": base, "session": session, "tokens": made, "settings": settings}
    db.close()


async def upload(service, who: str, network: str, body: bytes, query: str = "") -> dict:
    headers = {"Content-Type": "text/csv", "Authorization": f"Bearer {service['tokens'][who]}"}
    url = f"{service['base']}/api/networks/{network}/contacts{query}"
    async with service["session"].post(url, data=io.BytesIO(body), headers=headers) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def listing(service, who: str, network: str) -> list[dict]:
    headers = {"Authorization": f"Bearer {service['tokens'][who]}"}
    async with service["session"].get(
        f"{service['base']}/api/networks/{network}/contacts", headers=headers
    ) as response:
        assert response.status == 200
        return (await response.json())["contacts"]


async def test_a_networks_upload_of_another_networks_address_reveals_and_changes_nothing(service):
    eve_before = contact_row(service["settings"], EVE)
    for query in ("?dry_run=1", ""):
        about_eve = await upload(service, "metropolis", "Metropolis", probe(EVE), query)
        about_stranger = await upload(service, "metropolis", "Metropolis", probe(STRANGER), query)
        # Eve is known to Eurocities, suppressed and holds other values: the report says what it says of a
        # stranger, word for word.
        assert private(about_eve, EVE) == private(about_stranger, STRANGER)
        assert about_eve["imported"] == 1 and about_eve["conflicts"] == 0 and about_eve["suppressed"] == 0
        assert about_eve["conflict_details"] == [] and about_eve["changes"] == []
        assert "Eve Euro" not in json.dumps(about_eve) and "Lyon" not in json.dumps(about_eve)
    # The values Eve's e-mail uses are Eurocities' still: not overwritten, no blank filled.
    assert contact_row(service["settings"], EVE) == eve_before
    assert (eve_before["name"], eve_before["language"], eve_before["timezone"], eve_before["position"]) == (
        "Eve Euro",
        "en",
        "",
        "",
    )
    # Metropolis sees its own listing, and no word of Eurocities.
    seen = {c["email"]: c for c in await listing(service, "metropolis", "Metropolis")}
    assert seen[EVE] == {
        "email": EVE,
        "name": "Mallory Spy",
        "city": "Paris",
        "country": "",
        "region": "",
        "language": "es",
        "networks": ["Metropolis"],
    }
    # Uploading again is a duplicate in its own listing; a bare address adds nothing and learns nothing.
    again = await upload(service, "metropolis", "Metropolis", f"email\n{EVE}\n".encode())
    assert (again["imported"], again["duplicates"], again["conflicts"], again["suppressed"]) == (0, 1, 0, 0)
    assert contact_row(service["settings"], EVE) == eve_before


async def test_a_bare_address_gives_a_network_only_its_own_blank_listing(service):
    report = await upload(service, "metropolis", "Metropolis", f"email\n{EVE}\n".encode())
    assert report["imported"] == 1 and report["changes"] == [] and report["conflict_details"] == []
    assert await listing(service, "metropolis", "Metropolis") == [
        {"email": EVE, "name": "", "city": "", "country": "", "region": "", "language": "", "networks": ["Metropolis"]}
    ]
    # Eurocities' own view is unchanged: its values, and only its name.
    assert await listing(service, "eurocities", "Eurocities") == [
        {
            "email": EVE,
            "name": "Eve Euro",
            "city": "Lyon",
            "country": "France",
            "region": "Europe",
            "language": "en",
            "networks": ["Eurocities"],
        }
    ]
    # The coordinator reading Metropolis through the API sees Metropolis' listing too.
    assert [c["name"] for c in await listing(service, "coordinator", "Metropolis")] == [""]


async def test_the_upload_page_for_a_network_shows_no_other_networks_values(service):
    form = aiohttp.FormData()
    form.add_field("token", service["tokens"]["metropolis"])
    form.add_field("dry_run", "1")
    form.add_field("file", probe(EVE), filename="probe.csv", content_type="text/csv")
    async with service["session"].post(f"{service['base']}/upload", data=form) as response:
        page = await response.text()
    assert response.status == 200
    assert 'data-key="imported">1<' in page and 'data-key="conflicts">0<' in page
    assert "Eve Euro" not in page and "Lyon" not in page and 'id="conflicts"' not in page


async def test_a_networks_own_contact_takes_its_later_fills_but_never_anothers(service):
    first = b"email,name,city\nnew.person@rome.example.org,Nuova Persona,\n"
    await upload(service, "metropolis", "Metropolis", first)
    await upload(
        service, "metropolis", "Metropolis", b"email,city,timezone\nnew.person@rome.example.org,Roma,Europe/Rome\n"
    )
    assert contact_row(service["settings"], "new.person@rome.example.org")["city"] == "Roma"
    # Another network listing the same person keeps its values to its own listing.
    report = await upload(
        service, "eurocities", "Eurocities", b"email,name,position\nnew.person@rome.example.org,Someone Else,Clerk\n"
    )
    assert report["imported"] == 1 and report["conflict_details"] == []
    row = contact_row(service["settings"], "new.person@rome.example.org")
    assert (row["name"], row["city"], row["timezone"], row["position"]) == ("Nuova Persona", "Roma", "Europe/Rome", "")


async def test_a_coordinator_import_still_fills_blanks_and_reports_conflicts(service):
    report = await upload(service, "coordinator", "Metropolis", probe(EVE))
    assert (report["imported"], report["updated"], report["conflicts"], report["suppressed"]) == (0, 1, 1, 1)
    assert sorted((c["field"], c["current"], c["proposed"]) for c in report["conflict_details"]) == [
        ("city", "Lyon", "Paris"),
        ("language", "en", "es"),
        ("name", "Eve Euro", "Mallory Spy"),
    ]
    assert sorted(c["field"] for c in report["changes"]) == ["position", "timezone"]
    row = contact_row(service["settings"], EVE)
    assert (row["name"], row["city"], row["timezone"], row["position"]) == ("Eve Euro", "Lyon", "Asia/Tokyo", "Mayor")
    # The coordinator's import wrote Metropolis' own listing as the file gave it.
    [own] = await listing(service, "metropolis", "Metropolis")
    assert (own["name"], own["city"], own["language"]) == ("Mallory Spy", "Paris", "es")


def test_the_coordinator_chooses_which_listing_a_contact_uses(tmp_path, run_cli):
    (tmp_path / "euro.csv").write_text("email,name,city,language\nana@x.example.org,Ana Euro,Lyon,en\n")
    (tmp_path / "metro.csv").write_text("email,name,city,timezone\nana@x.example.org,Ana Metro,Paris,Europe/Paris\n")
    run_cli("contacts", "import", "euro.csv", "--network", "Eurocities", check=True)
    conflicts = json.loads(
        run_cli("contacts", "import", "metro.csv", "--network", "Metropolis", "--json", check=True).stdout
    )
    assert conflicts["conflicts"] == 1 and {c["field"] for c in conflicts["conflict_details"]} == {"name", "city"}

    def listed() -> dict:
        return json.loads(run_cli("contacts", "list", "--json", check=True).stdout)["contacts"][0]

    merged = listed()
    assert (merged["name"], merged["city"], merged["language"], merged["timezone"], merged["values_from"]) == (
        "Ana Euro",
        "Lyon",
        "en",
        "Europe/Paris",
        "",
    )
    assert [(li["network"], li["name"], li["city"]) for li in merged["listings"]] == [
        ("Eurocities", "Ana Euro", "Lyon"),
        ("Metropolis", "Ana Metro", "Paris"),
    ]

    used = run_cli("contacts", "use", "Ana@X.example.org", "--network", "metropolis", check=True)
    assert "Metropolis" in used.stdout and "'Ana Euro' -> 'Ana Metro'" in used.stdout
    chosen = listed()
    assert (chosen["name"], chosen["city"], chosen["language"], chosen["values_from"]) == (
        "Ana Metro",
        "Paris",
        "",
        "Metropolis",
    )
    assert run_cli("contacts", "list", check=True).stdout.splitlines()[1].split("  ")[-1] == "Metropolis"

    back = json.loads(run_cli("contacts", "use", "ana@x.example.org", "--merged", "--json", check=True).stdout)
    assert back["values_from"] == "" and back["values"]["name"] == "Ana Euro"
    assert listed()["city"] == "Lyon"

    for args, message in (
        (("--network", "Nowhere"), "no listing by 'Nowhere'"),
        ((), "--network NAME or --merged"),
        (("--network", "Metropolis", "--merged"), "--network NAME or --merged"),
    ):
        refused = run_cli("contacts", "use", "ana@x.example.org", *args)
        assert refused.returncode != 0 and message in refused.stderr
    missing = run_cli("contacts", "use", "zed@x.example.org", "--merged")
    assert missing.returncode == 1 and "no contact 'zed@x.example.org'" in missing.stderr
    assert "--merged" in run_cli("contacts", "use", "--help", check=True).stdout


def test_a_chosen_networks_later_uploads_fill_the_contact_and_no_one_elses(tmp_path):
    from surveybot.contacts.merge import use_values

    db = open_db(tmp_path / "s.db")

    def csv(name: str, text: str) -> Path:
        (tmp_path / name).write_text(text)
        return tmp_path / name

    import_contacts(db, csv("e.csv", "email,name\nana@x.example.org,Ana Euro\n"), "Eurocities", by="network")
    import_contacts(db, csv("m.csv", "email,name\nana@x.example.org,Ana Metro\n"), "Metropolis", by="network")
    import_contacts(db, csv("m2.csv", "email,language\nana@x.example.org,es\n"), "Metropolis", by="network")
    assert db.execute("SELECT name, language FROM contacts").fetchone() == ("Ana Euro", "")
    use_values(db, "ana@x.example.org", "Metropolis")
    import_contacts(db, csv("m3.csv", "email,timezone\nana@x.example.org,Europe/Paris\n"), "Metropolis", by="network")
    import_contacts(db, csv("e2.csv", "email,position\nana@x.example.org,Mayor\n"), "Eurocities", by="network")
    assert db.execute("SELECT name, language, timezone, position, values_from FROM contacts").fetchone() == (
        "Ana Metro",
        "es",
        "Europe/Paris",
        "",
        "Metropolis",
    )
    db.close()
