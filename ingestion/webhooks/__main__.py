"""`python -m ingestion.webhooks --landing DIR [--host H] [--port P] [--workers N]`: run the
receiver (N > 1: a lander process plus N HTTP workers, see `ingestion.webhooks.workers`).

The enabled sources are PAYSIGHT_WEBHOOK_SOURCES (or those whose secret is set); secrets come from
STRIPE_WEBHOOK_SECRET, RAZORPAY_WEBHOOK_SECRET and PAYSIGHT_SIMULATED_WEBHOOK_SECRET
(comma-separated `new,old` during rotation). There are no default secrets: an enabled source
without one stops start-up (exit 2) with the variable's name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ingestion.webhooks.config import WebhookConfigError, config_from_env
from ingestion.webhooks.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ingestion.webhooks")
    parser.add_argument("--landing", type=Path, default=Path("data/landing"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--workers", type=int, default=1, help="HTTP worker processes")
    args = parser.parse_args(argv)
    try:
        config = config_from_env(args.landing)
    except WebhookConfigError as exc:
        print(f"paysight webhooks: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    serve(args.host, args.port, config, log_level=args.log_level, workers=args.workers)


if __name__ == "__main__":
    main()
