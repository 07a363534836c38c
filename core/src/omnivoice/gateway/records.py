"""Call records: the built-in observer that writes one JSON Lines file per call.

Lines are appended as the call goes, each written through to the operating system, so a
crash loses at most the event being written; secrets are taken out of each line
(:mod:`omnivoice.telemetry.redact`). The first line identifies the call, then one
line per event, and a last line with the transcript and the metrics once the call ended.
:func:`read_call_record` assembles a file into one record, complete or not.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any

import attrs

from omnivoice.calls import CallInfo
from omnivoice.hookspecs import hookimpl
from omnivoice.telemetry.redact import redact

__all__ = ["CallRecords", "read_call_record"]


class CallRecords:
    """Writes ``DIRECTORY/<start time>-<call id>.jsonl`` for every call."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, IO[str]] = {}
        self.paths: dict[str, Path] = {}

    def _write(self, call: CallInfo, document: dict[str, Any]) -> None:
        handle = self._files.get(call.call_id)
        if handle is None:
            return
        handle.write(redact(json.dumps(document, default=str)) + "\n")
        handle.flush()

    @hookimpl
    def call_started(self, call: CallInfo) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(call.started_at or time.time()))
        path = self.directory / f"{stamp}-{call.call_id}.jsonl"
        self._files[call.call_id] = path.open("a", encoding="utf-8")
        self.paths[call.call_id] = path
        self._write(call, {"record": "call", **attrs.asdict(call)})

    @hookimpl
    def call_event(self, call: CallInfo, event: Any) -> None:
        self._write(call, {"record": "event", **event.to_dict()})

    @hookimpl
    def call_ended(self, call: CallInfo, transcript: Any, metrics: Any) -> None:
        self._write(
            call,
            {
                "record": "end",
                "transcript": [turn.to_dict() for turn in transcript],
                "metrics": metrics,
            },
        )
        handle = self._files.pop(call.call_id, None)
        if handle is not None:
            handle.close()


def read_call_record(path: str | Path) -> dict[str, Any]:
    """One call's record: ``call``, ``events``, ``transcript``, ``metrics``, ``complete``.

    A file cut short by a crash gives what it holds, with ``complete`` false; a torn last
    line is ignored.
    """
    record: dict[str, Any] = {"call": None, "events": [], "transcript": None, "metrics": None}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        kind = document.pop("record", None)
        if kind == "call":
            record["call"] = document
        elif kind == "event":
            record["events"].append(document)
        elif kind == "end":
            record["transcript"] = document["transcript"]
            record["metrics"] = document["metrics"]
    record["complete"] = record["metrics"] is not None
    return record
