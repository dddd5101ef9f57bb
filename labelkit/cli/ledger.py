"""``labelkit ledger``: show, export and purge the record of labeled items."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import sys

from ..errors import LabelkitError
from ..ledger import RETENTION_DAYS, LedgerEntry, default_ledger_path, open_ledger
from ._common import EXIT_FAILURE, EXIT_OK, HelpFormatter, UsageError, add_run_options

__all__ = ["add_parser", "add_ledger_option", "run"]

DESCRIPTION = f"""\
The ledger records every item `labelkit label --ledger` (or Labeler(ledger=...)) labeled: its
ProduceID, producer code, modality and format, the essence digest ReservedCode1 signs, the
watermark payload, whether the explicit label was applied and, when it was not, the recipient
(Labeling Measures Art. 9), and the time. Records are kept at least {RETENTION_DAYS} days.

  show ID...        the items with these ProduceIDs (and platforms' relabelings of them, or
                    by PropagateID), or with these watermark payloads (--payload)
  export            every item (or those in --since/--until) as JSON lines or CSV
  purge             delete items older than --older-than DAYS (at least {RETENTION_DAYS})
"""

EPILOG = """\
examples:
  labelkit ledger show 01M8XZB5N38D3H6KZYYZWWWY36
  labelkit ledger show --payload 322081f2deeab65f
  labelkit ledger export --since 2026-01-01 --format csv > items.csv
  labelkit ledger purge --older-than 365

exit status: 0 ok, 1 an item was not found or the ledger cannot be read, 2 usage error
"""


def add_ledger_option(parser: argparse.ArgumentParser) -> None:
    """Add --ledger PATH to a command."""
    parser.add_argument("--ledger", metavar="PATH_OR_URL",
                        help="the ledger: a SQLite file or a postgresql:// URL (default "
                             f"{default_ledger_path()})")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ledger command."""
    parser = subparsers.add_parser(
        "ledger", help="show, export or purge the record of labeled items",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter,
    )
    parser.add_argument("action", choices=("show", "export", "purge"))
    parser.add_argument("ids", nargs="*", metavar="ID", help="ProduceIDs (show)")
    parser.add_argument("--payload", action="append", default=[], metavar="HEX",
                        help="show: the items whose watermark carries this payload (16 hex "
                             "digits, as verify reports it); repeatable")
    parser.add_argument("--since", metavar="DATE", help="export: from this UTC date/time")
    parser.add_argument("--until", metavar="DATE", help="export: before this UTC date/time")
    parser.add_argument("--format", choices=("jsonl", "csv"), default="jsonl",
                        help="export: JSON lines (default) or CSV")
    parser.add_argument("--older-than", type=float, metavar="DAYS",
                        help=f"purge: delete items older than DAYS (>= {RETENTION_DAYS})")
    add_ledger_option(parser)
    add_run_options(parser)
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    """Carry out the ledger action."""
    if args.action == "show" and not (args.ids or args.payload):
        raise UsageError("show needs one or more ProduceIDs or --payload HEX")
    if args.action != "show" and (args.ids or args.payload):
        raise UsageError(f"{args.action} takes no IDs")
    if args.action == "purge" and args.older_than is None:
        raise UsageError("purge needs --older-than DAYS")
    if args.action == "purge" and not args.older_than >= RETENTION_DAYS:
        raise UsageError(f"--older-than: records are kept at least {RETENTION_DAYS} days "
                         "(Labeling Measures: six months)")
    since, until = _when(args.since, "--since"), _when(args.until, "--until")
    try:
        with open_ledger(args.ledger) as ledger:
            if args.action == "show":
                return _show(ledger, args.ids, args.payload)
            if args.action == "export":
                _export(ledger.entries(since=since, until=until), args.format)
                return EXIT_OK
            removed = ledger.purge(args.older_than)
    except LabelkitError as exc:
        print(f"labelkit ledger: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if not args.quiet:
        print(f"purged {removed} item(s) labeled more than {args.older_than:g} days ago")
    return EXIT_OK


def _when(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{option}: not an ISO date or date-time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return int(moment.timestamp() * 1000)


def _show(ledger, ids: list[str], payloads: list[str]) -> int:
    missing = 0
    for item, by_payload in [*((i, False) for i in ids), *((p, True) for p in payloads)]:
        if by_payload:
            found = [("item", e) for e in ledger.find_payload(item)]
        else:  # a ProduceID (the item, and what platforms did with it) or a PropagateID
            found = [("item", e) for e in [ledger.get(item)] if e]
            found += [("propagation", e) for e in ledger.propagations(produce_id=item)]
            found += [("propagation", e) for e in ledger.propagations(propagate_id=item)]
        if not found:
            missing += 1
            print(f"labelkit ledger: {item}: not in the ledger", file=sys.stderr)
        for kind, entry in found:
            print(json.dumps({"kind": kind, **entry.to_dict()}, ensure_ascii=False))
    return EXIT_FAILURE if missing else EXIT_OK


def _export(entries, fmt: str) -> None:
    if fmt == "jsonl":
        for entry in entries:
            sys.stdout.write(json.dumps(entry.to_dict(), ensure_ascii=False) + "\n")
        return
    fields = [*LedgerEntry.__dataclass_fields__, "labeled_at_iso", "explicit_applied"]
    writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for entry in entries:
        writer.writerow(entry.to_dict())
