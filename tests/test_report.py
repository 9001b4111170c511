"""The field report: AAPOR dispositions and rates checked against figures computed by hand, in every format,
from the CLI and the API."""

from __future__ import annotations

import csv
import json

import aiohttp
import pytest

from surveybot import plan, responses, tokens, waves
from surveybot.clock import utcnow
from surveybot.db import open_db
from surveybot.platforms import ResponseEvent
from surveybot.recipients import survey_token
from surveybot.reports import method
from surveybot.reports.method import field_report
from surveybot.signing import service_secret
from surveybot.suppressions import suppress
from tests.service import import_rows, running, settings_for


def field(tmp_path, rows_by_network: dict[str, list[str]], title: str = "City diplomacy 2026"):
    settings = settings_for(tmp_path, "maildir://" + str(tmp_path / "mail"))
    for network, rows in rows_by_network.items():
        import_rows(settings, rows, network=network, name=f"{network}.csv")
    db = open_db(settings.db_path)
    waves.create_wave(
        db,
        waves.WaveSpec(
            slug="city", title=title, platform="signed", survey_id="S1", survey_url="https://survey.example.org/s1"
        ),
        utcnow(),
    )
    waves.launch(db, "city", utcnow())
    secret = service_secret(db, None)
    plan.run_due(db, secret, utcnow())
    wave = waves.get_wave(db, "city")
    tokens_by_email = {
        email: survey_token(secret, wave["id"], cid) for cid, email in db.execute("SELECT id, email FROM contacts")
    }
    return settings, db, wave, tokens_by_email


def answer(db, wave, response_id: str, token: str | None, *, finished: bool = True, progress: int | None = None):
    event = ResponseEvent(
        platform="signed",
        response_id=response_id,
        finished=finished,
        token=token,
        answers={"q1": "x"},
        progress=progress if progress is not None else (100 if finished else 0),
    )
    return responses.record(db, wave, event, utcnow())


SMALL = {
    "Metropolis": [
        "A One,a1@x.example.org,Quito,Ecuador,Latin America,es",
        "A Two,a2@x.example.org,Lima,Peru,Latin America,es",
        "A Three,a3@x.example.org,Lyon,France,Europe,en",
        "B One,b1@x.example.org,Oslo,Norway,Europe,en",
        "B Two,b2@x.example.org,Seoul,Korea,Asia,en",
    ],
    "CityNet": [
        "B Two,b2@x.example.org,Seoul,Korea,Asia,en",
        "C One,c1@x.example.org,Hanoi,Vietnam,Asia,",
        "C Two,c2@x.example.org,Manila,Philippines,Asia,en",
        "D One,d1@x.example.org,Delhi,India,Asia,en",
        "D Two,d2@x.example.org,Dhaka,Bangladesh,Asia,en",
        "D Three,d3@x.example.org,Tokyo,Japan,Asia,en",
    ],
}


def small_case(tmp_path):
    """Every disposition once at least, with its hand-coded answer:
    a1 complete twice → I; a2 partial 40 then complete → I; a3 complete → I;
    b1 partial 60 → P; b2 (both networks) partial 20 then partial 80 → P;
    c1 partial 30 → R (break-off); c2 opted out → R;
    d1 hard bounce → UO; d2, d3 no reaction → UO; one response with a stranger's token: not a case."""
    settings, db, wave, t = field(tmp_path, SMALL)
    answer(db, wave, "a1-1", t["a1@x.example.org"])
    answer(db, wave, "a1-2", t["a1@x.example.org"])
    answer(db, wave, "a2-p", t["a2@x.example.org"], finished=False, progress=40)
    answer(db, wave, "a2-c", t["a2@x.example.org"])
    answer(db, wave, "a3", t["a3@x.example.org"])
    answer(db, wave, "b1", t["b1@x.example.org"], finished=False, progress=60)
    answer(db, wave, "b2-1", t["b2@x.example.org"], finished=False, progress=20)
    answer(db, wave, "b2-2", t["b2@x.example.org"], finished=False, progress=80)
    answer(db, wave, "c1", t["c1@x.example.org"], finished=False, progress=30)
    suppress(db, "c2@x.example.org", "opt_out", "unsubscribe link")
    suppress(db, "d1@x.example.org", "bounce", "550 5.1.1 no such user")
    answer(db, wave, "stranger", "not-a-token")
    return settings, db, wave


