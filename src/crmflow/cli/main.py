"""``crmflow``: run the stack, run one service, load a demo, manage records.

Each sub-command lives in its own module with a ``register(subparsers)`` function; this module
only assembles them.
"""

from __future__ import annotations

import argparse
import sys

from crmflow.cli import demo, ops, records, serve, up


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crmflow",
        description="HubSpot-style workflow automation for CRM records, on gRPC and Temporal.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (up, serve, demo, ops, records):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except SystemExit:
        raise
    except Exception as exc:  # a one-line reason for the operator, not a traceback
        print(f"crmflow: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
