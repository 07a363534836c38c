"""The XML answer to a carrier's voice webhook that connects the call to a media stream.

TwiML (Twilio) and TeXML (Telnyx) share the shape
``<Response><Connect><Stream url=...><Parameter name=... value=.../></Stream></Connect>
</Response>``; each carrier's module chooses the ``<Stream>`` attributes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from xml.sax.saxutils import escape

__all__ = ["connect_stream_document"]

# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Parsers normalise raw whitespace in attribute values to spaces: keep it as references.
_ATTRIBUTE_ENTITIES = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}


def _attribute(name: str, value: str) -> str:
    if _NOT_XML.search(value):
        raise ValueError(f"the value of {name!r} has a character XML cannot carry")
    return f' {name}="{escape(value, _ATTRIBUTE_ENTITIES)}"'


def connect_stream_document(
    url: str,
    attributes: Mapping[str, str | None] | None = None,
    parameters: Mapping[str, str] | None = None,
) -> str:
    """The XML document: ``<Stream url=url>`` with ``attributes`` (``None`` values left
    out) and one ``<Parameter>`` per entry of ``parameters``, in order.

    Raises :class:`ValueError` for a value XML cannot carry (control characters).
    """
    stream = _attribute("url", url) + "".join(
        _attribute(name, value) for name, value in (attributes or {}).items() if value is not None
    )
    children = "".join(
        f"<Parameter{_attribute('name', name)}{_attribute('value', value)}/>"
        for name, value in (parameters or {}).items()
    )
    element = f"<Stream{stream}>{children}</Stream>" if children else f"<Stream{stream}/>"
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect>{element}</Connect></Response>'
    )
