"""Whatever a stranger sends: the CSV importer and every webhook parser answer with a result or a clear
refusal — never a crash — and every row of a file is accounted for."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from surveybot.contacts.importer import import_contacts
from surveybot.db import open_db
from surveybot.errors import FileRefused, InvalidInput
from surveybot.platforms import (
    ApiError,
    FetchNeeded,
    ResponseEvent,
    WebhookContext,
    WebhookRejected,
    qualtrics,
    signed,
    surveymonkey,
    typeform,
)
from tests.service import settings_for

CELLS = st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["ana@x.example.org", "=1+1", "Bogotá", "", '"', "\r\n", "@", ";", "\t", "x" * 70 + "@y.org", "josé@x.org"]
)
ROWS = st.lists(st.lists(CELLS, min_size=1, max_size=6), max_size=12)


def _csv(header: list[str], rows: list[list[str]], delimiter: str) -> str:
    return "\n".join(delimiter.join(cells) for cells in [header, *rows]) + "\n"


@given(
    rows=ROWS,
    delimiter=st.sampled_from([",", ";", "\t"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]),
)
def test_any_csv_text_is_imported_or_refused_whole_and_every_row_is_counted(rows, delimiter, encoding):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "list.csv"
        text = _csv(["name", "email", "city", "language"], rows, delimiter)
        path.write_bytes(text.encode(encoding, errors="replace"))
        db = open_db(Path(folder) / "s.db")
        try:
            report = import_contacts(db, path, "Metropolis")
        except (FileRefused, InvalidInput) as refused:
            assert str(refused)
            assert db.execute("SELECT count(*) FROM contacts").fetchone()[0] == 0, "refused whole: nothing written"
            return
        finally:
            db.close()
        assert report.rows == report.imported + report.updated + report.duplicates + report.rejected


@given(data=st.binary(max_size=400))
def test_any_bytes_are_imported_or_refused_whole(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "list.csv"
        path.write_bytes(data)
        db = open_db(Path(folder) / "s.db")
        try:
            report = import_contacts(db, path, "Metropolis")
            assert report.rows == report.imported + report.updated + report.duplicates + report.rejected
        except (FileRefused, InvalidInput):
            assert db.execute("SELECT count(*) FROM contacts").fetchone()[0] == 0, "refused whole: nothing written"
        finally:
            db.close()


WAVE = {
    "id": 1,
    "slug": "w",
    "platform": "signed",
    "survey_id": "S1",
    "required": [],
    "interview_question": "",
    "interview_yes": "",
}
SETTINGS = settings_for(
    Path(tempfile.gettempdir()),
    "maildir://" + tempfile.gettempdir() + "/unused",
    SURVEYMONKEY_API_SECRET="sm-secret",
    SURVEYMONKEY_API_KEY="sm-key",
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _context(platform: str) -> WebhookContext:
    return WebhookContext({**WAVE, "platform": platform}, "signing-secret-of-the-wave", SETTINGS, time.time())


def _refused_or_parsed(adapter, body: bytes, headers: dict, content_type: str) -> None:
    try:
        result = adapter.receive(body, headers, content_type, _context(adapter.NAME))
    except WebhookRejected as refused:
        assert 400 <= refused.status < 500
        return
    assert isinstance(result, (ResponseEvent, FetchNeeded))


@given(
    body=st.binary(max_size=300),
    content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain", ""]),
)
def test_any_body_to_any_adapter_is_parsed_or_refused(body, content_type):
    for adapter in (qualtrics, typeform, surveymonkey, signed):
        _refused_or_parsed(adapter, body, {}, content_type)


@given(payload=JSON, kind=st.sampled_from(["response.completed", "response.partial", "other"]))
def test_correctly_signed_json_of_any_shape_is_parsed_or_refused(payload, kind):
    """Past the signature check, the parsers meet every shape the sender could give."""
    import json

    body = json.dumps({"type": kind, "data": payload}).encode()
    stamp = int(time.time())
    whsec = signed.whsec("signing-secret-of-the-wave")
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": signed.sign(whsec, "msg_1", stamp, body),
    }
    _refused_or_parsed(signed, body, headers, "application/json")
    form = json.dumps({"event_type": "form_response", "form_response": payload}).encode()
    _refused_or_parsed(
        typeform,
        form,
        {"Typeform-Signature": typeform.signature("signing-secret-of-the-wave", form)},
        "application/json",
    )


@given(
    payload=JSON,
    event_type=st.sampled_from(["response_completed", "response_updated", "response_created", "other"]),
    object_type=st.sampled_from(["response", "survey"]),
)
def test_correctly_signed_surveymonkey_notification_of_any_shape_is_parsed_or_refused(payload, event_type, object_type):
    """SurveyMonkey's notification, signed with the account's key and secret, holding anything anywhere."""
    import json

    for data in (
        {"event_type": event_type, "object_type": object_type, "object_id": payload, "resources": payload},
        {"event_type": event_type, "object_type": object_type, "object_id": "123", "resources": {"survey_id": payload}},
        {"event_type": event_type, "object_type": object_type, "object_id": "123", "resources": {"survey_id": "S1"}},
    ):
        body = json.dumps(data).encode()
        headers = {"Sm-Apikey": "sm-key", "Sm-Signature": surveymonkey.signature("sm-key", "sm-secret", body)}
        _refused_or_parsed(surveymonkey, body, headers, "application/json")


@given(
    payload=JSON,
    answer=st.dictionaries(
        st.sampled_from(["choice_id", "row_id", "col_id", "other_id", "text", "simple_text"]), JSON, max_size=4
    ),
)
def test_surveymonkey_response_details_of_any_shape_give_a_response_or_a_clear_error(payload, answer):
    """What the details endpoint answers (after a notification) is read whatever its shape: a response, with
    what is out of place skipped, or an error that says the answer was not a response."""
    shapes = [
        payload,
        {"response_status": payload, "pages": payload, "custom_variables": payload, "date_modified": payload},
        {"pages": [{"questions": payload}]},
        {"pages": [{"questions": [{"id": "Q1", "answers": payload}]}]},
        {"pages": [{"questions": [{"id": "Q1", "answers": [answer, answer]}]}], "custom_variables": {"token": payload}},
    ]
    for data in shapes:
        try:
            event = surveymonkey.event_of("123", data)
        except ApiError as refused:
            assert not isinstance(data, dict) and "response object" in str(refused)
            continue
        assert isinstance(event, ResponseEvent) and event.response_id == "123"
        assert isinstance(event.answers, dict) and isinstance(event.labels, dict)
        assert event.token is None or isinstance(event.token, str)
