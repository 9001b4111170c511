"""Qualtrics' response-export API for the local stand-in (tests/fake_platforms.py), from Qualtrics' documentation
("Start Response Export", "Get Response Export Progress", "Get Response Export File"):

    POST /API/v3/surveys/{survey}/export-responses            {"format", "compress", "allowContinuation",
                                                                "continuationToken"} → result.progressId
    GET  /API/v3/surveys/{survey}/export-responses/{progress} → result.percentComplete, status (inProgress,
                                                                complete, failed), fileId, continuationToken
    GET  /API/v3/surveys/{survey}/export-responses/{file}/file → a zip holding one file (or the file itself
                                                                with "compress": false)

The export holds the responses recorded in ``platform.qualtrics`` (what a respondent left, or an in-progress
response closed by its timeout); one recorded or changed since the export that gave a continuation token comes
back in the next. A failed export is HTTP 200 with ``status: failed`` and no fileId, as documented. Failures can
be scripted per call (``failures["export"]``, ``["progress"]``, ``["file"]``: statuses to answer first), and an
export can be made to take several progress checks.
"""

from __future__ import annotations

import io
import json
import secrets
import zipfile
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests import fake_platforms

FORMATS = ("csv", "tsv", "spss", "json", "ndjson", "xml")


@dataclass
class Job:
    survey: str
    format: str
    compress: bool
    continuation: bool
    rows: list[dict[str, Any]]
    version: int  # what the export covers: changes up to this one
    checks_left: int
    fail: bool = False
    file_id: str = ""


@dataclass
class QualtricsExports:
    platform: fake_platforms.FakePlatform
    checks: int = 2  # progress checks that answer inProgress before complete
    fail_next: int = 0  # exports to end with status failed
    damage_next: int = 0  # export files to serve damaged (a byte flipped inside the compressed response)
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)  # response id → labels
    jobs: dict[str, Job] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)  # continuation token → version it covers
    bodies: list[dict[str, Any]] = field(default_factory=list)  # every export request, as sent
    _seen: dict[str, str] = field(default_factory=dict)  # response id → its values when last versioned
    _versions: dict[str, int] = field(default_factory=dict)  # response id → version of its last change
    _version: int = 0

    def routes(self, app: web.Application) -> None:
        exports = "/API/v3/surveys/{survey}/export-responses"
        app.router.add_post(exports, self._start)
        app.router.add_get(exports + "/{progress}", self._progress)
        app.router.add_get(exports + "/{file}/file", self._file)

    def _changes(self) -> None:
        """Give each response recorded or edited since the last look a new version."""
        for response_id, values in self.platform.qualtrics.items():
            text = json.dumps(values, sort_keys=True)
            if self._seen.get(response_id) != text:
                self._version += 1
                self._seen[response_id], self._versions[response_id] = text, self._version

    def _refusal(self, request: web.Request, call: str) -> web.Response | None:
        self.platform.requests.append((request.method, request.path, 0.0))
        if request.headers.get("X-API-TOKEN") != fake_platforms.QUALTRICS_TOKEN:
            return web.json_response({"meta": {"httpStatus": "401 - Unauthorized"}}, status=401)
        return self.platform._failure(call)

    async def _start(self, request: web.Request) -> web.Response:
        if (refusal := self._refusal(request, "export")) is not None:
            return refusal
        body = await request.json()
        self.bodies.append(body)
        survey = request.match_info["survey"]
        if survey != "SV_city":
            return _error(404, "Not Found", "Could not find survey")
        if body.get("format") not in FORMATS:
            return _error(400, "Bad Request", "Invalid request. Missing or invalid parameter format.")
        since = 0
        if "continuationToken" in body:
            if body["continuationToken"] not in self.tokens:
                return _error(400, "Bad Request", "Invalid continuation token")
            since = self.tokens[body["continuationToken"]]
        self._changes()
        rows = [
            {
                "responseId": response_id,
                "values": values,
                "labels": self.labels.get(response_id, {}),
                "displayedFields": [k for k in values if k.startswith("QID")],
                "displayedValues": {},
            }
            for response_id, values in self.platform.qualtrics.items()
            if self._versions[response_id] > since
        ]
        progress_id = "ES_" + secrets.token_hex(8)
        fail = self.fail_next > 0
        self.fail_next -= int(fail)
        self.jobs[progress_id] = Job(
            survey,
            body["format"],
            body.get("compress", True) is not False,
            body.get("allowContinuation") is True,
            rows,
            self._version,
            self.checks,
            fail,
        )
        return _ok({"progressId": progress_id, "percentComplete": 0.0, "status": "inProgress"})

    async def _progress(self, request: web.Request) -> web.Response:
        if (refusal := self._refusal(request, "progress")) is not None:
            return refusal
        job = self.jobs.get(request.match_info["progress"])
        if job is None or job.survey != request.match_info["survey"]:
            return _error(404, "Not Found", "Could not find export")
        if job.checks_left > 0:
            job.checks_left -= 1
            done = 100.0 * (self.checks - job.checks_left) / (self.checks + 1)
            return _ok({"percentComplete": done, "status": "inProgress"})
        if job.fail:
            return _ok({"fileId": None, "percentComplete": 100, "status": "failed"})
        if not job.file_id:
            job.file_id = secrets.token_hex(8) + "-def"
            self.files[job.file_id] = _file(job)
            if self.damage_next > 0:
                self.damage_next -= 1
                data = bytearray(self.files[job.file_id])
                data[len(data) // 3] ^= 0xFF  # inside the deflated member: the zip's directory still reads
                self.files[job.file_id] = bytes(data)
        result: dict[str, Any] = {"fileId": job.file_id, "percentComplete": 100.0, "status": "complete"}
        if job.continuation:
            token = secrets.token_urlsafe(24)
            self.tokens[token] = job.version
            result["continuationToken"] = token
        return _ok(result)

    async def _file(self, request: web.Request) -> web.Response:
        if (refusal := self._refusal(request, "file")) is not None:
            return refusal
        data = self.files.get(request.match_info["file"])
        if data is None:
            return _error(404, "Not Found", "Could not find file")
        return web.Response(body=data, content_type="application/octet-stream")


def _file(job: Job) -> bytes:
    if job.format == "ndjson":
        text = "".join(json.dumps(row) + "\n" for row in job.rows)
    elif job.format == "json":
        text = json.dumps({"responses": job.rows})
    else:
        raise AssertionError(f"the stand-in writes json and ndjson exports, not {job.format}")
    if not job.compress:
        return text.encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"City diplomacy 2026.{job.format}", text)
    return buffer.getvalue()


def _ok(result: dict[str, Any]) -> web.Response:
    return web.json_response({"result": result, "meta": {"requestId": secrets.token_hex(8), "httpStatus": "200 - OK"}})


def _error(status: int, reason: str, message: str) -> web.Response:
    return web.json_response(
        {"meta": {"httpStatus": f"{status} - {reason}", "error": {"errorMessage": message, "errorCode": "RCE_1.0"}}},
        status=status,
    )
