"""Local aiohttp servers that speak the survey platforms' documented APIs (the edge of the world).

Qualtrics:    GET  /API/v3/surveys/{survey}/responses/{response}   (X-API-TOKEN)
              POST/GET /API/v3/eventsubscriptions, DELETE …/{id}   (X-API-TOKEN; 403 for a non-administrator)
SurveyMonkey: GET  /v3/surveys/{survey}/responses/{response}/details  (Authorization: Bearer)
Exports:      POST/GET /API/v3/surveys/{survey}/export-responses… (tests/fake_qualtrics_export.py, added to start())
Definitions:  GET  /API/v3/survey-definitions/{survey} (403 for a researcher's token), /API/v3/surveys/{survey},
              GET  /v3/surveys/{survey}/details (from ``qualtrics_surveys`` / ``surveymonkey_surveys``)

Responses are added by tests; failures can be scripted per response id (a list of statuses to answer
before the real one, e.g. ``[429, 500]``), with ``Retry-After`` on 429; ``HANG`` in that list accepts the
request and never answers it (until the client gives up and hangs up).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

QUALTRICS_TOKEN = "qualtrics-test-token"
HANG = -1  # in ``failures``: accept the request and never answer it
QUALTRICS_NOT_ADMIN = "qualtrics-token-of-a-researcher"  # valid, but not a brand administrator's
SURVEYMONKEY_TOKEN = "surveymonkey-test-token"


@dataclass
class FakePlatform:
    qualtrics: dict[str, dict] = field(default_factory=dict)  # response id → values
    surveymonkey: dict[str, dict] = field(default_factory=dict)  # response id → details object
    failures: dict[str, list[int]] = field(default_factory=dict)  # response id → statuses to answer first
    retry_after: str = "1"
    # SurveyMonkey's daily quota spent: its 429 carries no Retry-After, only its rate-limit headers saying
    # how many seconds remain until 00:00 GMT (documented as X-Ratelimit-App-Global-Day-*)
    surveymonkey_day_reset: int | None = None
    requests: list[tuple[str, str, float]] = field(default_factory=list)  # (method, path, monotonic time)
    subscriptions: list[dict] = field(default_factory=list)
    qualtrics_surveys: dict[str, dict[str, str]] = field(default_factory=dict)  # survey → {QID: export tag}
    surveymonkey_surveys: dict[str, list[list[str]]] = field(default_factory=dict)  # survey → pages of question ids
    url: str = ""

    def add_qualtrics(
        self,
        response_id: str,
        *,
        finished: bool,
        token: str | None,
        answers: dict | None = None,
        progress: int | None = None,
        embedded: dict | None = None,
    ) -> None:
        values = {
            "startDate": "2026-11-25T09:00:00Z",
            "endDate": "2026-11-25T09:20:00Z",
            "status": 0,
            "ipAddress": "203.0.113.9",
            "progress": progress if progress is not None else (100 if finished else 40),
            "duration": 1200,
            "finished": 1 if finished else 0,
            "recordedDate": "2026-11-25T09:20:01.5Z",
            "_recordId": response_id,
            "locationLatitude": "4.6",
            "locationLongitude": "-74.1",
            "distributionChannel": "anonymous",
            "userLanguage": "ES",
            **(answers or {}),
            **(embedded or {}),
        }
        if token is not None:
            values["token"] = token
        self.qualtrics[response_id] = values

    def qualtrics_settings(self) -> dict[str, str]:
        """The settings that point surveybot at this stand-in's Qualtrics API, with a valid token."""
        return {"QUALTRICS_BASE_URL": self.url, "QUALTRICS_API_TOKEN": QUALTRICS_TOKEN}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/API/v3/surveys/{survey}/responses/{response}", self._qualtrics_response)
        app.router.add_post("/API/v3/eventsubscriptions", self._qualtrics_subscribe)
        app.router.add_get("/API/v3/eventsubscriptions", self._qualtrics_subscriptions)
        app.router.add_delete("/API/v3/eventsubscriptions/{id}", self._qualtrics_unsubscribe)
        app.router.add_get("/v3/surveys/{survey}/responses/{response}/details", self._surveymonkey_details)
        app.router.add_get("/API/v3/survey-definitions/{survey}", self._qualtrics_definition)
        app.router.add_get("/API/v3/surveys/{survey}", self._qualtrics_survey)
        app.router.add_get("/v3/surveys/{survey}/details", self._surveymonkey_survey)
        return app

    async def _qualtrics_definition(self, request: web.Request) -> web.Response:
        """The documented survey-definitions shape: result.Questions keyed by QID, each with its DataExportTag."""
        if (refusal := self._qualtrics_refusal(request)) is not None:
            return refusal
        questions = self.qualtrics_surveys.get(request.match_info["survey"])
        if questions is None:
            return web.json_response({"meta": {"httpStatus": "404 - Not Found"}}, status=404)
        result = {
            "SurveyID": request.match_info["survey"],
            "SurveyName": "City diplomacy",
            "QuestionCount": str(len(questions)),
            "Questions": {
                qid: {"QuestionID": qid, "DataExportTag": tag, "QuestionType": "MC", "QuestionText": tag}
                for qid, tag in questions.items()
            },
        }
        return web.json_response({"result": result, "meta": {"httpStatus": "200 - OK", "requestId": "req-5"}})

    async def _qualtrics_survey(self, request: web.Request) -> web.Response:
        """The older survey shape (result.questions with questionName), which any valid token may read."""
        if request.headers.get("X-API-TOKEN") not in (QUALTRICS_TOKEN, QUALTRICS_NOT_ADMIN):
            return web.json_response({"meta": {"httpStatus": "401 - Unauthorized"}}, status=401)
        questions = self.qualtrics_surveys.get(request.match_info["survey"])
        if questions is None:
            return web.json_response({"meta": {"httpStatus": "404 - Not Found"}}, status=404)
        result = {
            "id": request.match_info["survey"],
            "name": "City diplomacy",
            "questions": {
                qid: {"questionType": {"type": "MC"}, "questionText": tag, "questionName": tag}
                for qid, tag in questions.items()
            },
        }
        return web.json_response({"result": result, "meta": {"httpStatus": "200 - OK", "requestId": "req-6"}})

    async def _surveymonkey_survey(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {SURVEYMONKEY_TOKEN}":
            return web.json_response({"error": {"id": "1011", "name": "Authorization Error"}}, status=401)
        pages = self.surveymonkey_surveys.get(request.match_info["survey"])
        if pages is None:
            return web.json_response({"error": {"id": "1020", "name": "Resource Not Found"}}, status=404)
        return web.json_response(
            {
                "id": request.match_info["survey"],
                "title": "City diplomacy",
                "pages": [
                    {
                        "id": f"p{n}",
                        "questions": [
                            {"id": qid, "family": "open_ended", "headings": [{"heading": f"Question {qid}"}]}
                            for qid in page
                        ],
                    }
                    for n, page in enumerate(pages, 1)
                ],
            }
        )

    async def _failure_or_hang(
        self, request: web.Request, response_id: str, platform: str = "qualtrics"
    ) -> web.Response | None:
        pending = self.failures.get(response_id)
        if pending and pending[0] == HANG:
            pending.pop(0)
            for _ in range(600):  # silent until the client hangs up (a minute at most)
                if request.transport is None or request.transport.is_closing():
                    break
                await asyncio.sleep(0.1)
            return web.Response(status=504)  # nobody is listening any more
        return self._failure(response_id, platform)

    def _failure(self, response_id: str, platform: str = "qualtrics") -> web.Response | None:
        pending = self.failures.get(response_id)
        if pending:
            status = pending.pop(0)
            headers = {"Retry-After": self.retry_after} if status == 429 else {}
            if status == 429 and platform == "surveymonkey" and self.surveymonkey_day_reset is not None:
                headers = {
                    "X-Ratelimit-App-Global-Day-Limit": "500",
                    "X-Ratelimit-App-Global-Day-Remaining": "0",
                    "X-Ratelimit-App-Global-Day-Reset": str(self.surveymonkey_day_reset),
                    "X-Ratelimit-App-Global-Minute-Limit": "120",
                    "X-Ratelimit-App-Global-Minute-Remaining": "119",
                    "X-Ratelimit-App-Global-Minute-Reset": "41",
                }
                return web.json_response(
                    {
                        "error": {
                            "id": "1040",
                            "name": "Rate limit reached",
                            "message": "Too many requests were made, try again later.",
                            "http_status_code": 429,
                        }
                    },
                    status=429,
                    headers=headers,
                )
            return web.json_response({"meta": {"httpStatus": str(status)}}, status=status, headers=headers)
        return None

    async def _qualtrics_response(self, request: web.Request) -> web.Response:
        import time

        self.requests.append((request.method, request.path, time.monotonic()))
        if request.headers.get("X-API-TOKEN") != QUALTRICS_TOKEN:
            return web.json_response({"meta": {"httpStatus": "401 - Unauthorized"}}, status=401)
        response_id = request.match_info["response"]
        if (failure := await self._failure_or_hang(request, response_id)) is not None:
            return failure
        if response_id not in self.qualtrics:
            return web.json_response({"meta": {"httpStatus": "404 - Not Found"}}, status=404)
        return web.json_response(
            {
                "result": {
                    "responseId": response_id,
                    "values": self.qualtrics[response_id],
                    "labels": {},
                    "displayedFields": list(self.qualtrics[response_id]),
                    "displayedValues": {},
                },
                "meta": {"requestId": "req-1", "httpStatus": "200 - OK"},
            }
        )

    def _qualtrics_refusal(self, request: web.Request) -> web.Response | None:
        if request.headers.get("X-API-TOKEN") == QUALTRICS_NOT_ADMIN:  # a valid token of a non-administrator
            return web.json_response(
                {
                    "meta": {
                        "httpStatus": "403 - Forbidden",
                        "error": {
                            "errorMessage": "You do not have permission to perform this action.",
                            "errorCode": "AUTH_7.0",
                        },
                    }
                },
                status=403,
            )
        if request.headers.get("X-API-TOKEN") != QUALTRICS_TOKEN:
            return web.json_response({"meta": {"httpStatus": "401 - Unauthorized"}}, status=401)
        return None

    async def _qualtrics_subscribe(self, request: web.Request) -> web.Response:
        if (refusal := self._qualtrics_refusal(request)) is not None:
            return refusal
        body = await request.json()
        self.subscriptions.append({**body, "id": f"SUB_{len(self.subscriptions) + 1}"})
        return web.json_response(
            {"result": {"id": self.subscriptions[-1]["id"]}, "meta": {"httpStatus": "200 - OK", "requestId": "req-2"}}
        )

    async def _qualtrics_subscriptions(self, request: web.Request) -> web.Response:
        """The documented list: result.elements (with ``encrypted``, ``scope``, ``successfulCalls``) and nextPage."""
        if (refusal := self._qualtrics_refusal(request)) is not None:
            return refusal
        elements = [
            {
                "id": sub["id"],
                "scope": "citylab",
                "topics": sub["topics"],
                "publicationUrl": sub["publicationUrl"],
                "encrypted": bool(sub.get("encrypt")),
                "successfulCalls": 0,
            }
            for sub in self.subscriptions
        ]
        return web.json_response(
            {
                "result": {"elements": elements, "nextPage": None},
                "meta": {"httpStatus": "200 - OK", "requestId": "req-3"},
            }
        )

    async def _qualtrics_unsubscribe(self, request: web.Request) -> web.Response:
        if (refusal := self._qualtrics_refusal(request)) is not None:
            return refusal
        before = len(self.subscriptions)
        self.subscriptions = [s for s in self.subscriptions if s["id"] != request.match_info["id"]]
        if len(self.subscriptions) == before:
            return web.json_response({"meta": {"httpStatus": "404 - Not Found"}}, status=404)
        return web.json_response({"meta": {"httpStatus": "200 - OK", "requestId": "req-4"}})

    async def _surveymonkey_details(self, request: web.Request) -> web.Response:
        import time

        self.requests.append((request.method, request.path, time.monotonic()))
        if request.headers.get("Authorization") != f"Bearer {SURVEYMONKEY_TOKEN}":
            return web.json_response({"error": {"id": "1011", "name": "Authorization Error"}}, status=401)
        response_id = request.match_info["response"]
        if (failure := await self._failure_or_hang(request, response_id, "surveymonkey")) is not None:
            return failure
        if response_id not in self.surveymonkey:
            return web.json_response({"error": {"id": "1020", "name": "Resource Not Found"}}, status=404)
        return web.json_response(self.surveymonkey[response_id])


async def start(platform: FakePlatform, *more: Callable[[web.Application], None]) -> web.AppRunner:
    """Serve the stand-in on a free loopback port; ``more`` add routes (e.g. the export API's)."""
    app = platform.app()
    for add in more:
        add(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    platform.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    return runner
