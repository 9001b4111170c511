"""A return path per message (VERP): ``bounces+<key>@lab.example.org`` for ``SURVEYBOT_BOUNCE_ADDRESS``
``bounces@lab.example.org``, the key naming the outbox row under an HMAC of the service secret.

A bounce that arrives hours later is addressed to that return path, so the key ties it to the one message
(and recipient) it is about, even when the bounce quotes nothing of the original. The key is signed, so
nobody without the secret can write one that suppresses an address; it is lower-case letters and digits
only, because some relays fold the case of the local part.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

_KEY = re.compile(r"^([0-9a-f]{1,12})-([a-z2-7]{20})$")


def _signature(secret: str, outbox_id: int) -> str:
    digest = hmac.new(secret.encode(), f"verp\x1f{outbox_id}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode().lower()[:20]  # 100 bits


def key_for(secret: str, outbox_id: int) -> str:
    """The signed reference of outbox row ``outbox_id`` (at most 33 characters)."""
    return f"{outbox_id:x}-{_signature(secret, outbox_id)}"


def return_path(secret: str, bounce_address: str, outbox_id: int) -> str:
    """``local+key@domain`` for the bounce address ``local@domain``."""
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}+{key_for(secret, outbox_id)}@{domain}"


def outbox_id_of(secret: str, bounce_address: str, address: str) -> int | None:
    """The outbox row a return path names, or None when it is not one of ours or its signature is wrong."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    base_local, _, base_domain = bounce_address.rpartition("@")
    if domain.lower() != base_domain.lower():
        return None
    prefix = base_local.lower() + "+"
    if not local.lower().startswith(prefix):
        return None
    found = _KEY.match(local[len(prefix) :].lower())
    if found is None:
        return None
    outbox_id = int(found.group(1), 16)
    if not hmac.compare_digest(found.group(2), _signature(secret, outbox_id)):
        return None
    return outbox_id
