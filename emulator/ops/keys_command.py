"""Create CurveZMQ key pairs for encrypted, authenticated cross-host links (--curve-keys DIR).

Writes DIR/server.key + server.key_secret (binding side: producer, sink) and DIR/client.key +
client.key_secret (connecting side: encoders, the sink's acknowledgements), plus one
client-NAME pair per --client NAME. Servers accept only the public keys DIR/client*.key.
Existing key files are kept unless --force. The same DIR, mounted on every host (for example
as a Kubernetes Secret), secures all links; see docs/operations.md "Scale out".
"""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """
aetrig keys deploy/curve-keys
aetrig keys keys/ --client encoder-host-7 --client sink-host-2
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, help="key directory to create or complete")
    parser.add_argument("--client", action="append", default=[], metavar="NAME",
                        help="also create an allowed client key pair client-NAME (repeatable)")
    parser.add_argument("--force", action="store_true", help="overwrite existing key files")


def main(args: argparse.Namespace) -> int:
    from emulator.runtime.curvezmq import generate_keys

    directory = generate_keys(args.dir, clients=("client", *args.client), overwrite=args.force)
    for path in sorted(directory.glob("*.key*")):
        print(f"{path}{'   (secret: keep private)' if path.name.endswith('_secret') else ''}")
    print(f"use: --curve-keys {directory}   (kubectl create secret generic aetrig-curve --from-file={directory})")
    return 0
