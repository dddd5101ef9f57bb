"""``labelkit keygen``: create the provider's signing key pair."""

from __future__ import annotations

import argparse
import sys

from ..errors import KeyFileError
from ..signing import ALGORITHMS, generate_key, write_key_pair
from ._common import EXIT_FAILURE, EXIT_OK, HelpFormatter, add_run_options

__all__ = ["add_parser", "run"]

DESCRIPTION = """\
Create a signing key pair for ReservedCode1, the signature that binds a label to its content.

KEYFILE is the provider's secret key (PKCS#8 PEM, written with mode 0600): keep it on the
machines that label, pass it to `labelkit label --key`. KEYFILE.pub is its public part: give it
to anyone who verifies (`labelkit verify --pubkey KEYFILE.pub`).
"""

EPILOG = """\
examples:
  labelkit keygen -o provider.key
  labelkit keygen -o /etc/labelkit/provider.key --algorithm es256
  labelkit keygen -o provider.key --force      # replace an existing key pair

exit status: 0 written, 1 not written (the files exist, or cannot be written), 2 usage error
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the keygen command."""
    parser = subparsers.add_parser(
        "keygen", help="create a signing key pair (KEYFILE and KEYFILE.pub)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter,
    )
    parser.add_argument("-o", "--output", required=True, metavar="KEYFILE",
                        help="the secret key file to write; the public key goes to KEYFILE.pub")
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="ed25519",
                        help="signature algorithm: ed25519, or es256 (ECDSA P-256 with SHA-256)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite existing key files (the old key can no longer sign)")
    add_run_options(parser)
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    """Generate a key and write KEYFILE (0600) and KEYFILE.pub."""
    path = args.output
    key = generate_key(args.algorithm)
    try:
        pub = write_key_pair(path, key, overwrite=args.force)
    except KeyFileError as exc:
        hint = " (use --force to replace it)" if "refusing" in exc.reason else ""
        print(f"labelkit keygen: {exc}{hint}", file=sys.stderr)
        return EXIT_FAILURE
    if not args.quiet:
        print(f"wrote secret key {path} ({key.algorithm}, key id {key.key_id.hex()}, mode 0600)",
              file=sys.stdout)
        print(f"wrote public key {pub}: give it to verifiers (labelkit verify --pubkey {pub})",
              file=sys.stdout)
    return EXIT_OK
