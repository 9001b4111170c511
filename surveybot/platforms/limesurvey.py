"""LimeSurvey: the RemoteControl 2 JSON-RPC API — check a survey, enrol a wave's recipients, pull responses.

LimeSurvey sends no webhooks, so its responses are pulled: ``export_responses`` as base64-encoded JSON. Every
call is ``POST LIMESURVEY_URL {"method", "params": [session key, …], "id"}`` answered ``{"id", "result",
"error"}``; LimeSurvey's own refusals come back in band, HTTP 200 with ``result: {"status": "…"}``, and are read
as such here: "No Data" is an empty batch, a refused login or session key an :class:`ApiError` naming the
setting to check. Each session key is released when its work is done, whatever happened.

A response without ``submitdate`` is unfinished; it may be finished later under the same id, so the pull
cursor (``{"after": last id seen, "open": [ids still unfinished]}``) makes each pull read those ids again as
well as every id above ``after``.

Errors: :class:`ApiError` (from ``surveybot.platforms``), and :class:`EnrolIncomplete` (some recipients
were refused as participants; the others were added).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from sqlite_utils import Database

from surveybot import recipients
from surveybot.config import Settings
from surveybot.platforms import ApiError, ResponseEvent, text_or_none
from surveybot.signing import service_secret

NAME = "limesurvey"
log = logging.getLogger("surveybot.limesurvey")
ADD_BATCH = 100  # participants per add_participants call
LIST_PAGE = 1000  # participants per list_participants call
EVENT_BATCH = 200  # events per batch handed back by pull
GAP = 50  # unfinished ids closer than this are read back in one export
# Columns LimeSurvey records about a response rather than answers (ipaddr and refurl are never kept).
_METADATA = {"id", "submitdate", "lastpage", "startlanguage", "seed", "token", "startdate", "datestamp"}
_PRIVATE = {"ipaddr", "refurl", "firstname", "lastname", "email"}
_NO_TABLE = ("no survey participants table", "no survey participant list", "no token table")


class EnrolIncomplete(ApiError):
    """LimeSurvey refused some recipients as participants (``rejected``: (e-mail, why)); ``added`` were added."""

    def __init__(self, added: int, refused: list[tuple[str, str]]) -> None:
        self.added, self.rejected = added, refused
        shown = "; ".join(f"{email} ({why})" for email, why in refused[:5])
        more = f" and {len(refused) - 5} more" if len(refused) > 5 else ""
        super().__init__(
            f"LimeSurvey refused {len(refused)} participant{'s' if len(refused) != 1 else ''}: {shown}{more}; "
            f"{added} were added (running it again adds only those missing)",
            temporary=False,
        )


class _Rpc:
    """One RemoteControl endpoint; ``key`` is the session key once logged in."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url, self.key = session, url, ""
        self._ids = itertools.count(1)

    async def raw(self, method: str, *params: Any) -> Any:
        """``result`` of ``method`` (in-band statuses included); ApiError for what is not a JSON-RPC answer."""
        body = {"method": method, "params": list(params), "id": next(self._ids)}
        try:
            async with self.session.post(
                self.url, data=json.dumps(body), headers={"Content-Type": "application/json"}
            ) as response:
                if response.status == 429 or response.status >= 500:
                    raise ApiError(f"LimeSurvey answered {response.status}", temporary=True)
                if response.status >= 400:
                    raise ApiError(
                        f"LimeSurvey answered {response.status} at LIMESURVEY_URL: check that it is the "
                        f"RemoteControl URL (…/index.php/admin/remotecontrol)",
                        temporary=False,
                        refused=True,
                    )
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(
                f"LimeSurvey is unreachable at LIMESURVEY_URL: {exc.__class__.__name__}", temporary=True
            ) from None
        if not text.strip():  # what LimeSurvey answers when its RPC interface is switched off
            raise ApiError(
                "LimeSurvey answered nothing: enable JSON-RPC in Global settings → Interfaces and check "
                "that LIMESURVEY_URL is the RemoteControl URL (…/index.php/admin/remotecontrol)",
                temporary=False,
                refused=True,
            )
        try:
            answer = json.loads(text)
        except ValueError:
            raise ApiError(
                "LimeSurvey answered with something that is not JSON-RPC: check that LIMESURVEY_URL is the "
                "RemoteControl URL (…/index.php/admin/remotecontrol) and that its JSON-RPC interface is enabled",
                temporary=False,
                refused=True,
            ) from None
        if not isinstance(answer, dict):
            raise ApiError("LimeSurvey answered with something that is not JSON-RPC", temporary=False)
        if answer.get("error") is not None:
            raise ApiError(f"LimeSurvey's {method} failed: {str(answer['error'])[:200]}", temporary=False)
        return answer.get("result")

    async def call(self, method: str, *params: Any) -> Any:
        """Like :meth:`raw` with the session key first; a refused session key is an ApiError."""
        result = await self.raw(method, self.key, *params)
        status = status_of(result)
        if status is not None and status.replace(" ", "").lower() == "invalidsessionkey":
            raise ApiError(
                "LimeSurvey refused the session key it had just given: check LIMESURVEY_URL (one LimeSurvey, "
                "not several behind a balancer that do not share sessions)",
                temporary=True,
                refused=True,
            )
        return result


