"""Qualtrics response exports: pulling a survey's recorded responses without an event subscription.

Three calls (header ``X-API-TOKEN``, which any user's token may make; subscriptions need a brand administrator's):

1. ``POST {base}/API/v3/surveys/{id}/export-responses`` with ``{"format": "ndjson", "compress": true,
   "allowContinuation": true}`` and, after the first export, the ``continuationToken`` the last one gave, so only
   responses recorded or changed since come back; answered ``result.progressId``;
2. ``GET …/export-responses/{progressId}`` until ``result.status`` is ``complete`` (then ``fileId`` and the next
   ``continuationToken``) or ``failed``;
3. ``GET …/export-responses/{fileId}/file``: a zip holding one file, one response object per line.

The file is spooled to disk and read a line at a time, so an export of tens of thousands of responses never sits
in memory. Events come back in batches with the cursor to store once each is recorded: the old token until the
last batch, the new one with it, so an interrupted pull repeats (recording is idempotent), never skips.

Qualtrics exports recorded responses only: one still in progress is not there until its in-progress timeout
closes it, recorded as unfinished (a partial).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import tempfile
import zipfile
import zlib
from collections.abc import AsyncGenerator, Iterator
from typing import IO, TYPE_CHECKING, Any

import aiohttp

from surveybot.platforms import ApiError, ResponseEvent
from surveybot.platforms.qualtrics import _call, event_from, refuse_failure

if TYPE_CHECKING:
    from surveybot.config import Settings

log = logging.getLogger("surveybot.qualtrics")
BATCH = 200  # events per batch handed back
CHUNK = 64 * 1024
FIRST_WAIT_S, LONGEST_WAIT_S = 0.2, 5.0  # between progress checks, growing
EXPORT_DEADLINE_S = 30 * 60  # an export not ready by then is abandoned; the next pull starts another


def _settings(settings: Settings) -> tuple[str, str]:
    if not settings.qualtrics_base_url or not settings.qualtrics_api_token:
        raise ApiError(
            "pulling Qualtrics responses needs QUALTRICS_BASE_URL and QUALTRICS_API_TOKEN",
            temporary=False,
            refused=True,
        )
    return settings.qualtrics_base_url, settings.qualtrics_api_token


def _result(data: object, what: str) -> dict[str, Any]:
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(result, dict):
        raise ApiError(f"Qualtrics answered the {what} without a result", temporary=True)
    return result


async def _start(session: aiohttp.ClientSession, url: str, token: str, cursor: str | None) -> str:
    body: dict[str, Any] = {"format": "ndjson", "compress": True, "allowContinuation": True}
    if cursor:
        body["continuationToken"] = cursor
    try:
        result = _result(await _call(session, "POST", url, token, json=body), "export request")
    except ApiError as exc:
        if exc.not_found:
            raise ApiError(
                "Qualtrics knows no such survey (404): check the wave's survey id (SV_…) and that the API token's "
                "user can see the survey",
                temporary=False,
            ) from None
        raise
    progress_id = result.get("progressId")
    if not isinstance(progress_id, str) or not progress_id:
        raise ApiError("Qualtrics started no export (no progressId)", temporary=True)
    return progress_id


async def _wait(session: aiohttp.ClientSession, url: str, token: str) -> tuple[str, str | None]:
    """(fileId, next continuation token) once the export is complete."""
    loop = asyncio.get_running_loop()
    deadline, pause = loop.time() + EXPORT_DEADLINE_S, FIRST_WAIT_S
    while True:
        try:
            result = _result(await _call(session, "GET", url, token), "export progress")
        except ApiError as exc:
            if exc.not_found:  # the export is gone: the documented answer is to stop polling and start again
                raise ApiError(
                    "Qualtrics lost the export (404); the next pull starts another", temporary=True
                ) from None
            raise
        status = result.get("status")
        if status == "complete":
            file_id = result.get("fileId")
            if not isinstance(file_id, str) or not file_id:
                raise ApiError("Qualtrics finished the export without a fileId", temporary=True)
            token_next = result.get("continuationToken")
            return file_id, token_next if isinstance(token_next, str) and token_next else None
        if status == "failed":
            raise ApiError("Qualtrics could not build the export (status failed); the next pull tries again", True)
        if loop.time() > deadline:
            raise ApiError(f"the Qualtrics export was not ready after {EXPORT_DEADLINE_S // 60} minutes", True)
        await asyncio.sleep(pause)
        pause = min(LONGEST_WAIT_S, pause * 2)


async def _download(session: aiohttp.ClientSession, url: str, token: str, spool: IO[bytes], idle: float) -> None:
    # A large export may take longer than any one API call: only a silence of ``idle`` seconds ends it.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=idle, sock_read=idle)
    try:
        async with session.get(url, headers={"X-API-TOKEN": token}, timeout=timeout) as response:
            refuse_failure(response)
            async for chunk in response.content.iter_chunked(CHUNK):
                spool.write(chunk)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ApiError(f"the Qualtrics export download failed: {exc.__class__.__name__}", temporary=True) from None
    spool.seek(0)


def _lines(spool: IO[bytes]) -> Iterator[str]:
    """The lines of the export: of the zip's one file, or of the file itself when it came uncompressed."""
    if spool.read(4) != b"PK\x03\x04":
        spool.seek(0)
        text = io.TextIOWrapper(spool, encoding="utf-8-sig")
        try:
            yield from text
        finally:
            text.detach()  # the spool is its owner's to close
        return
    spool.seek(0)
    try:
        archive = zipfile.ZipFile(spool)
    except zipfile.BadZipFile:
        raise ApiError("the Qualtrics export is a damaged zip file", temporary=True) from None
    with archive:
        names = [info.filename for info in archive.infolist() if not info.is_dir()]
        if names:
            with io.TextIOWrapper(archive.open(names[0]), encoding="utf-8-sig") as text:
                yield from text


