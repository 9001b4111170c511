"""A form part that is itself multipart (RFC 2388's old form for several files in one field) is refused with a
clear error by the upload API and the upload page, and the rest of the form is still read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.service import running, settings_for, upload_service_db

OUTER, INNER = "outer-boundary", "inner-boundary"


def _form(token: str | None = None) -> bytes:
    """A multipart/form-data body: the token field (when given), then a ``file`` part holding a nested
    multipart/mixed with one CSV file."""
    parts = []
    if token is not None:
        parts.append(f'--{OUTER}\r\nContent-Disposition: form-data; name="token"\r\n\r\n{token}\r\n')
    parts.append(
        f'--{OUTER}\r\nContent-Disposition: form-data; name="file"\r\n'
        f"Content-Type: multipart/mixed; boundary={INNER}\r\n\r\n"
        f'--{INNER}\r\nContent-Disposition: file; filename="list.csv"\r\nContent-Type: text/csv\r\n\r\n'
        "email,name\r\nann@lima.example.org,Ann\r\n"
        f"\r\n--{INNER}--\r\n"
        f"\r\n--{OUTER}--\r\n"
    )
    return "".join(parts).encode()


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    settings = settings_for(tmp_path, f"maildir://{tmp_path / 'mail'}")
    db, made = upload_service_db(settings)
    async with running(settings) as (app, base), aiohttp.ClientSession() as session:
        yield {"db": db, "base": base, "session": session, "tokens": made}


def _contacts(service: dict[str, Any]) -> int:
    count: int = service["db"].execute("SELECT count(*) FROM contacts").fetchone()[0]
    return count


async def test_the_api_refuses_a_nested_multipart_file_part(service: dict[str, Any]) -> None:
    headers = {
        "Authorization": f"Bearer {service['tokens']['metropolis']}",
        "Content-Type": f"multipart/form-data; boundary={OUTER}",
    }
    url = f"{service['base']}/api/networks/Metropolis/contacts"
    async with service["session"].post(url, data=_form(), headers=headers) as response:
        assert response.status == 400, await response.text()
        assert (await response.json()) == {"error": "no 'file' field in the form"}
    assert _contacts(service) == 1  # only the contact the setting made


async def test_the_upload_page_refuses_a_nested_multipart_file_part(service: dict[str, Any]) -> None:
    headers = {"Content-Type": f"multipart/form-data; boundary={OUTER}"}
    url = f"{service['base']}/upload"
    async with service["session"].post(url, data=_form(service["tokens"]["metropolis"]), headers=headers) as response:
        page = await response.text()
    assert response.status == 400, page
    assert "Choose a CSV file." in page
    assert _contacts(service) == 1
