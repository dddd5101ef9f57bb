"""The ledger: what the Labeler records for each item, the SQLite store (migrations, upserts,
paging, retention), concurrent writers, damaged files, and the ``labelkit ledger`` command."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import uuid

import numpy as np
import pytest

from labelkit import Labeler, formats, verify
from labelkit.errors import PolicyError
from labelkit.ledger import (RETENTION_DAYS, LedgerEntry, LedgerError, default_ledger_path,
                             open_ledger)
from labelkit.ledger.schema import SCHEMA_VERSION
from labelkit.signing import parse_rc1

from .conftest import PRODUCER, skimage_photo


def entry(i: int, *, at: int | None = None, **kw) -> LedgerEntry:
    fields = dict(produce_id=f"ID{i:06d}", producer=PRODUCER, modality="image", format="jpeg",
                  essence_digest=f"{i:064x}", watermark_payload=f"{i:016x}", explicit="apply",
                  recipient=None, layers="explicit,watermark,metadata,signature",
                  labeled_at=int(time.time() * 1000) if at is None else at)
    fields.update(kw)
    return LedgerEntry(**fields)


POSTGRES = os.environ.get("LABELKIT_TEST_POSTGRES")  # `make test` starts a server and sets it


@pytest.fixture
def postgres_url():
    """A PostgreSQL ledger URL in a fresh schema of the test server, dropped afterwards."""
    if not POSTGRES:
        pytest.skip("LABELKIT_TEST_POSTGRES is not set (make test starts PostgreSQL and sets it)")
    psycopg = pytest.importorskip("psycopg")
    schema = f"lk_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield POSTGRES + ("&" if "?" in POSTGRES else "?") + f"options=-csearch_path%3D{schema}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path):
    """Where a ledger lives: a SQLite file, or a schema of the PostgreSQL test server."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite3")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def ledger(location):
    with open_ledger(location) as opened:
        yield opened


def test_labeler_records_each_item(location, key):
    with open_ledger(location) as ledger:
        labeler = Labeler(PRODUCER, key, ledger=ledger)
        photo = skimage_photo("coffee.png")  # 400x600: large enough for the watermark
        result = labeler.label_image(photo, "jpeg")
        row = ledger.get(result.record.produce_id)
        assert row is not None and row.producer == PRODUCER and row.modality == "image"
        assert row.format == "jpeg" and row.explicit == "apply" and row.recipient is None
        assert row.essence_digest == parse_rc1(result.record.reserved_code1).digest.hex()
        assert row.essence_digest == formats.essence_digest(formats.parse(result.data)).hex()
        assert row.watermark_payload == f"{result.watermark_payload:016x}"
        assert row.layers == ",".join(result.layers)
        assert abs(row.labeled_at - time.time() * 1000) < 60_000
        # found again from the watermark of a stripped copy
        assert [e.produce_id for e in ledger.find_payload(result.watermark_payload)] == [
            result.record.produce_id]
        text = labeler.label_text("A generated answer.\n")
        assert ledger.get(text.record.produce_id).modality == "text"
        assert ledger.count() == 2


def test_omitted_label_records_the_recipient_and_needs_one(location, key):
    with open_ledger(location) as ledger:
        labeler = Labeler(PRODUCER, key, ledger=ledger)  # no recipient log: the ledger is it
        data = Labeler(PRODUCER, key).label_image(skimage_photo("coffee.png")[:200, :200],
                                                  "png").data
        result = labeler.label_image(data, explicit=False, recipient="customer-42")
        row = ledger.get(result.record.produce_id)
        assert row.explicit == "omit" and row.recipient == "customer-42"
        assert not row.explicit_applied
        with pytest.raises(PolicyError, match="recipient"):
            labeler.label_image(data, explicit=False)
    with pytest.raises(PolicyError, match="recipient"):  # neither a ledger nor a recipient log
        Labeler(PRODUCER, key).label_image(data, explicit=False, recipient="customer-42")
    with pytest.raises(PolicyError):
        entry(1, explicit="omit", recipient=None)


