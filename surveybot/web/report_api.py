"""``GET /api/waves/{wave}/report``: the field report's JSON (as ``surveybot report --format json``), for a
coordinator's token, so a team can pull its figures into R or pandas."""

from __future__ import annotations

from aiohttp import web

from surveybot import waves
from surveybot.reports.dispositions import DEFAULT_THRESHOLD
from surveybot.reports.method import field_report
from surveybot.web.auth import from_header, refuse
from surveybot.web.keys import DB


async def report(request: web.Request) -> web.Response:
    token = from_header(request)
    if token is None or token["role"] != "coordinator":
        return refuse("a coordinator's access token is needed" if token else "a valid access token is needed", token)
    language = request.query.get("language", "en").lower()
    if language not in ("en", "es"):
        return web.json_response({"error": "language must be en or es"}, status=400)
    raw = request.query.get("partial_threshold", str(DEFAULT_THRESHOLD))
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 100:
        return web.json_response({"error": "partial_threshold must be a whole number from 1 to 100"}, status=400)
    wave = waves.get_wave(request.app[DB], request.match_info["wave"])  # NotFound answers 404
    return web.json_response(field_report(request.app[DB], wave, language=language, threshold=int(raw)))


def setup(app: web.Application) -> None:
    app.router.add_get("/api/waves/{wave}/report", report)
