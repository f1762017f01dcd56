"""``crmflow serve <service>``: run one service in the foreground, as a container does."""

from __future__ import annotations

import argparse
import asyncio
import importlib
from typing import Any

from crmflow.cli.exit import exit_now
from crmflow.grpc.server import install_stop_signals, wait_for_termination
from crmflow.logs import setup_logging
from crmflow.settings import SERVICES, Settings, load_settings
from crmflow.telemetry import setup_tracing

# Service name -> composition root module. Unknown names are refused by argparse.
COMPOSITION_ROOTS = {
    "editor-api": "editor_api.main",
    "enrollment": "enrollment.main",
    "executor": "executor.main",
    "datasource-resolver": "datasource_resolver.main",
}
assert set(COMPOSITION_ROOTS) == set(SERVICES)


def composition_root(service: str) -> Any:
    return importlib.import_module(COMPOSITION_ROOTS[service])


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run one service in the foreground")
    p.add_argument("service", choices=sorted(COMPOSITION_ROOTS))
    p.add_argument("--port", type=int, default=None, help="override CRMFLOW_PORT")
    p.add_argument(
        "--role",
        choices=["main", "custom-code"],
        default="main",
        help="executor only: the main worker, or the custom-code task queue worker",
    )
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings(Settings)
    if args.port is not None:
        settings.port = args.port
    setup_logging(args.service, settings.log_level, settings.log_format)
    setup_tracing(args.service, settings.otlp_endpoint)
    root = composition_root(args.service)
    kwargs = {"role": args.role} if args.service == "executor" else {}

    async def main() -> None:
        stop = install_stop_signals()
        running = await root.start(settings, **kwargs)
        await wait_for_termination(running, settings.grace_seconds, stop)

    asyncio.run(main())
    return exit_now(0)
