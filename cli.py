"""The ``openlines`` command: dev, api, worker, migrate, keys."""

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import NoReturn, get_args

from pydantic import ValidationError

from core.api_keys import Role
from core.config import Settings, get_settings


def _dev(args: argparse.Namespace) -> int:
    from core import dev_stack

    overrides = {
        name: value
        for name, value in (
            ("api_port", args.api_port),
            ("temporal_port", args.temporal_port),
            ("temporal_ui_port", args.ui_port),
            ("data_dir", args.data_dir),
        )
        if value is not None
    }
    settings = Settings(**overrides)
    try:
        return dev_stack.run(settings)
    except dev_stack.DevStackError as error:
        print(f"openlines dev: {error}", file=sys.stderr)
        return 2


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from core import logs, temporal_check

    settings = get_settings()
    logs.setup(settings.log_format)
    try:
        asyncio.run(temporal_check.require(settings))
    except temporal_check.TemporalNotReady as not_ready:
        print(f"openlines api: {not_ready}", file=sys.stderr)
        _leave(2)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_level="info",
        # JSON lines: uvicorn's loggers pass their records to ours (core.logs).
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
    )
    return 0


def _worker(_: argparse.Namespace) -> int:
    import worker
    from core.temporal_check import TemporalNotReady
    from core.worker_endpoints import PortUnavailable

    try:
        worker.main()
    except (TemporalNotReady, PortUnavailable) as cannot_start:
        print(f"openlines worker: {cannot_start}", file=sys.stderr)
        _leave(2)
    return 0


def _temporal_check(_args: argparse.Namespace) -> int:
    from core import temporal_check

    settings = get_settings()
    _client, report = asyncio.run(temporal_check.check(settings))
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        print(f"problem: {problem}", file=sys.stderr)
    if report.problems:
        _leave(1)
    print(
        f"Temporal at {settings.temporal_address}, namespace {settings.temporal_namespace}: "
        "ready for openlines"
    )
    _leave(0)


def _leave(code: int) -> NoReturn:
    """Exit at once, after a short-lived use of the Temporal client.

    The SDK's Rust threads can outlive the event loop, and a normal interpreter shutdown then
    aborts the process ("PyGILState_Release ... must be current", temporalio/sdk-python#300),
    turning a clear exit code into 134. Nothing is left to clean up here.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _migrate(_: argparse.Namespace) -> int:
    from core import migrate

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    from core.db import printable_url

    migrate.upgrade(settings.resolved_database_url)
    print(f"database at {printable_url(settings.resolved_database_url)} is up to date")
    return 0


class UnknownBinding(Exception):
    """A key would be bound to an operator or bot that does not exist."""


def _keys_create(args: argparse.Namespace) -> int:
    from core.api_keys import issue_key
    from core.bots import live_bot
    from core.db import create_engine, session_factory
    from core.models import Operator

    if args.role == "operator" and args.operator_id is None:
        print("--operator-id is required for --role operator", file=sys.stderr)
        return 2
    if args.role not in ("operator", "supervisor") and args.operator_id is not None:
        print("--operator-id binds only operator and supervisor keys", file=sys.stderr)
        return 2
    if (args.role == "bot") != (args.bot_id is not None):
        print("--bot-id is required for, and only for, --role bot", file=sys.stderr)
        return 2

    async def create() -> str:
        """The new key; ``UnknownBinding`` when the operator or bot it names does not exist."""
        engine = create_engine(get_settings().resolved_database_url)
        try:
            async with session_factory(engine)() as session:
                if args.operator_id is not None and not await session.get(
                    Operator, args.operator_id
                ):
                    raise UnknownBinding(f"operator {args.operator_id} does not exist")
                if args.bot_id is not None and not await live_bot(session, args.bot_id):
                    raise UnknownBinding(f"bot {args.bot_id} does not exist")
                _, plain = await issue_key(session, args.role, args.operator_id, args.bot_id)
                await session.commit()
                return plain
        finally:
            await engine.dispose()

    try:
        plain = asyncio.run(create())
    except UnknownBinding as unknown:
        print(unknown, file=sys.stderr)
        return 2
    print(plain)
    return 0


def _db_id(text: str) -> int:
    """An id as the API takes it: a positive 32-bit integer."""
    from core.models import MAX_ID

    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_ID:
        raise argparse.ArgumentTypeError(f"{text!r} is not an id (1..{MAX_ID})")
    return value


def _bench(args: argparse.Namespace) -> int:
    from bench.runner import run_args

    return run_args(args)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="openlines", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="run Temporal dev server, worker and API together")
    dev.add_argument("--api-port", type=int, help="API port (OPENLINES_API_PORT, default 8000)")
    dev.add_argument(
        "--temporal-port",
        type=int,
        help="Temporal gRPC port (OPENLINES_TEMPORAL_PORT, default 7233)",
    )
    dev.add_argument(
        "--ui-port", type=int, help="Temporal UI port (OPENLINES_TEMPORAL_UI_PORT, default 8233)"
    )
    dev.add_argument(
        "--data-dir", type=Path, help="data folder (OPENLINES_DATA_DIR, default ./data)"
    )
    dev.set_defaults(run=_dev)

    api = commands.add_parser("api", help="serve the HTTP API")
    api.add_argument("--host", help="bind address (OPENLINES_API_HOST)")
    api.add_argument("--port", type=int, help="port (OPENLINES_API_PORT)")
    api.set_defaults(run=_api)

    commands.add_parser("worker", help="run the Temporal worker").set_defaults(run=_worker)
    commands.add_parser("migrate", help="apply database migrations").set_defaults(run=_migrate)
    temporal = commands.add_parser("temporal", help="the Temporal cluster").add_subparsers(
        dest="temporal_command", required=True
    )
    temporal.add_parser(
        "check", help="check the namespace and search attributes; say what to register"
    ).set_defaults(run=_temporal_check)

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="issue a key and print it (shown once)")
    create.add_argument("--role", required=True, choices=get_args(Role))
    create.add_argument("--operator-id", type=_db_id)
    create.add_argument("--bot-id", type=_db_id)
    create.set_defaults(run=_keys_create)

    try:
        from bench.options import add_arguments as add_bench_arguments
    except ImportError:  # an install without the benchmark, such as the container image
        return root
    bench = commands.add_parser("bench", help="measure performance against the design targets")
    add_bench_arguments(bench)
    bench.set_defaults(run=_bench)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        sys.exit(args.run(args))
    except ValidationError as error:  # the environment's settings, read at start
        for problem in error.errors():
            field = ".".join(str(part) for part in problem["loc"])
            what = f"setting {field}" if field else "settings"
            print(f"openlines: invalid {what}: {problem['msg']}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
