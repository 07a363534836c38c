"""The resumption handles of one call: the latest one, and what it covers.

The service sends ``sessionResumptionUpdate`` with a new handle at points it can resume
from (never while it generates or waits for function answers: then ``resumable`` is false).
:class:`Handles` keeps the latest resumable handle, numbers the handles (a connection
resumed from handle *n* knows everything that happened before handle *n* was issued), and
says whether the latest one covers everything said since (a good moment to move).
"""

from __future__ import annotations

from omnivoice_gemini_live.protocol import ResumptionUpdate

__all__ = ["Handles"]


class Handles:
    """The resumption state of one call's server session."""

    def __init__(self) -> None:
        self.handle: str | None = None
        """The latest resumable handle (``None``: none yet, or a new session began)."""
        self.issued = 0
        """Resumable handles received so far: the number of the next one, minus one."""
        self.number = 0
        """The number of :attr:`handle`."""
        self.fresh = False
        """A handle came after the last thing the model or the caller did."""
        self.refused = False
        """The server refused to resume :attr:`handle`: a fresh session is needed."""

    @property
    def usable(self) -> str | None:
        """The handle to resume with, if any."""
        return None if self.refused else self.handle

    def update(self, event: ResumptionUpdate) -> None:
        if event.resumable and event.handle:
            self.issued += 1
            self.handle, self.number = event.handle, self.issued
            self.refused = False
            self.fresh = True
        else:
            self.fresh = False  # a point the service cannot resume from

    def activity(self) -> None:
        """Something was said or called: the latest handle no longer covers it all."""
        self.fresh = False

    def forget(self) -> None:
        """A fresh server session began: the old handles are of no use to it."""
        self.handle, self.refused, self.fresh = None, False, False
