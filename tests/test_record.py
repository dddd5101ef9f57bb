"""The AIGC record: Annex E keys, validation, JSON codec, provider codes, ProduceIDs."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from labelkit.errors import InvalidRecord
from labelkit.record import (
    KEYS,
    AIGCRecord,
    check_provider_code,
    decode_label,
    misspelling_of,
    new_produce_id,
    produce_id_time,
    uscc_check_char,
)

from .conftest import PRODUCER


def test_keys_exact_spelling_and_order():
    assert KEYS == ("Label", "ContentProducer", "ProduceID", "ReservedCode1",
                    "ContentPropagator", "PropagateID", "ReservedCode2")
    rec = AIGCRecord(content_producer=PRODUCER, produce_id="X1")
    assert list(json.loads(rec.to_json())) == list(KEYS)


def test_compact_json_bare_and_wrapped():
    rec = AIGCRecord(content_producer=PRODUCER, produce_id="ID1")
    bare = rec.to_json()
    assert bare.startswith('{"Label":"1","ContentProducer":"0011')
    assert " " not in bare
    wrapped = rec.to_json(wrapped=True)
    assert wrapped == '{"AIGC":' + bare + "}"
    assert AIGCRecord.from_json(bare) == rec == AIGCRecord.from_json(wrapped)
    assert decode_label(bare).form == "bare" and decode_label(wrapped).form == "wrapped"


@pytest.mark.parametrize("label", ["0", "4", "", "1 ", "one"])
def test_label_value_rejected(label):
    with pytest.raises(InvalidRecord, match="Label"):
        AIGCRecord(label=label)


@pytest.mark.parametrize("bad", ["a b", "tab\t", "back\\slash", "中文", "é", "\x7f"])
def test_character_rule(bad):
    with pytest.raises(InvalidRecord, match="ProduceID"):
        AIGCRecord(produce_id=bad)


def test_allowed_characters_and_length():
    allowed = "".join(chr(c) for c in range(0x21, 0x7F) if c not in (0x22, 0x5C))
    AIGCRecord(produce_id=allowed)
    AIGCRecord(produce_id="a" * 2048)
    with pytest.raises(InvalidRecord, match="2049"):
        AIGCRecord(produce_id="a" * 2049)


def test_uscc_checksum():
    assert uscc_check_char("91110102MAD55U9H0") == "F"
    check_provider_code("ContentProducer", PRODUCER)
    wrong = PRODUCER[:21] + "G" + PRODUCER[22:]
    with pytest.raises(InvalidRecord, match="checksum.*should be 'F'"):
        check_provider_code("ContentProducer", wrong)
    with pytest.raises(InvalidRecord, match="checksum"):
        AIGCRecord(content_producer=wrong)


@pytest.mark.parametrize(
    "code, reason",
    [
        ("011191110102MAD55U9H0F10002", "format version"),
        ("000191110102MAD55U9H0F10002", "subject type"),
        ("001191110102MAD55U9H0F30002", "service type"),
        ("0011911101O2MAD55U9H0F10002", "alphabet"),  # letter O is not in GB 32100's alphabet
        ("0011911101", "27-character"),
    ],
)
def test_provider_code_structure(code, reason):
    with pytest.raises(InvalidRecord, match=reason):
        check_provider_code("ContentProducer", code)


def test_service_type_expectation():
    with pytest.raises(InvalidRecord, match="propagation"):
        check_provider_code("ContentPropagator", PRODUCER, service="2")


def test_name_allowed_for_producer():
    assert AIGCRecord(content_producer="ExampleAI").content_producer == "ExampleAI"


def test_strict_decoder():
    with pytest.raises(InvalidRecord, match="duplicate key 'Label'"):
        decode_label('{"Label":"1","Label":"2"}')
    with pytest.raises(InvalidRecord, match="not valid JSON"):
        decode_label('{"Label":"1",}')
    with pytest.raises(InvalidRecord, match="object"):
        decode_label('["Label"]')
    with pytest.raises(InvalidRecord, match="must be an object"):
        decode_label('{"AIGC":"x"}')
    with pytest.raises(InvalidRecord, match="nests too deeply"):
        decode_label("[" * 20000)


def test_types_and_unknown_keys_rejected():
    with pytest.raises(InvalidRecord, match="Label is a JSON number, not a string"):
        AIGCRecord.from_json('{"Label":1}')
    with pytest.raises(InvalidRecord, match="ReserveCode1.*ReservedCode1"):
        AIGCRecord.from_json('{"Label":"1","ReserveCode1":""}')


def test_misspellings():
    assert misspelling_of("ReserveCode1") == "ReservedCode1"
    assert misspelling_of("Propagator") == "ContentPropagator"
    assert misspelling_of("produceid") == "ProduceID"
    assert misspelling_of("Label") is None
    assert misspelling_of("Colour") is None


def test_produce_id_unique_ordered_charset():
    ids = [new_produce_id() for _ in range(20000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 26 and i.isalnum() and i.upper() == i for i in ids)
    AIGCRecord(produce_id=ids[0])
    assert abs(produce_id_time(ids[-1]) - __import__("time").time()) < 5


def _ids(n):
    return [new_produce_id() for _ in range(n)]


def test_produce_id_unique_across_processes():
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        parts = pool.map(_ids, [5000, 5000])
    mine = _ids(5000)
    everything = parts[0] + parts[1] + mine
    assert len(set(everything)) == len(everything)