def status_of(result: object) -> str | None:
    """The in-band status LimeSurvey answers instead of a result (``{"status": "…"}``), if it is one."""
    if isinstance(result, dict) and isinstance(result.get("status"), str) and result["status"] != "OK":
        return str(result["status"])
    return None


@asynccontextmanager
async def remote(session: aiohttp.ClientSession, settings: Settings) -> AsyncIterator[_Rpc]:
    """A logged-in RemoteControl session, its key released on the way out whatever happened."""
    if not (settings.limesurvey_url and settings.limesurvey_user and settings.limesurvey_password):
        raise ApiError(
            "LimeSurvey needs LIMESURVEY_URL, LIMESURVEY_USER and LIMESURVEY_PASSWORD", temporary=False, refused=True
        )
    rpc = _Rpc(session, settings.limesurvey_url)
    key = await rpc.raw("get_session_key", settings.limesurvey_user, settings.limesurvey_password)
    if not isinstance(key, str) or not key:
        why = status_of(key) or "no session key"
        raise ApiError(
            f"LimeSurvey refused the login ({why}): check LIMESURVEY_USER and LIMESURVEY_PASSWORD",
            temporary=False,
            refused=True,
        )
    rpc.key = key
    try:
        yield rpc
    finally:
        try:
            await rpc.raw("release_session_key", key)
        except ApiError as exc:  # the key expires by itself; the work done stands
            log.warning("LimeSurvey session key not released: %s", exc)


def survey_number(survey_id: object) -> int:
    """LimeSurvey's survey id, a number (the one in the survey's URL)."""
    try:
        return int(str(survey_id).strip())
    except ValueError:
        raise ApiError(
            f"a LimeSurvey survey id is a number (the one in the survey's URL), not {str(survey_id)[:40]!r}",
            temporary=False,
        ) from None


def _refusal(status: str, survey_id: str, what: str) -> str:
    """A sentence for a status a survey call answered: what is wrong and what to change in LimeSurvey."""
    lowered = status.lower()
    if any(words in lowered for words in _NO_TABLE):
        return (
            f"survey {survey_id} has no participant table, so the personal links cannot work: open 'Survey "
            f"participants' in LimeSurvey and initialise the table"
        )
    if "invalid survey" in lowered:
        return f"LimeSurvey has no survey {survey_id}: check --survey-id (the number in the survey's URL)"
    if "permission" in lowered:
        return (
            f"LimeSurvey user LIMESURVEY_USER may not {what} of survey {survey_id}: give them that permission "
            f"in the survey's permissions"
        )
    return f"LimeSurvey refused to {what} of survey {survey_id}: {status}"


async def check_survey(session: aiohttp.ClientSession, settings: Settings, survey_id: str) -> list[str]:
    """Problems that make the survey unusable (empty list: fine): no participant table, anonymized responses,
    survey not found, credentials refused — each a sentence saying why and what to change in LimeSurvey."""
    problems: list[str] = []
    try:
        number = survey_number(survey_id)
        async with remote(session, settings) as rpc:
            properties = await rpc.call("get_survey_properties", number, ["anonymized", "active"])
            if (status := status_of(properties)) is not None or not isinstance(properties, dict):
                return [_refusal(status or "no properties", survey_id, "read the settings")]
            if str(properties.get("anonymized", "")).upper() == "Y":
                problems.append(
                    f"survey {survey_id} has anonymized responses, so no response can be tied to its participant: "
                    f"set 'Anonymized responses' to off in its participant settings (LimeSurvey allows that only "
                    f"before the survey is activated)"
                )
            listed = await rpc.call("list_participants", number, 0, 1)
            status = status_of(listed)
            if status is not None and "no survey participants found" not in status.lower():
                problems.append(_refusal(status, survey_id, "list the participants"))
    except ApiError as exc:
        return [str(exc)]
    return problems