def test_dispositions_and_rates_match_a_case_computed_by_hand(tmp_path):
    _, db, wave = small_case(tmp_path)
    report = field_report(db, wave)
    assert report["dispositions"] == {"I": 3, "P": 2, "R": 2, "NC": 0, "O": 0, "UH": 0, "UO": 3, "NE": 0}
    assert report["rr1"] == pytest.approx(3 / 10) and report["rr2"] == pytest.approx(5 / 10)
    assert report["coop1"] == pytest.approx(3 / 7) and report["ref1"] == pytest.approx(2 / 10)
    assert report["con1"] == pytest.approx(7 / 10)
    # b2 is listed by both networks and counts in both
    metropolis, citynet = report["by_network"]["Metropolis"], report["by_network"]["CityNet"]
    assert metropolis["dispositions"]["I"] == 3 and metropolis["dispositions"]["P"] == 2
    assert sum(metropolis["dispositions"].values()) == 5
    assert citynet["dispositions"] == {"I": 0, "P": 1, "R": 2, "NC": 0, "O": 0, "UH": 0, "UO": 3, "NE": 0}
    assert citynet["rr1"] == 0 and citynet["coop1"] == 0 and citynet["con1"] == pytest.approx(3 / 6)
    assert report["by_region"]["Europe"]["dispositions"]["I"] == 1
    assert set(report["by_language"]) == {"en", "es", "en+es"}
    # the threshold decides between P and R: at 70, b1's 60 % becomes a break-off
    stricter = field_report(db, wave, threshold=70)
    assert (stricter["dispositions"]["P"], stricter["dispositions"]["R"]) == (1, 3)
    method = report["method"]
    assert (method["invited"], method["complete"], method["partial_discarded"], method["unmatched"]) == (10, 3, 5, 1)
    assert (method["opt_outs"], method["bounces"], method["networks"]) == (1, 1, ["CityNet", "Metropolis"])


def test_a_group_with_no_cases_has_null_rates_not_an_error(tmp_path):
    _, db, wave, _ = field(tmp_path, {"Metropolis": ["A One,a1@x.example.org,Quito,Ecuador,,es"]})
    report = field_report(db, wave, network="Eurocities")
    assert report["dispositions"]["UO"] == 0 and report["rr1"] is None and report["coop1"] is None


def test_the_seed_sized_wave_gives_the_published_rates(tmp_path):
    """100 invited, 49 complete, 12 partial above the threshold, 1 opt-out, 38 no reaction."""
    rows = [
        f"Officer {n},o{n}@city{n}.example.org,City {n},Country {n % 30},Region {n % 4},{'es' if n % 2 else 'en'}"
        for n in range(100)
    ]
    _, db, wave, t = field(tmp_path, {"Metropolis": rows[:40], "CityNet": rows[40:70], "Eurocities": rows[70:]})
    for n in range(49):
        answer(db, wave, f"c{n}", t[f"o{n}@city{n}.example.org"])
    for n in range(49, 61):
        answer(db, wave, f"p{n}", t[f"o{n}@city{n}.example.org"], finished=False, progress=75)
    suppress(db, "o61@city61.example.org", "opt_out")
    report = field_report(db, wave)
    assert report["dispositions"] == {"I": 49, "P": 12, "R": 1, "NC": 0, "O": 0, "UH": 0, "UO": 38, "NE": 0}
    rounded = {k: round(report[k], 2) for k in ("rr1", "rr2", "coop1", "ref1", "con1")}
    assert rounded == {"rr1": 0.49, "rr2": 0.61, "coop1": 0.79, "ref1": 0.01, "con1": 0.62}
    assert sum(g["dispositions"]["I"] for g in report["by_network"].values()) == 49


