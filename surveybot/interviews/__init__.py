"""Interviews: from an opt-in on the survey's last question to a booked, reminded, 30-minute call.

``slots`` (researchers' availability, split into bookable slots), ``queue`` (the respondent's way through
queued → invited → booked → completed | no_show | declined | expired | cancelled, invitations and expiry),
``booking`` (book, reschedule, cancel: one booking per slot, whatever races), ``calendar`` (the .ics) and
``messages`` (the e-mails, in the respondent's language, built when they are sent).
"""

STATES = ("queued", "invited", "booked", "completed", "no_show", "declined", "expired", "cancelled")
OPEN_STATES = ("queued", "invited", "booked")
# What a researcher may set by hand, from which states.
MARKABLE = {
    "completed": ("booked",),
    "no_show": ("booked",),
    "declined": ("queued", "invited", "booked"),
    "cancelled": ("queued", "invited", "booked"),
}