def test_relabel_replaces_and_paging_is_complete(ledger):
    now = int(time.time() * 1000)
    for i in range(2345):
        ledger.record(entry(i, at=now - (i % 7)))  # many equal times: paging must not skip
    ledger.record(entry(5, at=now, format="png"))
    assert ledger.count() == 2345 and ledger.get("ID000005").format == "png"
    ids = [e.produce_id for e in ledger.entries()]
    assert len(ids) == len(set(ids)) == 2345
    window = list(ledger.entries(since=now - 3, until=now))
    assert {e.labeled_at for e in window} == {now - 3, now - 2, now - 1}
    assert ledger.get("nope") is None and ledger.find_payload(10**9) == []


def test_retention_and_purge(ledger):
    now = int(time.time() * 1000)
    day = 86_400_000
    for i, age in enumerate((10, 179, 181, 400)):
        ledger.record(entry(i, at=now - age * day))
    with pytest.raises(PolicyError, match=str(RETENTION_DAYS)):
        ledger.purge(179)
    assert ledger.purge(RETENTION_DAYS, now_ms=now) == 2
    assert sorted(e.produce_id for e in ledger.entries()) == ["ID000000", "ID000001"]
    assert ledger.purge(365, now_ms=now) == 0


def test_migrations_and_a_newer_schema(location):
    with open_ledger(location) as ledger:
        assert ledger.schema_version == SCHEMA_VERSION
        ledger.record(entry(1))
    with open_ledger(location) as again:  # reopening applies nothing twice and keeps the rows
        assert again.count() == 1 and again.schema_version == SCHEMA_VERSION
        again._run([("INSERT INTO labelkit_schema (version) VALUES (?)", (SCHEMA_VERSION + 1,))])
    with pytest.raises(LedgerError, match="upgrade labelkit"):
        open_ledger(location)


def test_damaged_or_foreign_files_are_ledger_errors(tmp_path):
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match="junk.sqlite3"):
        open_ledger(junk)
    with pytest.raises(LedgerError, match="postgresql:// URL"):
        open_ledger("mysql://localhost/labelkit")
    with pytest.raises(LedgerError, match=r"\*\*\*"):  # the password never in the message
        open_ledger("postgresql://lk:hunter2@127.0.0.1:9/labelkit")
    folder = tmp_path / "dir.sqlite3"
    folder.mkdir()
    with pytest.raises(LedgerError):
        open_ledger(folder)


def test_default_path_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_ledger_path() == tmp_path / "labelkit" / "ledger.sqlite3"


def _writer(path: str, start: int) -> None:
    with open_ledger(path) as ledger:
        for i in range(start, start + 200):
            ledger.record(entry(i))


def test_concurrent_writer_processes(location):
    path = location
    open_ledger(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, k * 1000)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with open_ledger(path) as ledger:
        assert ledger.count() == 600