async def _tokens_present(rpc: _Rpc, survey_id: int) -> set[str]:
    """The tokens of the participants the survey has already (paged)."""
    found: set[str] = set()
    for start in itertools.count(0, LIST_PAGE):
        page = await rpc.call("list_participants", survey_id, start, LIST_PAGE, False, False)
        status = status_of(page)
        if status is not None:
            if "no survey participants found" in status.lower():
                return found
            raise ApiError(_refusal(status, str(survey_id), "list the participants"), temporary=False)
        rows = page if isinstance(page, list) else []
        found.update(str(row["token"]) for row in rows if isinstance(row, dict) and row.get("token"))
        if len(rows) < LIST_PAGE:
            return found
    return found  # pragma: no cover  (count() never ends)


async def enrol(
    session: aiohttp.ClientSession,
    settings: Settings,
    db: Database,
    wave: dict[str, Any],
    contacts: list[dict[str, Any]] | None = None,
) -> int:
    """Add every recipient of the wave (or these ``contacts``: those a launch is about to invite) as a participant
    with surveybot's token (add_participants, bCreateToken false), in batches; participants already there are not
    an error (re-running is safe). Returns how many were added."""
    secret = service_secret(db, settings.secret)
    survey_id = survey_number(wave["survey_id"])
    wanted = []
    for row in recipients.with_contacts(db, wave["id"]) if contacts is None else contacts:
        first, _, last = str(row["name"]).strip().partition(" ")
        token = recipients.limesurvey_token(recipients.survey_token(secret, wave["id"], row["contact_id"]))
        participant = {"email": row["email"], "firstname": first, "lastname": last.strip(), "token": token}
        if row["language"]:
            participant["language"] = row["language"]
        wanted.append(participant)
    added, refused = 0, []
    async with remote(session, settings) as rpc:
        present = await _tokens_present(rpc, survey_id)
        missing = [p for p in wanted if p["token"] not in present]
        for start in range(0, len(missing), ADD_BATCH):
            batch = missing[start : start + ADD_BATCH]
            result = await rpc.call("add_participants", survey_id, batch, False)
            if (status := status_of(result)) is not None or not isinstance(result, list):
                raise ApiError(_refusal(status or "no list", str(survey_id), "add participants"), temporary=False)
            for sent, saved in zip(batch, result):
                errors = saved.get("errors") if isinstance(saved, dict) else "no answer"
                if errors:
                    refused.append((sent["email"], _errors_text(errors)))
                else:
                    added += 1
    if refused:
        raise EnrolIncomplete(added, refused)
    return added


def _errors_text(errors: object) -> str:
    """LimeSurvey's validation errors (``{field: [messages]}``) as one short line."""
    if isinstance(errors, dict):
        return "; ".join(
            f"{field}: {' '.join(map(str, messages)) if isinstance(messages, list) else messages}"
            for field, messages in errors.items()
        )[:200]
    return str(errors)[:200]


def _cursor(cursor: str | None) -> tuple[int, list[int]]:
    """(after, open ids) of a stored cursor; one that cannot be read starts again from the first response
    (recording is idempotent, so reading a response twice changes nothing)."""
    try:
        data = json.loads(cursor) if cursor else {}
        after = int(data.get("after", 0))
        still_open = sorted({int(i) for i in data.get("open", [])})
    except (ValueError, TypeError, AttributeError):
        log.warning("unreadable LimeSurvey cursor %r: reading from the first response", (cursor or "")[:80])
        return 0, []
    return after, still_open


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    """Sorted ids grouped into ranges to export, ids less than GAP apart sharing one."""
    runs: list[tuple[int, int]] = []
    for i in ids:
        if runs and i - runs[-1][1] < GAP:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def rows_of(document: object) -> list[dict[str, Any]]:
    """The responses of an export, in either documented shape: flat ``{"responses": [{…}]}`` (LimeSurvey 5
    and later) or each wrapped under its id, ``{"responses": [{"12": {…}}]}`` (older versions)."""
    listed = document.get("responses") if isinstance(document, dict) else None
    rows = []
    for item in listed if isinstance(listed, list) else []:
        if not isinstance(item, dict):
            continue
        if "id" not in item and len(item) == 1 and isinstance(next(iter(item.values())), dict):
            item = next(iter(item.values()))
        rows.append(item)
    return rows


