"""``labelkit keygen``: create the provider's signing key pair."""

from __future__ import annotations

import argparse
import sys

from ..errors import KeyFileError
from ..signing import ALGORITHMS, generate_key, write_key_pair
from ._common import EXIT_FAILURE, EXIT_OK, HelpFormatter, UsageError, add_run_options

__all__ = ["add_parser", "run"]

C2PA_ALGORITHMS = ("es256", "ed25519")

DESCRIPTION = """\
Create a signing key pair for ReservedCode1, the signature that binds a label to its content.

KEYFILE is the provider's secret key (PKCS#8 PEM, written with mode 0600): keep it on the
machines that label, pass it to `labelkit label --key`. KEYFILE.pub is its public part: give it
to anyone who verifies (`labelkit verify --pubkey KEYFILE.pub`).

With --c2pa it also writes development credentials for C2PA Content Credentials next to
KEYFILE: KEYFILE.c2pa-key.pem (the C2PA signing key, mode 0600), KEYFILE.c2pa-chain.pem (its
certificate, then the CA's) and KEYFILE.c2pa-root.pem (a development CA made for this key: the
trust anchor to give verifiers, `labelkit verify --c2pa-trust KEYFILE.c2pa-root.pem`). Files
signed with them read as valid but untrusted anywhere else. For production, use a certificate
from a CA on the C2PA trust list, or a callback signer for a key in an HSM or KMS.
"""

EPILOG = """\
examples:
  labelkit keygen -o provider.key
  labelkit keygen -o /etc/labelkit/provider.key --algorithm es256
  labelkit keygen -o provider.key --force      # replace an existing key pair
  labelkit keygen -o provider.key --c2pa       # and C2PA development credentials
  labelkit keygen -o provider.key --c2pa --c2pa-alg ed25519

exit status: 0 written, 1 not written (the files exist, or cannot be written; with --c2pa also
when the key pair was written but the C2PA files were not: the message says which exist),
2 usage error
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
    parser.add_argument("--c2pa", action="store_true",
                        help="also write C2PA development credentials: KEYFILE.c2pa-key.pem, "
                             "KEYFILE.c2pa-chain.pem and the trust anchor KEYFILE.c2pa-root.pem")
    parser.add_argument("--c2pa-alg", choices=C2PA_ALGORITHMS, default=None,
                        help="with --c2pa: the C2PA signature algorithm, es256 (ECDSA P-256, "
                             "the default) or ed25519")
    add_run_options(parser)
    parser.set_defaults(func=run, parser=parser)


def _refused(exc: KeyFileError) -> int:
    hint = " (use --force to replace it)" if "refusing" in exc.reason else ""
    print(f"labelkit keygen: {exc}{hint}", file=sys.stderr)
    return EXIT_FAILURE


def run(args: argparse.Namespace) -> int:
    """Generate a key and write KEYFILE (0600) and KEYFILE.pub; with --c2pa, the C2PA files."""
    path = args.output
    if args.c2pa_alg is not None and not args.c2pa:
        raise UsageError("--c2pa-alg needs --c2pa")
    args.c2pa_alg = args.c2pa_alg or "es256"
    if args.c2pa and not args.force:
        # Refuse before writing anything, so an existing C2PA file never leaves a new
        # labelkit key pair written beside the old C2PA credentials.
        from ..credentials.certs import credential_paths

        existing = [p for p in credential_paths(path) if p.exists()]
        if existing:
            return _refused(KeyFileError(
                "exists already; refusing to overwrite C2PA credentials", source=str(existing[0])))
    key = generate_key(args.algorithm)
    try:
        pub = write_key_pair(path, key, overwrite=args.force)
    except KeyFileError as exc:
        return _refused(exc)
    if not args.quiet:
        print(f"wrote secret key {path} ({key.algorithm}, key id {key.key_id.hex()}, mode 0600)",
              file=sys.stdout)
        print(f"wrote public key {pub}: give it to verifiers (labelkit verify --pubkey {pub})",
              file=sys.stdout)
    if args.c2pa:
        return _write_c2pa(path, pub, args)
    return EXIT_OK


def _write_c2pa(path: str, pub, args: argparse.Namespace) -> int:
    """Write the C2PA development credentials after the key pair; exit 1 if they fail."""
    from ..credentials.certs import credential_paths, load_credentials, write_dev_credentials

    try:
        key_path, chain_path, root_path = write_dev_credentials(
            path, args.c2pa_alg, overwrite=args.force)
    except KeyFileError as exc:
        present = [str(p) for p in credential_paths(path) if p.exists()]
        print(f"labelkit keygen: {exc}", file=sys.stderr)
        print(f"labelkit keygen: the key pair {path} and {pub} was written, the C2PA "
              f"credentials were not; "
              + (f"C2PA files present: {', '.join(present)}" if present
                 else "no C2PA file was written"), file=sys.stderr)
        return EXIT_FAILURE
    if not args.quiet:
        leaf = load_credentials(chain_path, key_path).leaf
        print(f"wrote C2PA signing key {key_path} ({args.c2pa_alg}, mode 0600)", file=sys.stdout)
        print(f"wrote C2PA certificate chain {chain_path} ({leaf.subject.rfc4514_string()}, "
              f"valid until {leaf.not_valid_after_utc:%Y-%m-%d})", file=sys.stdout)
        print(f"wrote C2PA development CA {root_path}: the trust anchor to give verifiers "
              f"(labelkit verify --c2pa-trust {root_path})", file=sys.stdout)
        print("these are development credentials: files signed with them are trusted only "
              "where this CA is given as an anchor. For production, use a certificate from a "
              "CA on the C2PA trust list, or a callback signer for a key in an HSM or KMS",
              file=sys.stdout)
    return EXIT_OK
