"""Parsing untrusted XML safely: no DTDs, no entities, no external references, bounded size."""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException  # type: ignore[import-untyped]
from defusedxml.ElementTree import fromstring  # type: ignore[import-untyped]

MAX_XML_BYTES = 32 * 1024 * 1024
"""The largest document read (JMA's long feed is about 2.5 MB, messages well under 1 MB)."""


class XmlRefused(ValueError):
    """A document is not well-formed, too large, or uses what is refused (DTD, entities)."""


def parse_xml(data: bytes, *, what: str) -> Element:
    """The root element of `data`; XmlRefused for anything unsafe or malformed.

    Any DOCTYPE is refused outright (so no entity expansion bomb and no external entity can
    be declared); expat itself refuses undeclared entities.
    """
    if len(data) > MAX_XML_BYTES:
        raise XmlRefused(f"{what}: larger than {MAX_XML_BYTES} bytes")
    try:
        root: Element = fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise XmlRefused(f"{what}: refused XML ({type(exc).__name__})") from exc
    except ParseError as exc:
        raise XmlRefused(f"{what}: not well-formed XML ({exc})") from exc
    return root
