"""What goes through DATA arrives exactly as built: lines that start with a period survive the relay's
un-stuffing, the SIZE announced is the size sent, and a message not yet in wire form is put into it."""

from __future__ import annotations

import asyncio

import pytest

from surveybot.clock import utcnow
from surveybot.config import MailTarget
from surveybot.mail.message import Outgoing, build_message
from surveybot.mail.render import Rendered
from surveybot.mail.transports import Withdrawn, open_transport
from tests.mailsink import Handler, MailSink

PERIOD_LINES = [
    ".",  # a line of one period is the end of data unless doubled
    ".hidden start",
    "..two already",
    "middle . and . periods",
    "",
    ".",
]


@pytest.fixture
def sink():
    server = MailSink().start()
    yield server
    server.stop()


def smtp(sink: MailSink):
    return open_transport(MailTarget(kind="smtp", host="127.0.0.1", port=sink.port), connections=1, timeout=10)


async def test_lines_starting_with_a_period_arrive_intact_and_size_is_what_was_sent(sink):
    body = "\n".join(PERIOD_LINES)
    message = build_message(
        Rendered(".Subject", body, body, ("en",)),
        sender="Lab <lab@example.org>",
        to_email="a@x.org",
        to_name="A",
        now=utcnow(),
    )
    transport = smtp(sink)
    await transport.send(message)
    await transport.send(message)  # the connection is still in step after the first
    await transport.close()
    assert len(sink.received) == 2
    for received in sink.received:
        assert received.raw == message.data
        assert received.message.get_body(("plain",)).get_content().replace("\r\n", "\n") == body + "\n"
    assert sink.handler.sizes == [len(message.data)] * 2


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"Subject: lf\n\n.line one\nline two", b"Subject: lf\r\n\r\n.line one\r\nline two\r\n"),
        (b"Subject: cr\r\rlone\r.dot\r\n", b"Subject: cr\r\n\r\nlone\r\n.dot\r\n"),
        (b".Subject: first\r\n\r\nbody\r\n", b".Subject: first\r\n\r\nbody\r\n"),
    ],
)
async def test_a_message_not_in_wire_form_is_put_into_it(sink, data, expected):
    transport = smtp(sink)
    await transport.send(Outgoing("lab@example.org", "a@x.org", "<1@example.org>", data))
    await transport.close()
    assert [r.raw for r in sink.received] == [expected]
    assert sink.handler.sizes == [len(expected)]


class SlowReset(Handler):
    """Answers RSET only after the client's timeout: a relay that stalls while an envelope is withdrawn."""

    async def handle_RSET(self, server, session, envelope):
        await asyncio.sleep(2)
        return "250 OK"


async def test_a_message_withdrawn_before_data_stays_withdrawn_whatever_the_reset_meets():
    """A hook that holds a message back (a wave paused meanwhile) after the relay took the envelope: the
    message is withdrawn — not a failure to count against it — even when the relay stalls on the reset, and
    the next message goes out on a fresh connection."""
    sink = MailSink()
    sink.handler = SlowReset()
    sink.start()
    message = build_message(
        Rendered("Subject", "body", "<p>body</p>", ("en",)),
        sender="Lab <lab@example.org>",
        to_email="a@x.org",
        to_name="A",
        now=utcnow(),
    )

    async def withdraw() -> None:
        raise Withdrawn(("release", 7))

    transport = open_transport(MailTarget(kind="smtp", host="127.0.0.1", port=sink.port), connections=1, timeout=0.5)
    with pytest.raises(Withdrawn) as withdrawn:
        await transport.send(message, before_data=withdraw)
    assert withdrawn.value.outcome == ("release", 7)
    try:
        await transport.send(message)
        await transport.close()
    finally:
        sink.stop()
    assert [r.raw for r in sink.received] == [message.data]