def event_from(row: dict[str, Any]) -> ResponseEvent | None:
    """A response row (code headings, short answers) as an event; None for a row without an id (LimeSurvey
    exports one empty record when nothing matches)."""
    try:
        response_id = int(str(row.get("id")))
    except ValueError:
        return None
    submitted = text_or_none(row.get("submitdate"))
    token = text_or_none(row.get("token"))
    answers = {k: v for k, v in row.items() if k not in _METADATA and k not in _PRIVATE and v not in (None, "", [], {})}
    language = text_or_none(row.get("startlanguage"))
    return ResponseEvent(
        platform=NAME,
        response_id=str(response_id),
        finished=submitted is not None,
        token=recipients.from_limesurvey_token(token) if token else None,
        answers=answers,
        embedded={"language": language} if language else {},
        recorded_at=submitted or text_or_none(row.get("datestamp")),
    )


async def _export(rpc: _Rpc, survey_id: int, first: int, last: int | None) -> list[ResponseEvent] | None:
    """The responses with ids from ``first`` to ``last`` (None: the newest), complete or not; None when LimeSurvey
    answered "No Data" (no response yet, or the survey's responses not readable now: not activated)."""
    result = await rpc.call("export_responses", survey_id, "json", None, "all", "code", "short", first, last)
    if (status := status_of(result)) is not None:
        if status.lower().startswith("no data"):
            return None
        raise ApiError(_refusal(status, str(survey_id), "export the responses"), temporary=False)
    if not isinstance(result, str):
        raise ApiError("LimeSurvey's export_responses answered without a document", temporary=False)
    try:
        text = base64.b64decode(result, validate=False).decode("utf-8")
        document = json.loads(text) if text.strip() else {}
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiError("LimeSurvey's export is not base64-encoded JSON", temporary=False) from None
    events = [event for event in map(event_from, rows_of(document)) if event is not None]
    return [e for e in events if int(e.response_id) >= first and (last is None or int(e.response_id) <= last)]


async def pull(
    session: aiohttp.ClientSession, settings: Settings, wave: dict[str, Any], cursor: str | None
) -> AsyncGenerator[tuple[list[ResponseEvent], str | None], None]:
    """Batches of events from export_responses; the cursor to store once the batch is recorded.

    The exports are read in one session, released before the first batch is handed back."""
    after, still_open = _cursor(cursor)
    survey_id = survey_number(wave["survey_id"])
    events: list[ResponseEvent] = []
    async with remote(session, settings) as rpc:
        asked, unanswered = set(still_open), set[int]()
        for first, last in _runs(still_open):
            found = await _export(rpc, survey_id, first, last)
            if found is None:  # "No Data": those ids are asked for again next time, not forgotten
                unanswered.update(i for i in still_open if first <= i <= last)
            events += [e for e in found or [] if int(e.response_id) in asked]
        seen = {e.response_id for e in events}
        fresh = [e for e in await _export(rpc, survey_id, after + 1, None) or [] if e.response_id not in seen]
        events += sorted(fresh, key=lambda e: int(e.response_id))  # ``after`` moves past ids handed back only
    # The cursor after each batch: ids not yet handed back stay as they were.
    pending_open = set(still_open)
    unfinished: set[int] = set()
    for start in range(0, max(len(events), 1), EVENT_BATCH):
        batch = events[start : start + EVENT_BATCH]
        for event in batch:
            number = int(event.response_id)
            pending_open.discard(number)
            if not event.finished:
                unfinished.add(number)
            after = max(after, number)
        if start + EVENT_BATCH >= len(events):
            # an unfinished id LimeSurvey answered rows without (deleted) is not asked for again
            pending_open &= unanswered
        yield batch, json.dumps({"after": after, "open": sorted(pending_open | unfinished)})


async def question_codes(session: aiohttp.ClientSession, settings: Settings, survey_id: str) -> set[str]:
    """The codes responses are exported under: each question's ``title`` and, where LimeSurvey lists
    subquestions, ``TITLE[SUB]``."""
    async with remote(session, settings) as rpc:
        listed = await rpc.call("list_questions", survey_number(survey_id))
    if (status := status_of(listed)) is not None:
        if "no questions found" in status.lower():
            return set()
        raise ApiError(_refusal(status, survey_id, "list the questions"), temporary=False)
    rows = [row for row in listed if isinstance(row, dict)] if isinstance(listed, list) else []
    titles = {str(row.get("qid")): str(row.get("title")) for row in rows}
    codes = set()
    for row in rows:
        parent = str(row.get("parent_qid") or "0")
        if parent != "0" and parent in titles:
            codes.add(f"{titles[parent]}[{row.get('title')}]")
        else:
            codes.add(str(row.get("title")))
    return codes
