"""`python -m ingestion.webhooks --landing DIR [--host H] [--port P] [--workers N]`: run the
receiver (N > 1: a lander process plus N HTTP workers, see `ingestion.webhooks.workers`).

Secrets come from STRIPE_WEBHOOK_SECRET, RAZORPAY_WEBHOOK_SECRET and
PAYSIGHT_SIMULATED_WEBHOOK_SECRET (comma-separated lists during rotation).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ingestion.webhooks.app import serve
from ingestion.webhooks.config import config_from_env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ingestion.webhooks")
    parser.add_argument("--landing", type=Path, default=Path("data/landing"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--workers", type=int, default=1, help="HTTP worker processes")
    args = parser.parse_args(argv)
    serve(
        args.host,
        args.port,
        config_from_env(args.landing),
        log_level=args.log_level,
        workers=args.workers,
    )


if __name__ == "__main__":
    main()
