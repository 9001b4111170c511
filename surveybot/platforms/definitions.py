"""What a wave's survey asks, read from its platform, to check the question ids the wave names (``wave check``).

Qualtrics: ``GET {base}/API/v3/survey-definitions/{id}`` (``result.Questions`` keyed by QID, each with its
``DataExportTag``), or ``GET /API/v3/surveys/{id}`` (``result.questions``) where the token may not read
definitions. SurveyMonkey: ``GET {base}/v3/surveys/{id}/details`` (question ids in ``pages[].questions[]``).
LimeSurvey: ``list_questions`` (the ``title`` codes). Typeform and signed webhooks give no survey to read.

An id is found when it is a question's id or one of its parts, as answers are keyed: ``QID5_TEXT``, ``QID5_2``
(Qualtrics), ``101_7``, ``101_other`` (SurveyMonkey), ``Q5[SQ001]`` (LimeSurvey) — see
``responses.missing_required``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from surveybot.config import Settings
from surveybot.platforms import ApiError, limesurvey

WHY_UNCHECKABLE = {
    "typeform": "surveybot has no Typeform API access (Typeform only sends it signed responses); compare the ids "
    "with the fields' refs in the form's Logic → Edit question references",
    "signed": "a generic signed-webhook survey has no definition surveybot can read; compare the ids with the "
    "answer keys your sender posts",
}


@dataclass(frozen=True)
class Definition:
    ids: frozenset[str]
    # another name a person may type (Qualtrics' export tag, a SurveyMonkey nickname) → the question's id
    aliases: dict[str, str] = field(default_factory=dict)


def found(definition: Definition, qid: str) -> bool:
    """Whether answers can carry ``qid``: a question's id, or a part of one."""
    return qid in definition.ids or any(qid.startswith((f"{q}_", f"{q}[")) for q in definition.ids)


async def definition(session: aiohttp.ClientSession, settings: Settings, wave: dict[str, Any]) -> Definition:
    """The question ids of the wave's survey (ApiError when the platform cannot be read)."""
    platform, survey_id = wave["platform"], str(wave["survey_id"])
    if platform == "qualtrics":
        return await _qualtrics(session, settings, survey_id)
    if platform == "surveymonkey":
        return await _surveymonkey(session, settings, survey_id)
    if platform == "limesurvey":
        return Definition(frozenset(await limesurvey.question_codes(session, settings, survey_id)))
    raise ValueError(f"no survey definition to read on {platform}")


async def check_wave(settings: Settings, wave: dict[str, Any]) -> dict[str, Any]:
    """For each ``--require`` and ``--interview-question`` id of the wave: whether its survey has it."""
    named = [("--require", q) for q in _list(wave["required"])]
    if wave["interview_question"]:
        named.append(("--interview-question", str(wave["interview_question"])))
    report: dict[str, Any] = {
        "wave": wave["slug"],
        "platform": wave["platform"],
        "survey_id": wave["survey_id"],
        "checked": False,
        "reason": WHY_UNCHECKABLE.get(wave["platform"]),
        "questions": [{"option": option, "id": qid, "found": None, "hint": None} for option, qid in named],
        "missing": [],
        "problems": [],
    }
    if report["reason"] is not None:
        return report
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.network_timeout)) as session:
        try:
            survey = await definition(session, settings, wave)
        except ApiError as exc:
            raise ApiError(
                f"could not read survey {wave['survey_id']} of wave {wave['slug']!r} from {wave['platform']}: {exc}",
                temporary=exc.temporary,
                refused=exc.refused,
            ) from None
        if wave["platform"] == "limesurvey":
            report["problems"] = await limesurvey.check_survey(session, settings, str(wave["survey_id"]))
    report["checked"] = True
    for item in report["questions"]:
        item["found"] = found(survey, item["id"])
        if not item["found"]:
            report["missing"].append(item["id"])
            alias = survey.aliases.get(item["id"])
            item["hint"] = (
                f"{item['id']} is another name of question {alias}: answers are keyed {alias}, name that"
                if alias
                else f"no question {item['id']} in survey {wave['survey_id']}"
            )
    return report


def _list(value: object) -> list[str]:
    items = json.loads(value) if isinstance(value, str) else value
    return [str(q) for q in items] if isinstance(items, list) else []


async def _get(session: aiohttp.ClientSession, url: str, headers: dict[str, str], what: str, setting: str) -> Any:
    try:
        async with session.get(url, headers=headers) as response:
            if response.status == 429 or response.status >= 500:
                raise ApiError(f"{what} answered {response.status}; try again shortly", temporary=True)
            if response.status in (401, 403):
                raise ApiError(f"{what} refused {setting} ({response.status})", temporary=False, refused=True)
            if response.status == 404:
                raise ApiError(f"{what} has no such survey (404): check the wave's --survey-id", temporary=False)
            if response.status >= 400:
                raise ApiError(f"{what} answered {response.status}", temporary=False)
            return await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ApiError(f"{what} is unreachable: {exc.__class__.__name__}", temporary=True) from None
    except ValueError:
        raise ApiError(f"{what} answered with something that is not JSON", temporary=False) from None


async def _qualtrics(session: aiohttp.ClientSession, settings: Settings, survey_id: str) -> Definition:
    if not settings.qualtrics_base_url or not settings.qualtrics_api_token:
        raise ApiError("QUALTRICS_BASE_URL and QUALTRICS_API_TOKEN are needed to read the survey", temporary=False)
    headers = {"X-API-TOKEN": settings.qualtrics_api_token}
    base = f"{settings.qualtrics_base_url}/API/v3"
    try:
        data = await _get(
            session, f"{base}/survey-definitions/{survey_id}", headers, "Qualtrics", "QUALTRICS_API_TOKEN"
        )
        questions, tag = _dict(_dict(data).get("result")).get("Questions"), "DataExportTag"
    except ApiError as exc:
        if not exc.refused:  # a token that may read the survey but not edit its definition
            raise
        data = await _get(session, f"{base}/surveys/{survey_id}", headers, "Qualtrics", "QUALTRICS_API_TOKEN")
        questions, tag = _dict(_dict(data).get("result")).get("questions"), "questionName"
    if not isinstance(questions, dict):
        raise ApiError("Qualtrics answered without the survey's questions", temporary=False)
    aliases = {str(q[tag]): str(qid) for qid, q in questions.items() if isinstance(q, dict) and q.get(tag)}
    return Definition(frozenset(map(str, questions)), {k: v for k, v in aliases.items() if k != v})


async def _surveymonkey(session: aiohttp.ClientSession, settings: Settings, survey_id: str) -> Definition:
    if not settings.surveymonkey_access_token:
        raise ApiError("SURVEYMONKEY_ACCESS_TOKEN is needed to read the survey", temporary=False)
    headers = {"Authorization": f"Bearer {settings.surveymonkey_access_token}"}
    url = f"{settings.surveymonkey_base_url}/v3/surveys/{survey_id}/details"
    data = _dict(await _get(session, url, headers, "SurveyMonkey", "SURVEYMONKEY_ACCESS_TOKEN"))
    ids, aliases = set(), {}
    pages = data.get("pages")
    for page in pages if isinstance(pages, list) else []:
        questions = _dict(page).get("questions")
        for question in questions if isinstance(questions, list) else []:
            if isinstance(question, dict) and question.get("id") is not None:
                ids.add(str(question["id"]))
                if question.get("nickname"):
                    aliases[str(question["nickname"])] = str(question["id"])
    return Definition(frozenset(ids), aliases)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
