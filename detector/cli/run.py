"""`detector run --config SITE.yaml`: a live site."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run every camera of a site until stopped",
        description="Run a live site: its cameras (RTSP or file) in worker processes that are restarted "
        "when they crash, with face-blurred evidence, a durable outbox, optional MQTT/HTTP delivery, and "
        "Prometheus /metrics plus /healthz. Stops cleanly on SIGTERM or Ctrl-C.",
    )
    p.add_argument("--config", type=Path, required=True, help="site YAML (see configs/site.example.yaml)")
    p.add_argument("--metrics-port", type=int, default=None, help="override metrics.port (0: any free port)")
    p.add_argument(
        "--check",
        action="store_true",
        help="check the config, clips, models, keys, directories and metrics port, then exit",
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from detector import supervisor
    from detector.config import load_site

    site = load_site(args.config)
    if args.check:
        errors, warnings = supervisor.check_site(site, args.metrics_port)
        for line in warnings:
            print(f"warning: {line}", file=sys.stderr)
        for line in errors:
            print(f"{args.config}: {line}", file=sys.stderr)
        if errors:
            return 2
        print(
            f"{args.config}: ok, site {site.site!r}, {len(site.cameras)} cameras: "
            + ", ".join(c.name for c in site.cameras),
            file=sys.stderr,
        )
        return 0

    return supervisor.run_site(site, args.metrics_port)
