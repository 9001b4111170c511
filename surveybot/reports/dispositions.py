"""Final dispositions of a wave's invited recipients, coded as the AAPOR Standard Definitions code them, and
the response rates computed from them.

Each recipient gets one code, the best outcome winning:

    I   complete response (a second one of the same person changes nothing)
    P   partial response whose progress reached the threshold (default 50 %)
    R   break-off below the threshold, or an opt-out (refusal)
    NC  out of office for the whole field period (non-contact)
    UO  hard bounce, or no reaction at all (unknown eligibility, other)

``O``, ``UH`` and ``NE`` are kept as keys so the table is the standard one, but an e-mail survey of named
officers has no case that falls there. Unmatched responses (their token names nobody) are not cases.

Rates (Standard Definitions, 2023): RR1 = I / (I+P+R+NC+O+UH+UO); RR2 = (I+P) / (same); COOP1 = I / (I+P+R+O);
REF1 = R / (I+P+R+NC+O+UH+UO); CON1 = (I+P+R+O) / (same). A zero denominator gives None.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from sqlite_utils import Database

CODES = ("I", "P", "R", "NC", "O", "UH", "UO", "NE")
DEFAULT_THRESHOLD = 50
NO_LANGUAGE = "en+es"  # contacts with no preference get both languages


def rates(counts: dict[str, int]) -> dict[str, float | None]:
    i, p, r, nc, o, uh, uo = (counts.get(code, 0) for code in ("I", "P", "R", "NC", "O", "UH", "UO"))
    cases = i + p + r + nc + o + uh + uo
    contacted = i + p + r + o

    def share(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    return {
        "rr1": share(i, cases),
        "rr2": share(i + p, cases),
        "coop1": share(i, contacted),
        "ref1": share(r, cases),
        "con1": share(contacted, cases),
    }


def code(
    complete: bool,
    partial_progress: int | None,
    opted_out: bool,
    out_of_office: bool,
    threshold: int = DEFAULT_THRESHOLD,
) -> str:
    """One recipient's disposition: the best of what they did."""
    if complete:
        return "I"
    if partial_progress is not None and partial_progress >= threshold:
        return "P"
    if partial_progress is not None or opted_out:
        return "R"
    if out_of_office:
        return "NC"
    return "UO"


def recipient_codes(db: Database, wave_id: int, threshold: int = DEFAULT_THRESHOLD) -> list[dict[str, Any]]:
    """Every invited recipient of the wave with its disposition code and the groups it counts in."""
    rows = db.execute(
        """SELECT r.contact_id, c.region, c.language, c.country,
                  EXISTS (SELECT 1 FROM responses x WHERE x.wave_id = r.wave_id AND x.contact_id = r.contact_id
                          AND x.status = 'complete') OR r.completed_at IS NOT NULL,
                  (SELECT MAX(COALESCE(p.progress, 0)) FROM partial_audit p
                   WHERE p.wave_id = r.wave_id AND p.contact_id = r.contact_id),
                  s.kind,
                  -- away for the whole field period: an automatic reply came back for every survey message
                  -- the relay took (invitation and each reminder), and at least one did
                  CASE WHEN EXISTS (SELECT 1 FROM mail_replies m WHERE m.contact_id = r.contact_id
                                    AND m.wave_id = r.wave_id AND m.kind = 'auto_reply')
                  THEN (SELECT count(*) FROM outbox o
                        WHERE o.wave_id = r.wave_id AND o.to_email = c.email AND o.state = 'sent'
                          AND o.kind IN ('invitation', 'reminder', 'final_reminder'))
                       BETWEEN 1 AND (SELECT count(*) FROM mail_replies m
                                      WHERE m.contact_id = r.contact_id AND m.wave_id = r.wave_id
                                        AND m.kind = 'auto_reply')
                  ELSE 0 END
           FROM recipients r JOIN contacts c ON c.id = r.contact_id
           LEFT JOIN suppressions s ON s.email = c.email
           WHERE r.wave_id = ?""",
        [wave_id],
    ).fetchall()
    networks: dict[int, list[str]] = defaultdict(list)
    for contact_id, network in db.execute(
        """SELECT DISTINCT s.contact_id, s.network FROM contact_sources s
               JOIN recipients r ON r.contact_id = s.contact_id AND r.wave_id = ?""",
        [wave_id],
    ):
        networks[contact_id].append(network)
    result = []
    for contact_id, region, language, country, complete, progress, suppression, away in rows:
        result.append(
            {
                "contact_id": contact_id,
                "code": code(bool(complete), progress, suppression == "opt_out", bool(away), threshold),
                "region": region or "",
                "language": language or NO_LANGUAGE,
                "country": country or "",
                "networks": networks.get(contact_id, []),
            }
        )
    return result


def tally(codes: Iterable[str]) -> dict[str, int]:
    counted = Counter(codes)
    return {c: counted.get(c, 0) for c in CODES}


def figures(counts: dict[str, int]) -> dict[str, Any]:
    return {"dispositions": counts, **rates(counts)}


def by_group(recipients: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    """Dispositions and rates per group; a contact listed by two networks counts in both."""
    groups: dict[str, list[str]] = defaultdict(list)
    for recipient in recipients:
        values = recipient[key] if isinstance(recipient[key], list) else [recipient[key]]
        for value in values:
            groups[value or "unknown"].append(recipient["code"])
    return {name: figures(tally(codes)) for name, codes in sorted(groups.items(), key=lambda kv: kv[0].lower())}


def wave_dispositions(
    db: Database, wave_id: int, threshold: int = DEFAULT_THRESHOLD, network: str | None = None
) -> dict[str, Any]:
    """Dispositions and rates overall and by network, region, country and language; ``network`` limits
    everything to the recipients that network listed (a partner's own view)."""
    recipients = recipient_codes(db, wave_id, threshold)
    if network is not None:
        recipients = [r for r in recipients if network.lower() in (n.lower() for n in r["networks"])]
    overall = tally(r["code"] for r in recipients)
    return {
        "dispositions": overall,
        **rates(overall),
        "by_network": by_group(recipients, "networks"),
        "by_region": by_group(recipients, "region"),
        "by_country": by_group(recipients, "country"),
        "by_language": by_group(recipients, "language"),
        "partial_threshold": threshold,
    }
