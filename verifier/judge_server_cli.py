"""``veripo serve-judge --model PATH``: a local HF model as an OpenAI-compatible chat endpoint."""
from __future__ import annotations

import argparse

HELP = "Serve a local Hugging Face model as an OpenAI-compatible /v1/chat/completions judge."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="checkpoint directory or model id (loaded offline)")
    parser.add_argument("--served-name", default="judge", help="model name clients send (default: judge)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-tokens-limit", type=int, default=4096)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from veripo.verifier.judge_server import create_judge_app

    app = create_judge_app(args.model, model_name=args.served_name, max_tokens_limit=args.max_tokens_limit)
    print(f"judge endpoint: http://{args.host}:{args.port}/v1  (model name {args.served_name!r})")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
