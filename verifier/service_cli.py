"""``veripo serve-verifier``: run the verifier service (see :mod:`veripo.verifier.service`)."""
from __future__ import annotations

import argparse
import os

HELP = "Serve the verifier over HTTP (FastAPI): /v1/verify, /v1/pairs, /health, /metrics."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from veripo.cli import add_config_arguments

    parser.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--token", default=None,
                        help="bearer token clients must send (default: $VERIPO_VERIFIER_TOKEN; none = no auth)")
    parser.add_argument("--max-batch", type=int, default=256, help="rollouts per request at most (413 above)")
    parser.add_argument("--max-body-mb", type=float, default=16.0, help="request body limit in MiB (413 above)")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from veripo.config import describe, load_config
    from veripo.verifier.config import VerifierConfig
    from veripo.verifier.service import create_app

    if args.show_config:
        print(describe(VerifierConfig))
        return 0
    cfg = load_config(VerifierConfig, args.config, args.overrides)
    token = args.token or os.environ.get(cfg.service_token_env)
    if not token and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host} without a bearer token (set --token or ${cfg.service_token_env})")
    app = create_app(cfg, token=token, max_batch=args.max_batch, max_body_bytes=int(args.max_body_mb * 2**20))
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