def test_report_command_in_every_format_and_language(tmp_path, run_cli):
    settings, db, wave = small_case(tmp_path)
    db.execute("UPDATE waves SET title = ? WHERE id = ?", ["<script>alert(1)</script> | survey", wave["id"]])
    db.execute("UPDATE contact_sources SET network = '=HYPERLINK(\"x\")' WHERE network = 'CityNet'")
    db.conn.commit()
    as_json = json.loads(run_cli("report", "city", "--format", "json", check=True).stdout)
    assert set(as_json) >= {
        "dispositions",
        "rr1",
        "rr2",
        "coop1",
        "ref1",
        "con1",
        "by_network",
        "by_region",
        "by_language",
        "method",
    }
    assert as_json["dispositions"]["I"] == 3 and 0 <= as_json["rr1"] <= 1
    english = run_cli("report", "city", check=True).stdout
    assert "sent to 10 officers" in english and "RR1" in english and "| Invited | 10 |" in english
    assert "\\| survey" in english  # a pipe in the title cannot break the Markdown table
    spanish = run_cli("report", "city", "--language", "es", check=True).stdout
    assert "se envió a 10 responsables" in spanish and "Informe de campo" in spanish
    run_cli("report", "city", "--format", "html", "--output", str(tmp_path / "r.html"), check=True)
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    run_cli("report", "city", "--format", "csv", "--output", str(tmp_path / "r.csv"), check=True)
    with open(tmp_path / "r.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["group_kind"] == "overall" and rows[0]["I"] == "3" and rows[0]["rr1"] == "0.30"
    assert any(r["group"] == '\'=HYPERLINK("x")' for r in rows)  # a network name cannot run as a formula
    assert run_cli("report", "nope").returncode == 1
    for command in (["report", "city"], ["responses", "export", "city"]):  # an --output that cannot be written
        refused = run_cli(*command, "--output", str(tmp_path / "no-such-folder" / "out.txt"))
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert f"cannot write {tmp_path / 'no-such-folder' / 'out.txt'}: No such file or directory" in refused.stderr
    threshold = run_cli("report", "city", "--format", "json", "--partial-threshold", "70", check=True).stdout
    assert json.loads(threshold)["dispositions"]["R"] == 3


async def test_the_report_api_answers_coordinators_only_with_the_same_json(tmp_path, run_cli):
    settings, db, wave = small_case(tmp_path)
    coordinator = tokens.create(db, "coordinator", None, utcnow())[1]
    network = tokens.create(db, "network", "Metropolis", utcnow())[1]
    expected = json.loads(run_cli("report", "city", "--format", "json", check=True).stdout)
    async with running(settings) as (_, base), aiohttp.ClientSession() as session:

        async def get(path: str, token: str | None = None):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with session.get(f"{base}{path}", headers=headers) as response:
                return response.status, await response.json()

        status, body = await get("/api/waves/city/report", coordinator)
        assert status == 200 and body == expected
        assert (await get("/api/waves/city/report?language=es", coordinator))[1]["method"]["paragraph"].startswith(
            "La encuesta"
        )
        assert (await get("/api/waves/city/report", network))[0] == 403
        assert (await get("/api/waves/city/report"))[0] == 401
        assert (await get("/api/waves/city/report", "sbt_forged"))[0] == 401
        # a wave not found is said without the server's file or the other waves' names (the CLI gives both)
        assert await get("/api/waves/nope/report", coordinator) == (404, {"error": "no wave named 'nope'"})
        assert (await get("/api/waves/city/report?partial_threshold=x", coordinator))[0] == 400


PARAGRAPH_FACTS = {
    "field_period": {"start": "2026-03-02T09:00:00+00:00", "end": "2026-03-16T09:00:00+00:00"},
    "networks": ["CityNet", "Eurocities", "Metropolis"],
    "reminders": ["2026-03-09T09:00:00+00:00", "2026-03-13T09:00:00+00:00"],
    "languages": ["en", "es"],
    "platform": "qualtrics",
    "invited": 100,
    "countries": 41,
    "complete": 49,
    "cities": 47,
    "duplicate_cities": 2,
    "partial_discarded": 12,
}
PARAGRAPH_FIGURES = {"rr1": 0.49, "rr2": 0.5, "coop1": 0.8, "ref1": 0.02, "con1": 0.61}


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "en",
            "The survey, in English and Spanish on Qualtrics, was sent to 100 officers in 41 countries through 3 "
            "partner networks (CityNet, Eurocities and Metropolis) and was open from 2 March 2026 to 16 March 2026, "
            "with reminders on 9 March 2026 and 13 March 2026. 49 complete responses from 47 cities were kept (2 of "
            "those cities answered more than once); 12 partial responses were discarded. The response rate (AAPOR "
            "RR1) was 49% (RR2 50%; cooperation rate COOP1 80%; refusal rate REF1 2%; contact rate CON1 61%).",
        ),
        (
            "es",
            "La encuesta, en inglés y español y alojada en Qualtrics, se envió a 100 responsables en 41 países a "
            "través de 3 redes asociadas (CityNet, Eurocities y Metropolis) y estuvo abierta del 2 de marzo de 2026 "
            "al 16 de marzo de 2026, con recordatorios el 9 de marzo de 2026 y 13 de marzo de 2026. Se conservaron "
            "49 respuestas completas de 47 ciudades (en 2 ciudades respondió más de una persona); se descartaron 12 "
            "respuestas parciales. La tasa de respuesta (AAPOR RR1) fue del 49% (RR2 50%; tasa de cooperación COOP1 "
            "80%; tasa de rechazo REF1 2%; tasa de contacto CON1 61%).",
        ),
    ],
)
def test_the_method_paragraph_reads_whole_in_each_language(language, expected):
    assert method.paragraph(PARAGRAPH_FACTS, PARAGRAPH_FIGURES, language) == expected


