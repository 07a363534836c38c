"""anyio helpers every layer uses: a lock that is free when uncontended, closing now.

Lower layers (the WebSocket shell, the carrier side) and higher ones (providers' sessions,
the bridge, the call driver) share these, so they live below all of them.
"""

from __future__ import annotations

import logging

import anyio

from omnivoice.errors import describe_error

__all__ = ["aclose_now", "fast_lock"]

log = logging.getLogger(__name__)

_CLOSE_WITHIN = 2.0


def fast_lock() -> anyio.Lock:
    """A fair lock whose uncontended acquisition is a plain call: no trip through the
    event loop (a pending cancellation is still raised), for the paths taken per frame."""
    return anyio.Lock(fast_acquire=True)


async def aclose_now(resource: object, *, within: float = _CLOSE_WITHIN) -> None:
    """Close ``resource`` (anything with an ``aclose()``, such as an async generator) now.

    Shielded from cancellation, so that it runs even while the caller is being cancelled
    (an async generator left early would otherwise be finalised later, outside any task),
    and bounded by ``within`` seconds; a failure is logged at debug level and not raised:
    the resource was being abandoned.
    """
    close = getattr(resource, "aclose", None)
    if close is None:
        return
    with anyio.move_on_after(within, shield=True):
        try:
            await close()
        except Exception as exc:
            log.debug("closing %r failed: %s", resource, describe_error(exc))
