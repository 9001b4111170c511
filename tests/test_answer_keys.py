"""Answers that mean what the coordinator typed: a required question answered by any of its parts, and an
interview opt-in matched by its stored value or by its label."""

from __future__ import annotations

import pytest

from surveybot.platforms import ResponseEvent
from surveybot.platforms.qualtrics import event_from
from surveybot.responses import missing_required, opted_in

# A response as Qualtrics' "Retrieve a survey response" documents it: recodes in values, choice texts in labels.
QUALTRICS = {
    "responseId": "R_2Y62vxvBCVIJxEG",
    "values": {
        "startDate": "2021-03-25T17:16:56Z",
        "endDate": "2021-03-25T17:21:25Z",
        "status": 0,
        "ipAddress": "165.225.48.92",
        "progress": 100,
        "duration": 269,
        "finished": 1,
        "recordedDate": "2021-03-25T17:21:25.942Z",
        "_recordId": "R_2Y62vxvBCVIJxEG",
        "distributionChannel": "anonymous",
        "userLanguage": "EN",
        "QID1_TEXT": "wedw",
        "QID3": 5,
        "QID2": ["2"],
        "QID4_1": 3,
        "QID4_2": 4,
        "token": "tok-1",
    },
    "labels": {"status": "IP Address", "finished": "True", "QID3": "Slightly uncomfortable", "QID2": ["Tuesday"]},
}


def wave(required=(), question="", yes=""):
    return {"required": list(required), "interview_question": question, "interview_yes": yes}


def test_a_qualtrics_text_entry_or_matrix_question_satisfies_require():
    event = event_from("R_2Y62vxvBCVIJxEG", QUALTRICS)
    assert event.finished and event.token == "tok-1" and "status" not in event.labels
    assert missing_required(wave(["QID1", "QID4", "QID3", "QID2"]), event) == []  # QID1_TEXT, QID4_1 …
    assert missing_required(wave(["QID5", "QID41"]), event) == ["QID5", "QID41"]  # QID41 is not QID4's part


@pytest.mark.parametrize(
    "question, typed, expected",
    [
        ("QID3", "5", True),  # the recode
        ("QID3", "Slightly uncomfortable", True),  # the label, as the coordinator reads it in the survey
        ("QID3", "slightly  UNCOMFORTABLE", True),  # case and spacing do not matter
        ("QID3", "Very comfortable", False),
        ("QID2", "Tuesday", True),  # one of a multiple choice's labels
        ("QID2", "2", True),
        ("QID2", "Monday", False),
    ],
)
def test_interview_yes_matches_the_value_or_its_label(question, typed, expected):
    event = event_from("R_2Y62vxvBCVIJxEG", QUALTRICS)
    assert opted_in(wave(question=question, yes=typed), event) is expected


@pytest.mark.parametrize(
    "typed, answer, expected",
    [("Sí", True, True), ("yes", True, True), ("true", True, True), ("1", True, True), ("Sí", False, False)],
)
def test_a_yes_no_answer_matches_a_yes_word(typed, answer, expected):
    event = ResponseEvent(platform="typeform", response_id="t1", finished=True, token="t", answers={"ok": answer})
    assert opted_in(wave(question="ok", yes=typed), event) is expected


def test_limesurvey_subquestions_satisfy_require():
    event = ResponseEvent(
        platform="limesurvey",
        response_id="7",
        finished=True,
        token="t",
        answers={"Q5[SQ001]": "A1", "Q5[SQ002]": "", "Q6[other]": ""},
    )
    assert missing_required(wave(["Q5", "Q6"]), event) == ["Q6"]


# A SurveyMonkey response's details with simple=true (the documented answer shapes: a choice, a matrix row,
# an "other" box, a text), as its API answers them.
SURVEYMONKEY = {
    "id": "5007154402",
    "response_status": "completed",
    "custom_variables": {"token": "tok-9"},
    "date_modified": "2015-12-28T21:59:38+00:00",
    "pages": [
        {
            "id": "103332310",
            "questions": [
                {
                    "id": "319352786",
                    "family": "single_choice",
                    "answers": [{"choice_id": "3057839051", "simple_text": "Sí, con gusto"}],
                },
                {
                    "id": "319352787",
                    "family": "matrix",
                    "answers": [
                        {"row_id": "11", "choice_id": "21", "simple_text": "Twinning | Very important"},
                        {"row_id": "12", "choice_id": "22", "simple_text": "Networks | Important"},
                    ],
                },
                {
                    "id": "319352788",
                    "family": "multiple_choice",
                    "answers": [{"choice_id": "31", "simple_text": "Climate"}, {"other_id": "39", "text": "Migration"}],
                },
                {"id": "319352789", "family": "open_ended", "answers": [{"text": "We work with 40 sister cities."}]},
            ],
        }
    ],
}


def test_surveymonkey_answers_keep_their_text_rows_and_other_boxes():
    from surveybot.platforms.surveymonkey import answers_of

    answers, labels = answers_of(SURVEYMONKEY)
    assert answers == {
        "319352786": "Sí, con gusto",
        "319352787_11": "Twinning | Very important",
        "319352787_12": "Networks | Important",
        "319352788": "Climate",
        "319352788_other": "Migration",
        "319352789": "We work with 40 sister cities.",
    }
    assert labels["319352786"] == "3057839051"
    event = ResponseEvent(
        platform="surveymonkey", response_id="5007154402", finished=True, token="tok-9", answers=answers, labels=labels
    )
    assert opted_in(wave(question="319352786", yes="sí, con gusto"), event)  # the answer text …
    assert opted_in(wave(question="319352786", yes="3057839051"), event)  # … or the choice id
    assert missing_required(wave(["319352787", "319352788"]), event) == []  # matrix rows count


def test_typeform_keeps_other_text_and_score_variables():
    import json

    from surveybot.platforms import WebhookContext
    from surveybot.platforms.typeform import receive, signature

    body = json.dumps(
        {
            "event_id": "01",
            "event_type": "form_response",
            "form_response": {
                "form_id": "lT4Z3j",
                "token": "a3a12ec67a1365927098a606107fac15",
                "submitted_at": "2018-01-18T18:17:02Z",
                "hidden": {"token": "tok-3"},
                "calculated": {"score": 9},
                "variables": [
                    {"key": "score", "type": "number", "number": 4},
                    {"key": "tier", "type": "text", "text": "B"},
                ],
                "answers": [
                    {
                        "type": "choices",
                        "choices": {"labels": ["London", "Sydney"], "other": "Bogotá"},
                        "field": {"id": "PNe8ZKBK8C2Q", "type": "picture_choice"},
                    },
                    {
                        "type": "choice",
                        "choice": {"other": "Quito"},
                        "field": {"id": "k6TP9oLGgHjl", "type": "multiple_choice"},
                    },
                    {"type": "boolean", "boolean": True, "field": {"id": "gFFf3xAkJKsr", "type": "yes_no"}},
                ],
            },
        }
    ).encode()
    context = WebhookContext({"survey_id": "lT4Z3j"}, "typeform-secret", None, 0)
    event = receive(body, {"Typeform-Signature": signature("typeform-secret", body)}, "application/json", context)
    assert event.answers["PNe8ZKBK8C2Q"] == ["London", "Sydney", "Bogotá"]
    assert event.answers["k6TP9oLGgHjl"] == "Quito"
    assert event.embedded == {"score": 4, "tier": "B"}  # the variables (the newer form) win over calculated
    assert opted_in(wave(question="gFFf3xAkJKsr", yes="Sí"), event)