def test_the_method_paragraph_leaves_out_what_did_not_happen():
    facts = {**PARAGRAPH_FACTS, "networks": [], "reminders": [], "duplicate_cities": 0}
    english = method.paragraph(facts, PARAGRAPH_FIGURES, "en")
    assert "officers in 41 countries and was open from 2 March 2026 to 16 March 2026. 49 complete" in english
    assert "partner networks" not in english and "reminders" not in english and "more than once" not in english
    spanish = method.paragraph(facts, PARAGRAPH_FIGURES, "es")
    assert "41 países y estuvo abierta del 2 de marzo de 2026 al 16 de marzo de 2026. Se conservaron 49" in spanish
    assert "redes" not in spanish and "recordatorios" not in spanish


def test_away_for_the_whole_field_period_is_a_non_contact(tmp_path):
    """An automatic reply to every survey message the relay took makes NC; one that covered only the
    invitation, while a reminder went unanswered, stays a no-reaction UO; a reply without anything sent
    proves nothing."""
    from surveybot.mailbox.store import record_reply

    _, db, wave, _ = field(
        tmp_path,
        {
            "Metropolis": [
                "D One,d1@x.example.org,Delhi,India,Asia,en",
                "D Two,d2@x.example.org,Dhaka,Bangladesh,Asia,en",
                "D Three,d3@x.example.org,Tokyo,Japan,Asia,en",
            ]
        },
    )
    ids = dict(db.execute("SELECT email, id FROM contacts").fetchall())
    db.execute("UPDATE outbox SET state = 'sent' WHERE kind = 'invitation' AND to_email != 'd3@x.example.org'")
    db.execute(
        "INSERT INTO outbox (key, wave_id, contact_id, kind, to_email, state, due_at, created_at) "
        "SELECT key || ':r', wave_id, contact_id, 'reminder', to_email, 'sent', due_at, created_at FROM outbox "
        "WHERE kind = 'invitation' AND to_email = 'd2@x.example.org'"
    )

    def away(email: str, n: int) -> None:
        fields = {"wave_id": wave["id"], "contact_id": ids[email], "subject": "Out of office"}
        record_reply(db, f"{email}-{n}", "auto_reply", fields, utcnow())

    away("d1@x.example.org", 1)  # invitation only, and it was answered: away all along
    away("d2@x.example.org", 1)  # invitation answered, the reminder not: back at some point
    away("d3@x.example.org", 1)  # nothing of the survey was sent to them
    db.conn.commit()
    assert field_report(db, wave)["dispositions"] == {
        "I": 0,
        "P": 0,
        "R": 0,
        "NC": 1,
        "O": 0,
        "UH": 0,
        "UO": 2,
        "NE": 0,
    }
    away("d2@x.example.org", 2)
    db.conn.commit()
    assert field_report(db, wave)["dispositions"]["NC"] == 2


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "en",
            "The survey, in English on a web survey platform, was sent to 1 officer in 1 country through 1 partner "
            "network (CityNet) and was open from 2 March 2026 to 16 March 2026, with a reminder on 9 March 2026. 1 "
            "complete response from 1 city was kept (1 of those cities answered more than once); 1 partial response "
            "was discarded.",
        ),
        (
            "es",
            "La encuesta, en español y alojada en una plataforma de encuestas web, se envió a 1 responsable en 1 país "
            "a través de 1 red asociada (CityNet) y estuvo abierta del 2 de marzo de 2026 al 16 de marzo de 2026, con "
            "un recordatorio el 9 de marzo de 2026. Se conservó 1 respuesta completa de 1 ciudad (en 1 ciudad "
            "respondió más de una persona); se descartó 1 respuesta parcial.",
        ),
    ],
)
def test_the_method_paragraph_says_one_of_each_in_the_singular_and_names_the_platform_in_its_language(
    language, expected
):
    one = {
        **PARAGRAPH_FACTS,
        "networks": ["CityNet"],
        "reminders": PARAGRAPH_FACTS["reminders"][:1],
        "languages": [language],
        "platform": "signed",
        **dict.fromkeys(("invited", "countries", "complete", "cities", "duplicate_cities", "partial_discarded"), 1),
    }
    assert method.paragraph(one, PARAGRAPH_FIGURES, language).startswith(expected)
