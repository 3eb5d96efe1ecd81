"""``veripo serve-verifier``: run the verifier service (see :mod:`veripo.verifier.service`).

The bearer token comes from the environment variable named by ``service_token_env`` (default
``$VERIPO_VERIFIER_TOKEN``), never from a flag: a command line is readable by every user of the machine (``ps``).
Without a token the service listens on loopback only, unless ``--no-auth`` says that is meant.
"""
from __future__ import annotations

import argparse
import os

HELP = "Serve the verifier over HTTP (FastAPI): /v1/verify, /v1/pairs, /health, /metrics."
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from veripo.cli import add_config_arguments

    parser.add_argument("--host", default="127.0.0.1", help="bind address (default loopback; 0.0.0.0 for a cluster)")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--token", default=None, help=argparse.SUPPRESS)  # refused with a message in run()
    parser.add_argument("--no-auth", action="store_true",
                        help="serve beyond loopback without a bearer token (anyone who can reach the port may use it)")
    parser.add_argument("--max-batch", type=int, default=256, help="rollouts per request at most (413 above)")
    parser.add_argument("--max-body-mb", type=float, default=16.0, help="request body limit in MiB (413 above)")
    add_config_arguments(parser)
    parser.epilog = "Bearer token: export VERIPO_VERIFIER_TOKEN=... (the same variable the clients read)."


def run(args: argparse.Namespace) -> int:
    from veripo.config import describe, load_config
    from veripo.errors import VeripoError
    from veripo.verifier.config import VerifierConfig

    if args.show_config:
        print(describe(VerifierConfig))
        return 0
    cfg = load_config(VerifierConfig, args.config, args.overrides)
    if args.token is not None:
        raise VeripoError(f"--token is not accepted: a command line is visible to every user (ps); export "
                          f"${cfg.service_token_env} instead (the clients read the same variable)")
    token = os.environ.get(cfg.service_token_env) or None
    if not token and args.host not in LOOPBACK and not args.no_auth:
        raise VeripoError(f"serving on {args.host} without a bearer token: export ${cfg.service_token_env}, "
                          "or pass --no-auth if anyone who can reach the port may use the service")
    import uvicorn

    from veripo.verifier.service import create_app

    app = create_app(cfg, token=token, max_batch=args.max_batch, max_body_bytes=int(args.max_body_mb * 2**20))
    auth = f"bearer token from ${cfg.service_token_env}" if token else "no auth"
    print(f"veripo serve-verifier: http://{args.host}:{args.port} ({auth}; judge {cfg.judge.kind})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
