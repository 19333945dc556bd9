"""Create CurveZMQ key pairs, one identity per role, for authenticated links (--curve-keys DIR).

Writes DIR/producer.key + producer.key_secret, DIR/encoder.key + encoder.key_secret (one identity shared
by every encoder) and DIR/sink.key + sink.key_secret; --encoder NAME adds a further encoder identity
encoder-NAME that the producer and the sink accept as an encoder (a host that should use it gets it as
its encoder.key_secret). Each stage needs its own ROLE.key_secret and the public *.key files: the
producer lets only encoder keys pull events and only the sink key acknowledge, the sink takes scored
messages only from encoder keys. --per-role also writes DIR/producer/, DIR/encoder/ and DIR/sink/, each
with that role's secret and every public key: what one stage's container or Kubernetes Secret holds.
Secret files are mode 0600 from their first byte. Existing key files are kept unless --force.
`aetrig run` makes fresh keys of its own in OUT/keys; see docs/operations.md "Scale out".
"""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """
aetrig keys deploy/curve-keys
aetrig keys keys/ --encoder host-7 --encoder host-8
aetrig keys curve-keys/ --per-role
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, help="key directory to create or complete")
    parser.add_argument("--encoder", action="append", default=[], metavar="NAME",
                        help="also create a further encoder identity encoder-NAME (repeatable)")
    parser.add_argument("--per-role", action="store_true",
                        help="also write DIR/ROLE/ per role: its secret and the public keys (one per stage)")
    parser.add_argument("--force", action="store_true", help="overwrite existing key files")


def main(args: argparse.Namespace) -> int:
    import sys

    from emulator.runtime.curvezmq import CurveError, generate_keys, split_by_role

    try:
        directory = generate_keys(args.dir, extra={"encoder": tuple(args.encoder)}, overwrite=args.force)
        per_role = split_by_role(directory) if args.per_role else {}
    except (CurveError, ValueError, OSError) as err:
        print(f"aetrig keys: error: {err}", file=sys.stderr)
        return 2
    for path in sorted(directory.glob("*.key*")):
        print(f"{path}{'   (secret: keep private)' if path.name.endswith('_secret') else ''}")
    for role, path in per_role.items():
        print(f"{path}/   (the {role}'s: {role}.key_secret and the public keys)")
    print(f"use: --curve-keys {directory} on every stage (each reads its own ROLE.key_secret and the public "
          "*.key); Kubernetes: docs/operations.md \"Keys\"")
    return 0