def _events(spool: IO[bytes]) -> Iterator[ResponseEvent]:
    try:
        yield from _read(spool)
    except (zipfile.BadZipFile, zlib.error, EOFError, UnicodeDecodeError) as exc:  # a download damaged on its way
        raise ApiError(
            f"the Qualtrics export file is damaged ({type(exc).__name__}); the next pull reads it again", True
        ) from None


def _read(spool: IO[bytes]) -> Iterator[ResponseEvent]:
    for number, line in enumerate(_lines(spool), start=1):
        if not line.strip():
            continue
        try:
            response = json.loads(line)
        except ValueError:
            log.warning("Qualtrics export line %d is not JSON; skipped", number)
            continue
        values = response.get("values") if isinstance(response, dict) else None
        response_id = response.get("responseId") if isinstance(response, dict) else None
        if not response_id and isinstance(values, dict):
            response_id = values.get("_recordId")
        event = event_from(str(response_id), response) if response_id else None
        if event is None:
            log.warning("Qualtrics export line %d holds no response (responseId and values); skipped", number)
            continue
        yield event


async def pull(
    session: aiohttp.ClientSession, settings: Settings, wave: dict[str, Any], cursor: str | None
) -> AsyncGenerator[tuple[list[ResponseEvent], str | None], None]:
    """Batches of events from one export, each with the cursor to store once it is recorded."""
    base, token = _settings(settings)
    exports = f"{base}/API/v3/surveys/{wave['survey_id']}/export-responses"
    try:
        progress_id = await _start(session, exports, token, cursor)
    except ApiError as exc:
        if not cursor or exc.temporary or exc.refused or exc.not_found:
            raise
        # a continuation token Qualtrics no longer takes (expired, or from another survey): read everything again
        # rather than never again; recording is once per response, so nothing is counted twice
        log.warning("Qualtrics refused the stored continuation token (%s); exporting every response again", exc)
        cursor = None
        progress_id = await _start(session, exports, token, cursor)
    file_id, next_cursor = await _wait(session, f"{exports}/{progress_id}", token)
    with tempfile.TemporaryFile() as spool:
        await _download(session, f"{exports}/{file_id}/file", token, spool, settings.network_timeout)
        batch: list[ResponseEvent] = []
        for event in _events(spool):
            if len(batch) == BATCH:  # handed back only once another follows: the last carries the new cursor
                yield batch, cursor
                batch = []
            batch.append(event)
        yield batch, next_cursor or cursor