def test_cli_label_then_show_export_purge(tmp_path, capsys, key):
    from labelkit import signing
    from labelkit.cli import main

    keyfile = tmp_path / "provider.key"
    signing.write_key_pair(keyfile, key)
    photos = tmp_path / "photos"
    photos.mkdir()
    from PIL import Image

    for name in ("a.png", "b.png"):
        Image.fromarray(skimage_photo("coffee.png")).save(photos / name)
    book = tmp_path / "ledger.sqlite3"
    assert main(["label", "--producer", PRODUCER, "--key", str(keyfile), "-o",
                 str(tmp_path / "out"), "--ledger", str(book), "-q", str(photos)]) == 0
    capsys.readouterr()
    assert main(["ledger", "export", "--ledger", str(book)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and {r["format"] for r in rows} == {"png"}
    report = verify(tmp_path / "out" / "a.png", key=key)
    mine = report.record["ProduceID"]
    assert main(["ledger", "show", mine, "--ledger", str(book)]) == 0
    assert json.loads(capsys.readouterr().out)["produce_id"] == mine
    payload = report.watermark["payload"]
    assert main(["ledger", "show", "--payload", payload, "--ledger", str(book)]) == 0
    assert json.loads(capsys.readouterr().out)["produce_id"] == mine
    assert main(["ledger", "show", "NOPE", "--ledger", str(book)]) == 1
    assert main(["ledger", "export", "--format", "csv", "--since", "2000-01-01",
                 "--ledger", str(book)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("produce_id,producer,") and len(lines) == 3
    assert main(["ledger", "purge", "--older-than", "30", "--ledger", str(book)]) == 2
    assert main(["ledger", "purge", "--older-than", "200", "--ledger", str(book)]) == 0
    assert "purged 0 item(s)" in capsys.readouterr().out
    assert main(["ledger", "export", "--since", "yesterday", "--ledger", str(book)]) == 2
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"\x00" * 4096)
    assert main(["ledger", "export", "--ledger", str(junk)]) == 1


def test_cli_with_a_postgresql_ledger(postgres_url, tmp_path, capsys, key):
    from PIL import Image

    from labelkit import signing
    from labelkit.cli import main

    keyfile = tmp_path / "provider.key"
    signing.write_key_pair(keyfile, key)
    Image.fromarray(skimage_photo("coffee.png")).save(tmp_path / "a.png")
    assert main(["label", "--producer", PRODUCER, "--key", str(keyfile), "-o",
                 str(tmp_path / "out"), "--ledger", postgres_url, "-q", "-j", "2",
                 str(tmp_path / "a.png")]) == 0
    capsys.readouterr()
    assert main(["ledger", "export", "--ledger", postgres_url]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["format"] == "png" and row["producer"] == PRODUCER


def test_propagations_are_recorded_and_purged(ledger):
    from labelkit.ledger import PropagationEntry

    now = int(time.time() * 1000)
    day = 86_400_000
    for i, age in enumerate((1, 200)):
        ledger.record_propagation(PropagationEntry(
            propagate_id=f"PR{i}", propagator=PRODUCER[:22] + "2" + PRODUCER[23:],
            produce_id="ID000001", producer=PRODUCER, label="1", reason="a valid label",
            format="png", essence_digest="ab" * 32, declared_ai=0, propagated_at=now - age * day))
    assert [p.propagate_id for p in ledger.propagations(produce_id="ID000001")] == ["PR1", "PR0"]
    assert ledger.propagations(propagate_id="PR0")[0].to_dict()["declared_ai"] is False
    assert ledger.purge(RETENTION_DAYS, now_ms=now) == 1
    assert [p.propagate_id for p in ledger.propagations()] == ["PR0"]


def test_a_version_1_ledger_is_migrated_in_place(tmp_path):
    import sqlite3

    from labelkit.ledger.schema import MIGRATIONS

    path = tmp_path / "v1.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE labelkit_schema (version BIGINT NOT NULL)")
    for sql in MIGRATIONS[0]:
        conn.execute(sql)
    conn.execute("INSERT INTO labelkit_schema (version) VALUES (1)")
    conn.execute("INSERT INTO labelkit_items VALUES ('OLD1', ?, 'image', 'png', ?, NULL, "
                 "'apply', NULL, 'metadata', 5)", (PRODUCER, "ab" * 32))
    conn.commit()
    conn.close()
    with open_ledger(path) as ledger:
        assert ledger.schema_version == SCHEMA_VERSION >= 2
        assert ledger.get("OLD1").format == "png" and ledger.propagations() == []


def test_a_text_stream_is_recorded_at_close(tmp_path, key):
    with open_ledger(tmp_path / "l.sqlite3") as ledger:
        labeler = Labeler(PRODUCER, key, ledger=ledger)
        stream = labeler.text_stream()
        sent = "".join(stream.wrap(iter(["A generated", " answer.\n\n", "Second paragraph."])))
        row = ledger.get(stream.produce_id)
        assert row is not None and row.modality == "text" and row.format == "text"
        assert row.watermark_payload == f"{stream.watermark_payload:016x}"
        digest = formats.essence_digest(formats.parse(sent.encode(), "answer.txt")).hex()
        assert row.essence_digest == digest
        quiet = Labeler(PRODUCER, key).text_stream()  # no ledger: nothing kept in memory
        "".join(quiet.wrap(iter(["x"])))
        assert quiet._sent is None and ledger.get(quiet.produce_id) is None
