"""Hostile and mangled XML: refused cleanly (rejected records), never parsed unsafely."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityos.connectors.jma.connector import JmaConnector, message_items
from cityos.connectors.jma.xmlsafe import MAX_XML_BYTES, XmlRefused, parse_xml
from cityos.platform.domain.errors import InvalidInput
from cityos.platform.ports import AlertGroupRecord, AlertRecord, RejectedRecord, SkippedRecord

MESSAGES = Path(__file__).resolve().parent.parent / "fixtures" / "jma" / "messages"
TSUNAMI = (MESSAGES / "32-39_11_02_250206_VTSE41.xml").read_bytes()
HEAT = (MESSAGES / "57_03_01_240401_VPFT50.xml").read_bytes()
WARNINGS = (MESSAGES / "15_14_01_170216_VPWW54.xml").read_bytes()

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Report xmlns="http://xml.kishou.go.jp/jmaxml1/">&lol4;</Report>"""


def xxe(target: Path) -> bytes:
    return (
        b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file://'
        + str(target).encode()
        + b'">]>\n<Report xmlns="http://xml.kishou.go.jp/jmaxml1/"><Control><Title>&x;</Title>'
        b"</Control></Report>"
    )


def test_billion_laughs_is_refused() -> None:
    with pytest.raises(XmlRefused, match="refused XML"):
        parse_xml(BILLION_LAUGHS, what="test")


def test_external_entities_are_refused_and_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    with pytest.raises(XmlRefused, match="refused XML"):
        parse_xml(xxe(secret), what="test")
    (item,) = message_items(xxe(secret), ref="evil.xml")
    assert isinstance(item, RejectedRecord)
    assert "TOP-SECRET" not in item.reason
    assert "evil.xml" in item.reason


def test_any_doctype_and_external_dtd_is_refused() -> None:
    for document in (
        b'<?xml version="1.0"?><!DOCTYPE Report SYSTEM "http://127.0.0.1:9/x.dtd"><Report/>',
        b'<?xml version="1.0"?><!DOCTYPE Report [<!ENTITY % p SYSTEM "http://127.0.0.1:9/">'
        b"%p;]><Report/>",
        b"<!DOCTYPE Report><Report/>",
    ):
        with pytest.raises(XmlRefused):
            parse_xml(document, what="test")


def test_undeclared_entities_and_oversize_documents_are_refused() -> None:
    with pytest.raises(XmlRefused, match="not well-formed"):
        parse_xml(b"<Report>&nbsp;</Report>", what="test")
    with pytest.raises(XmlRefused, match="larger than"):
        parse_xml(b" " * (MAX_XML_BYTES + 1), what="test")


def test_hostile_files_in_a_directory_are_rejected_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "a_laughs.xml").write_bytes(BILLION_LAUGHS)
    (tmp_path / "b_xxe.xml").write_bytes(xxe(tmp_path / "a_laughs.xml"))
    (tmp_path / "c_ok.xml").write_bytes(HEAT)
    (tmp_path / "d_garbage.xml").write_bytes(b"\x00\xff not xml")
    items = list(JmaConnector().fetch(str(tmp_path)))
    assert [type(item) for item in items] == [
        RejectedRecord,
        RejectedRecord,
        AlertRecord,
        RejectedRecord,
    ]
    assert [item.line for item in items if isinstance(item, RejectedRecord)] == [1, 2, 4]


def _outcome_is_clean(data: bytes) -> None:
    """Whatever the bytes, the connector yields records; only these types, no exception."""
    for item in message_items(data, ref="mangled.xml"):
        assert isinstance(item, AlertRecord | AlertGroupRecord | SkippedRecord | RejectedRecord)
        if isinstance(item, RejectedRecord):
            assert item.reason.startswith("mangled.xml: ")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([TSUNAMI, HEAT, WARNINGS]),
    st.integers(min_value=0, max_value=60_000),
    st.integers(min_value=0, max_value=400),
    st.binary(max_size=40),
)
def test_mangled_samples_are_rejected_cleanly(
    sample: bytes, start: int, length: int, junk: bytes
) -> None:
    start = start % (len(sample) + 1)
    _outcome_is_clean(sample[:start] + junk + sample[start + length :])


@settings(max_examples=200)
@given(
    st.sampled_from([TSUNAMI, HEAT]),
    st.sampled_from(
        [
            (b"2011-03-11T14:49:00+09:00", b"2011-03-11T14:49:00"),
            (b"<Code>62</Code>", b"<Code>99</Code>"),
            (b"<Code>380</Code>", b"<Code></Code>"),
            (b"<InfoType>\xe7\x99\xba\xe8\xa1\xa8</InfoType>", b"<InfoType>x</InfoType>"),
            (b"<EventID>20110311144640</EventID>", b"<EventID/>"),
            (b"\xe5\x9f\xbc\xe7\x8e\x89\xe7\x9c\x8c", b"\xe3\x81\xa9\xe3\x81\x93"),
            (b"\xef\xbc\x91\xef\xbc\x91\xe6\x97\xa5", b"\xef\xbc\x93\xef\xbc\x90\xe6\x97\xa5"),
            (b"<Status>", b"<Status>?"),
            (b"</Head>", b""),
        ]
    ),
)
def test_well_formed_but_wrong_values_are_rejected_cleanly(
    sample: bytes, change: tuple[bytes, bytes]
) -> None:
    old, new = change
    items = list(message_items(sample.replace(old, new), ref="mangled.xml"))
    _outcome_is_clean(sample.replace(old, new))
    if old in sample:
        assert items
        assert all(isinstance(item, RejectedRecord) for item in items)


@settings(max_examples=150)
@given(st.text(max_size=200))
def test_arbitrary_text_never_raises(text: str) -> None:
    _outcome_is_clean(text.encode("utf-8", "surrogatepass"))


EQVOL = (MESSAGES.parent / "feeds" / "feed_eqvol_2020-07-25_koga1020.xml").read_bytes()


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.integers(min_value=0, max_value=16_000),
    st.integers(min_value=0, max_value=300),
    st.binary(max_size=30),
)
def test_mangled_feeds_are_refused_or_read_cleanly(
    tmp_path: Path, start: int, length: int, junk: bytes
) -> None:
    start = start % (len(EQVOL) + 1)
    source = tmp_path / "feed.xml"
    source.write_bytes(EQVOL[:start] + junk + EQVOL[start + length :])
    refusal = ""
    try:
        items = list(JmaConnector().fetch(str(source)))
    except InvalidInput as exc:  # a feed entry without id or link
        refusal, items = str(exc), []
    assert not refusal or "feed entry" in refusal
    for item in items:
        assert isinstance(item, SkippedRecord | RejectedRecord)
