"""labelkit.xmp: find, set and strip TC260:AIGC in XMP packets."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from labelkit import xmp
from labelkit.errors import CorruptInput, LimitExceeded
from labelkit.limits import Limits

from .samples import LABEL, LABEL2, OLD, TITLE, dc_title, xmp_packet

NSDECL = f'xmlns:TC260="{xmp.NS}"'
RDF_OPEN = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="' + xmp.RDF_NS + '">'
RDF_CLOSE = "</rdf:RDF></x:xmpmeta>"
TRICKY = '{"Label":"1","ContentProducer":"a<b>&c\'d","ProduceID":"x"}'


def packet(body: str, rdf_attrs: str = "") -> bytes:
    return (RDF_OPEN.replace('">', f'"{rdf_attrs}>', 1) + body + RDF_CLOSE).encode()


def test_new_packet_is_standard():
    p = xmp.set_aigc(None, LABEL)
    text = p.decode()
    assert text.startswith('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>')
    assert text.endswith('<?xpacket end="w"?>')
    assert '<x:xmpmeta xmlns:x="adobe:ns:meta/">' in text
    assert NSDECL in text and "<TC260:AIGC>" in text
    assert xmp.find_aigc(p, "f") == [("xmp-element", LABEL)]


def test_escaping_round_trips():
    p = xmp.set_aigc(None, TRICKY)
    assert b"a&lt;b&gt;&amp;c'd" in p
    assert xmp.find_aigc(p, "f") == [("xmp-element", TRICKY)]


def test_finds_both_forms_in_document_order():
    p = xmp_packet(aigc_attr=OLD, aigc_elem=LABEL)
    assert xmp.find_aigc(p, "f") == [("xmp-attribute", OLD), ("xmp-element", LABEL)]


def test_matches_the_namespace_uri_not_the_prefix():
    body = (
        f'<rdf:Description rdf:about="" xmlns:ai="{xmp.NS}" ai:AIGC="{{&quot;Label&quot;:'
        '&quot;2&quot;}"/>'
        '<rdf:Description rdf:about="" xmlns:TC260="http://example.com/other/">'
        "<TC260:AIGC>not ours</TC260:AIGC></rdf:Description>"
    )
    assert xmp.find_aigc(packet(body), "f") == [("xmp-attribute", '{"Label":"2"}')]


def test_default_namespace_element_is_found_and_replaced():
    body = f'<rdf:Description rdf:about=""><AIGC xmlns="{xmp.NS}">{OLD}</AIGC></rdf:Description>'
    p = packet(body)
    assert xmp.find_aigc(p, "f") == [("xmp-element", OLD)]
    assert xmp.find_aigc(xmp.set_aigc(p, LABEL), "f") == [("xmp-element", LABEL)]


def test_set_keeps_everything_else_byte_identical():
    original = xmp_packet(aigc_elem=OLD)
    updated = xmp.set_aigc(original, LABEL)
    assert xmp.find_aigc(updated, "f") == [("xmp-element", LABEL)]
    # Only the property's text changed (and the padding paid for the growth).
    pad = re.compile(rb"\s+(?=<\?xpacket end)")
    assert pad.sub(b"", updated.replace(LABEL.encode(), b"@")) == pad.sub(
        b"", original.replace(OLD.encode(), b"@")
    )
    assert len(updated) == len(original)  # the padding absorbed the growth
    assert dc_title(updated) == TITLE


def test_set_adds_to_a_packet_without_the_namespace():
    original = xmp_packet()
    updated = xmp.set_aigc(original, LABEL)
    assert xmp.find_aigc(updated, "f") == [("xmp-element", LABEL)]
    assert updated.count(NSDECL.encode()) == 1
    assert dc_title(updated) == TITLE
    before, _, after = original.partition(b"</rdf:RDF>")
    assert updated.startswith(before.rstrip())  # inserted before </rdf:RDF>, nothing else moved


def test_set_reuses_a_declared_prefix_and_does_not_redeclare():
    body = f'<rdf:Description rdf:about="" xmlns:ai="{xmp.NS}" xmlns:dc="x:dc" dc:a="b"/>'
    updated = xmp.set_aigc(packet(body), LABEL).decode()
    assert updated.count(xmp.NS) == 1
    assert "<ai:AIGC>" in updated and "TC260" not in updated
    assert xmp.find_aigc(updated.encode(), "f") == [("xmp-element", LABEL)]


def test_set_reuses_a_prefix_declared_on_rdf_rdf():
    body = '<rdf:Description rdf:about="uuid:1" xmlns:dc="x:dc" dc:a="b"/>'
    updated = xmp.set_aigc(packet(body, f' xmlns:ai="{xmp.NS}"'), LABEL).decode()
    assert updated.count(xmp.NS) == 1
    assert "<ai:AIGC>" in updated
    assert 'rdf:about="uuid:1"' in updated.split("<ai:AIGC>")[0].rsplit("<rdf:Description", 1)[1]


def test_set_turns_the_attribute_form_into_the_element_form_in_place():
    original = xmp_packet(aigc_attr=OLD)
    updated = xmp.set_aigc(original, LABEL)
    assert xmp.find_aigc(updated, "f") == [("xmp-element", LABEL)]
    assert updated.count(NSDECL.encode()) == 1
    assert dc_title(updated) == TITLE


def test_set_leaves_exactly_one_of_many():
    body = (
        f'<rdf:Description rdf:about="" {NSDECL} TC260:AIGC="{{}}"/>'
        f'<rdf:Description rdf:about="" {NSDECL}><TC260:AIGC>a</TC260:AIGC>'
        f'<TC260:AIGC rdf:parseType="Literal">b</TC260:AIGC><TC260:AIGC/></rdf:Description>'
    )
    p = packet(body)
    assert len(xmp.find_aigc(p, "f")) == 4
    assert xmp.find_aigc(xmp.set_aigc(p, LABEL2), "f") == [("xmp-element", LABEL2)]


def test_strip_removes_every_form_and_keeps_the_rest():
    p = xmp_packet(aigc_attr=OLD, aigc_elem=OLD)
    stripped = xmp.strip_aigc(p)
    assert xmp.find_aigc(stripped, "f") == []
    assert OLD.encode() not in stripped
    assert dc_title(stripped) == TITLE
    ET.fromstring(stripped)  # still well-formed


def test_strip_without_label_returns_the_same_object():
    p = xmp_packet()
    assert xmp.strip_aigc(p) is p


def test_utf16_packet_is_read():
    text = xmp_packet(aigc_elem=OLD).decode().replace("\ufeff", "")
    assert xmp.find_aigc(text.encode("utf-16"), "f") == [("xmp-element", OLD)]


def test_trailing_nul_padding_is_tolerated():
    assert xmp.find_aigc(xmp_packet(aigc_elem=OLD) + b"\0" * 10, "f") == [("xmp-element", OLD)]


@pytest.mark.parametrize(
    "bad",
    [
        b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF>",
        b"<a><b></a>",
        b"<TC260:AIGC>unbound prefix</TC260:AIGC>",
        b"<a>&undefined;</a>",
        b"\xff\xfe\xfa not utf",
    ],
)
def test_malformed_packets_raise_corrupt_input_naming_the_file(bad):
    with pytest.raises(CorruptInput, match="photo.jpg"):
        xmp.find_aigc(bad, "photo.jpg")


@pytest.mark.parametrize(
    "dtd",
    [
        b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b"<a>&lol2;</a>",
        b'<!doctype a SYSTEM "file:///etc/passwd"><a/>',
        b"<a/><!ENTITY x 'y'>",
    ],
)
def test_dtd_and_entities_are_refused(dtd):
    with pytest.raises(CorruptInput, match="DOCTYPE/ENTITY") as info:
        xmp.find_aigc(dtd, "bomb.png")
    assert "bomb.png" in str(info.value)
    with pytest.raises(CorruptInput):
        xmp.set_aigc(dtd, LABEL)


def test_packets_over_the_limit_are_refused():
    big = xmp_packet(title="x" * 5_000_000)
    with pytest.raises(LimitExceeded, match="big.webp"):
        xmp.find_aigc(big, "big.webp")
    with pytest.raises(LimitExceeded):
        xmp.find_aigc(xmp_packet(), "f", Limits(max_metadata_bytes=100))


def test_set_without_rdf_raises():
    with pytest.raises(CorruptInput, match="cannot add"):
        xmp.set_aigc(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>", LABEL)
