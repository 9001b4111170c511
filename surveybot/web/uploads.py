"""Partner uploads: ``POST /api/networks/{network}/contacts`` for scripts, ``/upload`` for people.

Both run the same import as ``surveybot contacts import`` and answer the same report. A network's token
reaches only its own network, and its upload is a network's (see :mod:`surveybot.contacts.merge`): the report
and ``GET`` speak only of that network's own listing, never of what other networks listed. A coordinator's
token reaches every network and imports as the CLI does. The file is streamed to a temporary file (at most
``MAX_UPLOAD`` bytes) and imported in a worker thread with its own database connection, so the service keeps
answering webhooks meanwhile.
"""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, StreamReader, web

from surveybot.contacts import store
from surveybot.contacts.importer import ImportReport, check_network, import_contacts
from surveybot.db import open_db
from surveybot.errors import FileRefused, InvalidInput
from surveybot.web.auth import TooManyTries, checked, from_header, may_use_network, refuse
from surveybot.web.keys import DB, SETTINGS
from surveybot.web.pages import FORM_ERRORS, render

MAX_UPLOAD = 50 * 1024 * 1024
CHUNK = 64 * 1024


class TooLarge(Exception):
    pass


async def _save(stream: BodyPartReader | StreamReader, folder: str) -> Path:
    """Copy a request body or multipart part into a temporary file, refusing more than MAX_UPLOAD bytes."""
    handle, name = tempfile.mkstemp(suffix=".csv", dir=folder)
    size = 0
    with os.fdopen(handle, "wb") as out:
        while True:
            chunk = await (stream.read_chunk(CHUNK) if isinstance(stream, BodyPartReader) else stream.read(CHUNK))
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_UPLOAD:
                raise TooLarge
            out.write(chunk)
    return Path(name)


def _who(token: dict[str, Any]) -> str:
    return "network" if token["role"] == "network" else "coordinator"


async def _import(
    request: web.Request, path: Path, network: str, filename: str, dry_run: bool, by: str
) -> ImportReport:
    settings = request.app[SETTINGS]

    def work() -> ImportReport:
        db = open_db(settings.db_path, migrate=False)
        try:
            return import_contacts(db, path, network, by=by, filename=filename, source="web", dry_run=dry_run)
        finally:
            db.close()

    return await asyncio.to_thread(work)


async def api_upload(request: web.Request) -> web.Response:
    network = request.match_info["network"]
    token = from_header(request)
    if (reason := may_use_network(token, network)) is not None:
        return refuse(reason, token)
    assert token is not None  # may_use_network refuses a missing token
    if token["role"] == "network":
        network = token["network"]  # the name as the token spells it
    dry_run = request.query.get("dry_run", "") in ("1", "true", "yes")
    with tempfile.TemporaryDirectory() as folder:
        try:
            if request.content_type.startswith("multipart/"):
                reader = await request.multipart()
                # A part that is itself multipart (several files in one field, RFC 2388) is no file.
                part = await reader.next()
                while part is not None and not (isinstance(part, BodyPartReader) and part.name == "file"):
                    part = await reader.next()
                if part is None:
                    return web.json_response({"error": "no 'file' field in the form"}, status=400)
                filename, path = part.filename or "upload.csv", await _save(part, folder)
            else:
                filename = request.query.get("filename", "upload.csv")
                path = await _save(request.content, folder)
        except TooLarge:
            return web.json_response({"error": f"the file is larger than {MAX_UPLOAD // 2**20} MB"}, status=413)
        except FORM_ERRORS:
            return web.json_response({"error": "the multipart form could not be read"}, status=400)
        try:
            report = await _import(request, path, network, filename, dry_run, _who(token))
        except (FileRefused, InvalidInput) as exc:
            return web.json_response({"error": str(exc)}, status=422)
    return web.json_response(report.as_json())


async def api_list(request: web.Request) -> web.Response:
    network = request.match_info["network"]
    token = from_header(request)
    if (reason := may_use_network(token, network)) is not None:
        return refuse(reason, token)
    assert token is not None  # may_use_network refuses a missing token
    if token["role"] == "network":
        network = token["network"]
    # The network's own listing: its values, and no word of other networks that list the same people.
    keys = ("email", "name", "city", "country", "region", "language")
    rows = store.network_listing(request.app[DB], network)
    return web.json_response({"contacts": [{**{k: r[k] for k in keys}, "networks": [network]} for r in rows]})


async def upload_form(request: web.Request) -> web.Response:
    return render(request, "upload.html.j2", report=None, error=None, network="")


async def upload_page(request: web.Request) -> web.Response:
    """The form's POST: token and options come as fields before the file, as the form orders them."""
    fields: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as folder:
        path: Path | None = None
        filename = ""
        try:
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    continue  # a nested multipart (several files in one field) is no field of this form
                if part.name == "file" and part.filename:
                    filename, path = part.filename, await _save(part, folder)
                elif part.name in ("token", "network", "dry_run"):
                    fields[part.name] = (await part.text())[:500]
        except TooLarge:
            return _page_error(
                request,
                413,
                f"El archivo supera {MAX_UPLOAD // 2**20} MB. / The file is larger than {MAX_UPLOAD // 2**20} MB.",
                fields,
            )
        except FORM_ERRORS:
            return _page_error(request, 400, "El formulario no se pudo leer. / The form could not be read.", fields)
        try:
            token = checked(request, fields.get("token", "").strip())
        except TooManyTries as exc:
            refused = _page_error(
                request,
                429,
                f"Demasiados intentos fallidos; vuelva a intentarlo en {math.ceil(exc.wait / 60)} min. / "
                f"Too many failed attempts; try again in {math.ceil(exc.wait / 60)} min.",
                fields,
            )
            refused.headers["Retry-After"] = str(math.ceil(exc.wait))
            return refused
        if token is None:
            return _page_error(
                request, 401, "La clave de acceso no es válida. / The access token is not valid.", fields
            )
        # The field names the network; a network's token may leave it blank but not name another one.
        network = fields.get("network", "").strip() or (token.get("network") or "")
        if not network:
            return _page_error(request, 400, "Indique la red. / Name the network.", fields)
        if token["role"] == "researcher" or may_use_network(token, network) is not None:
            return _page_error(
                request, 403, "Esta clave no sirve para esa red. / This token is not for that network.", fields
            )
        if token["role"] == "network":
            network = token["network"]  # the name as the token spells it
        if path is None:
            return _page_error(request, 400, "Elija un archivo CSV. / Choose a CSV file.", fields)
        try:
            check_network(network)
            report = await _import(request, path, network, filename, fields.get("dry_run") == "1", _who(token))
        except (FileRefused, InvalidInput) as exc:
            return _page_error(request, 422, f"Archivo rechazado / File refused: {exc}", fields)
    return render(request, "upload.html.j2", report=report.as_json(), error=None, network=network)


def _page_error(request: web.Request, status: int, message: str, fields: dict[str, Any]) -> web.Response:
    return render(
        request, "upload.html.j2", status=status, report=None, error=message, network=fields.get("network", "")
    )


def setup(app: web.Application) -> None:
    app.router.add_post("/api/networks/{network}/contacts", api_upload)
    app.router.add_get("/api/networks/{network}/contacts", api_list)
    app.router.add_get("/upload", upload_form)
    app.router.add_post("/upload", upload_page)
