"""``certctl-operator``: run the operator, or start the local demo.

certctl-operator run [--namespace NS ...] [--log-format json]
certctl-operator dev up          # local control plane + CRDs + operator + examples
certctl-operator dev build       # build (or reuse) kube-apiserver and etcd
certctl-operator crdgen [--check]
certctl-operator acme-solver --token T --key-authorization K   # an HTTP-01 solver Pod's program
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from certctl_operator import __version__


def _run(args: argparse.Namespace) -> int:
    from certctl_operator import slim_imports
    from certctl_operator.kube import lazy_client

    # Before Kopf or the operator imports them: what the operator never runs stays on disk.
    lazy_client.install()
    slim_imports.leave_out_httpx_cli()
    kopf = slim_imports.import_kopf()

    from certctl_operator.context import OperatorContext
    from certctl_operator.log_setup import configure_logging
    from certctl_operator.settings import Settings

    settings = Settings.from_env(
        namespaces=tuple(args.namespace) if args.namespace else None,
        log_format=args.log_format,
        log_level=args.log_level,
        http_port=args.http_port,
        http_host=args.http_host,
    )
    configure_logging(settings.log_format, settings.log_level)

    import certctl_operator.controllers  # noqa: F401  (registers the controllers)
    from certctl_operator.controllers.lifecycle import OperatorMemo, OperatorMemories, kinds_without_daemons

    context = OperatorContext(settings=settings)

    # Kopf installs its own SIGINT/SIGTERM handlers: on either it stops the
    # watchers, lets running handlers finish, runs the cleanup handlers, exits.
    async def run_operator(
        stop_flag: asyncio.Event | None = None, ready_flag: asyncio.Event | None = None
    ) -> None:
        await kopf.operator(
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            memo=OperatorMemo(context=context),
            memories=OperatorMemories(kinds_without_daemons(kopf.get_default_registry())),
            standalone=True,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )

    if settings.leader_election:
        from certctl_operator.leadership_runner import run_with_leader_election

        # Stand by until this replica holds the Lease, then run the operator while renewing it.
        return asyncio.run(run_with_leader_election(context, run_operator))
    asyncio.run(run_operator())
    return 0


def _dev_up(args: argparse.Namespace) -> int:
    from certctl_operator.dev.demo import run_demo

    return run_demo(exit_when_ready=args.exit_when_ready, workdir=args.workdir)


def _dev_build(_: argparse.Namespace) -> int:
    from certctl_operator.dev.binaries import ensure_binaries

    binaries = ensure_binaries()
    print(f"kube-apiserver: {binaries.kube_apiserver}")
    print(f"etcd:           {binaries.etcd}")
    return 0


def _crdgen(args: argparse.Namespace) -> int:
    from certctl_operator import crdgen

    return crdgen.main(["--check"] if args.check else [])


def _acme_solver(args: argparse.Namespace) -> int:
    from certctl_operator.acme.http01_server import serve

    return serve(args.address, args.port, args.token, args.key_authorization)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="certctl-operator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator against the current cluster")
    run.add_argument(
        "--namespace",
        "-n",
        action="append",
        help="watch only this namespace (repeatable); default: all namespaces (CERTCTL_NAMESPACES)",
    )
    run.add_argument("--log-format", choices=["text", "json"], help="log format (CERTCTL_LOG_FORMAT)")
    run.add_argument(
        "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level (CERTCTL_LOG_LEVEL)"
    )
    run.add_argument("--http-port", type=int, help="port of health, metrics and PKI endpoints")
    run.add_argument("--http-host", help="bind address of health, metrics and PKI endpoints")
    run.set_defaults(func=_run)

    dev = commands.add_parser("dev", help="local development: control plane and demo")
    dev_commands = dev.add_subparsers(dest="dev_command", required=True)
    up = dev_commands.add_parser(
        "up", help="start a local control plane, install the CRDs, run the operator, apply examples/"
    )
    up.add_argument(
        "--exit-when-ready",
        action="store_true",
        help="stop everything once the examples are reconciled (for scripts)",
    )
    up.add_argument("--workdir", help="directory for the control plane's state (default: a temp dir)")
    up.set_defaults(func=_dev_up)
    build = dev_commands.add_parser("build", help="build (or reuse) kube-apiserver and etcd")
    build.set_defaults(func=_dev_build)

    gen = commands.add_parser("crdgen", help="write crds/ from the API models")
    gen.add_argument("--check", action="store_true", help="fail if crds/ differs from the models")
    gen.set_defaults(func=_crdgen)

    solver = commands.add_parser(
        "acme-solver", help="answer one ACME HTTP-01 challenge (the program of a solver Pod)"
    )
    solver.add_argument("--address", default="0.0.0.0", help="bind address (default 0.0.0.0)")  # noqa: S104
    solver.add_argument("--port", type=int, default=8089, help="port (default 8089)")
    solver.add_argument("--token", required=True, help="the challenge's token")
    solver.add_argument("--key-authorization", required=True, help="the answer: token.thumbprint")
    solver.set_defaults(func=_acme_solver)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
