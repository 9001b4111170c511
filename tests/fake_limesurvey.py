"""A local LimeSurvey RemoteControl 2 (JSON-RPC 1) server, written from LimeSurvey's remotecontrol_handle.php.

POST / {"method", "params": [...], "id"} → {"id", "result", "error": null}; LimeSurvey's own refusals are
in band (HTTP 200, ``result: {"status": "…"}``) with the method's own spelling of "Invalid session key".
Implemented: get_session_key, release_session_key, get_survey_properties, list_participants,
add_participants (token column of 35 characters, tokens sanitised to [0-9a-zA-Z_~] and unique),
export_responses (base64 JSON, flat rows or — ``wrapped`` — each row under its id as older versions write it,
"No Data" statuses, one empty record when nothing matches the range), list_questions. With ``rpc_enabled``
false it answers an empty body, as LimeSurvey does when its JSON-RPC interface is switched off; a survey in
``held`` answers export_responses only once its event is set.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

USER, PASSWORD = "surveybot", "lime-pass-71c"
TOKEN_LENGTH = 35  # the token column of LimeSurvey 2 and 3


@dataclass
class Survey:
    anonymized: str = "N"
    active: str = "Y"
    participant_table: bool = True
    participants: list[dict[str, Any]] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)
    questions: list[dict[str, Any]] = field(default_factory=list)
    language: str = "en"


@dataclass
class FakeLimeSurvey:
    surveys: dict[int, Survey] = field(default_factory=dict)
    wrapped: bool = False  # export each row as {"<id>": {...}} (LimeSurvey 3/4)
    rpc_enabled: bool = True
    no_table_status: str = "No survey participants table"
    token_length: int = TOKEN_LENGTH
    sessions: set[str] = field(default_factory=set)
    released: list[str] = field(default_factory=list)
    calls: list[tuple[str, list[Any]]] = field(default_factory=list)  # (method, params without the key)
    statuses: dict[str, list[str]] = field(default_factory=dict)  # method → in-band statuses to answer first
    # survey id → export_responses answers only once the event is set (a server busy with a long export)
    held: dict[int, asyncio.Event] = field(default_factory=dict)
    url: str = ""

    # --- what tests arrange ------------------------------------------------------------------------------

    def respond(self, survey_id: int, token: str | None, answers: dict[str, str], *, submitted: bool = True) -> int:
        """A response as the survey's respondent leaves it: ``submitted`` sets submitdate."""
        survey = self.surveys[survey_id]
        number = max((int(r["id"]) for r in survey.responses), default=0) + 1
        row: dict[str, Any] = {
            "id": str(number),
            "submitdate": "2026-11-25 10:00:00" if submitted else None,
            "lastpage": "3" if submitted else "1",
            "startlanguage": "es",
            "seed": "123456",
        }
        if survey.anonymized == "N" and survey.participant_table:
            row["token"] = token
        row["startdate"], row["datestamp"], row["ipaddr"] = "2026-11-25 09:40:00", "2026-11-25 10:00:00", "203.0.113.7"
        row.update(answers)
        survey.responses.append(row)
        return number

    def submit(self, survey_id: int, response_id: int, answers: dict[str, str]) -> None:
        """The respondent comes back and finishes the response: same id, now with submitdate."""
        for row in self.surveys[survey_id].responses:
            if row["id"] == str(response_id):
                row.update(answers)
                row["submitdate"], row["lastpage"] = "2026-11-26 08:00:00", "3"

    def called(self, method: str) -> list[list[Any]]:
        return [params for name, params in self.calls if name == method]

    # --- the server --------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/index.php/admin/remotecontrol", self._rpc)
        return app

    async def _rpc(self, request: web.Request) -> web.Response:
        if not self.rpc_enabled or "application/json" not in request.headers.get("Content-Type", ""):
            return web.Response(body=b"", content_type="text/html")
        try:
            body = json.loads(await request.text())
        except ValueError:
            return web.json_response({"id": None, "result": None, "error": "unable to decode malformed json"})
        method, params = body.get("method"), list(body.get("params") or [])
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return web.json_response(
                {"id": body.get("id"), "result": None, "error": "unknown method or incorrect parameters"}
            )
        self.calls.append((method, params[1:] if method != "get_session_key" else params[:1]))
        if method == "export_responses" and len(params) > 1 and str(params[1]) in map(str, self.held):
            await self.held[int(params[1])].wait()
        scripted = self.statuses.get(method)
        if scripted:
            result: Any = {"status": scripted.pop(0)}
        else:
            result = handler(*params)
        return web.json_response({"id": body.get("id"), "result": result, "error": None})

    def _session(self, key: object) -> bool:
        return isinstance(key, str) and key in self.sessions

    def _m_get_session_key(self, user: str, password: str, plugin: str = "Authdb") -> Any:
        if user != USER or password != PASSWORD:
            return {"status": "Invalid user name or password"}
        key = secrets.token_hex(16)
        self.sessions.add(key)
        return key

    def _m_release_session_key(self, key: str) -> str:
        self.sessions.discard(key)
        self.released.append(key)
        return "OK"

    def _m_get_survey_properties(self, key: str, survey_id: int, settings: list[str] | None = None) -> Any:
        if not self._session(key):
            return {"status": "Invalid Session key"}
        survey = self.surveys.get(int(survey_id))
        if survey is None:
            return {"status": "Error: Invalid survey ID"}
        known = {"anonymized": survey.anonymized, "active": survey.active, "language": survey.language}
        return {k: known[k] for k in settings or known if k in known} or {"status": "No valid Data"}

    def _m_list_participants(
        self, key: str, survey_id: int, start: int = 0, limit: int = 10, unused: bool = False, *rest: Any
    ) -> Any:
        if not self._session(key):
            return {"status": "Invalid Session Key"}
        survey = self.surveys.get(int(survey_id))
        if survey is None:
            return {"status": "Error: Invalid survey ID"}
        if not survey.participant_table:
            return {"status": self.no_table_status}
        page = survey.participants[int(start) : int(start) + int(limit)]
        if not page:
            return {"status": "No survey participants found."}
        return [
            {
                "tid": p["tid"],
                "token": p["token"],
                "participant_info": {k: p[k] for k in ("firstname", "lastname", "email")},
            }
            for p in page
        ]

    def _m_add_participants(self, key: str, survey_id: int, data: list[dict[str, Any]], create: bool = True) -> Any:
        if not self._session(key):
            return {"status": "Invalid session key"}
        survey = self.surveys.get(int(survey_id))
        if survey is None:
            return {"status": "Error: Invalid survey ID"}
        if not survey.participant_table:
            return {"status": "No survey participants table"}
        answered = []
        columns = ("firstname", "lastname", "email", "token", "language")
        for given in data:
            row = {k: str(given.get(k, "")) for k in columns}
            row["token"] = secrets.token_hex(7) if create else re.sub(r"[^0-9a-zA-Z_~]", "", row["token"])
            errors = {}
            if len(row["token"]) > self.token_length:
                errors["token"] = [f"Access code is too long (maximum is {self.token_length} characters)."]
            elif row["token"] and any(p["token"] == row["token"] for p in survey.participants):
                errors["token"] = [f'Access code "{row["token"]}" has already been taken.']
            if "@" not in row["email"]:
                errors["email"] = ["Invalid email address."]
            if errors:
                answered.append({**given, "errors": errors})
                continue
            saved = {"tid": str(len(survey.participants) + 1), "participant_id": None, "sent": "N", **row}
            survey.participants.append(saved)
            answered.append(saved)
        return answered

    def _m_export_responses(
        self,
        key: str,
        survey_id: int,
        document: str,
        language: str | None = None,
        completion: str = "all",
        heading: str = "code",
        answer: str = "short",
        first: int | None = None,
        last: int | None = None,
        *rest: Any,
    ) -> Any:
        if not self._session(key):
            return {"status": "Invalid session key"}
        survey = self.surveys[int(survey_id)]
        if survey.active != "Y":
            return {"status": "No Data, survey table does not exist."}
        if not survey.responses:
            return {"status": "No Data, could not get max id."}
        assert document == "json" and completion == "all" and heading == "code" and answer == "short"
        low = int(first or 1)
        high = int(last) if last is not None else max(int(r["id"]) for r in survey.responses)
        rows = [dict(r) for r in survey.responses if low <= int(r["id"]) <= high]
        if not rows:  # LimeSurvey's writer: "output just 1 empty record with header"
            rows = [dict.fromkeys(survey.responses[0], "")]
        listed = [{row["id"]: row} for row in rows] if self.wrapped else rows
        return base64.b64encode(json.dumps({"responses": listed}).encode()).decode()

    def _m_list_questions(self, key: str, survey_id: int, group: int | None = None, language: str | None = None) -> Any:
        if not self._session(key):
            return {"status": "Invalid session key"}
        survey = self.surveys.get(int(survey_id))
        if survey is None:
            return {"status": "Error: Invalid survey ID"}
        if not survey.questions:
            return {"status": "No questions found"}
        return [{"id": q["qid"], "sid": str(survey_id), "language": survey.language, **q} for q in survey.questions]


async def start(fake: FakeLimeSurvey) -> web.AppRunner:
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/index.php/admin/remotecontrol"
    return runner
