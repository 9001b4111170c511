"""Logging for ``surveybot serve``: one line per record on stderr, written in batches.

Every request writes an access-log line; formatting, writing and flushing each one as it comes costs a
large share of a busy webhook endpoint's time. Records are gathered, then formatted and written together
by a background thread at most ``interval`` seconds later; a warning or an error is written at once, with
everything before it.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class BatchedStreamHandler(logging.StreamHandler[TextIO]):
    def __init__(self, stream: TextIO | None = None, interval: float = 0.5, batch: int = 256) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self.interval, self.batch = interval, batch
        self._records: list[logging.LogRecord] = []
        threading.Thread(target=self._flush_every, name="log-flush", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:  # called with the handler's lock held
        if record.args or record.exc_info:  # format now, while the values are as they were
            try:
                record.msg, record.args = record.getMessage(), None
                if record.exc_info:
                    record.exc_text = logging.Formatter().formatException(record.exc_info)
                    record.exc_info = None
            except Exception:
                self.handleError(record)
                return
        self._records.append(record)
        if record.levelno >= logging.WARNING or len(self._records) >= self.batch:
            self.flush()

    def flush(self) -> None:
        self.acquire()  # the handler's lock (an RLock: emit calls this with it held)
        try:
            records, self._records = self._records, []
            if not records or not self.stream:
                return
            lines = []
            for record in records:
                try:
                    lines.append(self.format(record))
                except Exception:
                    self.handleError(record)
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
        finally:
            self.release()

    def _flush_every(self) -> None:
        while True:
            time.sleep(self.interval)
            self.flush()


def setup(level: int = logging.INFO) -> None:
    # The logging HOWTO's "Optimization": do not collect what the format never shows (the caller's file and
    # line need a walk up the stack on every record).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = BatchedStreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # it logs every run of the 1 s plan check
