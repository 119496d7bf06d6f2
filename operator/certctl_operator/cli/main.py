"""Entry point of ``kubectl-certctl`` (and so of ``kubectl certctl``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.text import Text

from certctl_operator import __version__
from certctl_operator.cli import actions, check, crl, import_command, inspection, status
from certctl_operator.cli.errors import CliError, ExitCode
from certctl_operator.cli.kube import Cluster, connect
from certctl_operator.cli.output import make_console

DESCRIPTION = (
    "kubectl certctl: look after the TLS certificates that certctl-operator manages. "
    "Uses your kubeconfig and context, like kubectl."
)
EPILOG = """\
exit status: 0 ok, 1 error, 2 bad arguments, 3 a check or --fail-on tripped,
4 timed out waiting. "kubectl certctl COMMAND --help" explains each command.
"""


def _connection_options(parser: argparse._ActionsContainer, default: object) -> None:
    parser.add_argument(
        "--kubeconfig", default=default, help="kubeconfig file (default $KUBECONFIG or ~/.kube/config)"
    )
    parser.add_argument("--context", default=default, help="kubeconfig context (default: the current one)")
    parser.add_argument(
        "-n",
        "--namespace",
        default=default,
        help="namespace (default: the context's namespace, else default)",
    )


def build_parser() -> argparse.ArgumentParser:
    # The connection options work before and after the command, as with kubectl:
    # the command's copies default to SUPPRESS so they never undo the top-level ones.
    common = argparse.ArgumentParser(add_help=False)
    _connection_options(common.add_argument_group("connection"), argparse.SUPPRESS)
    all_namespaces = argparse.ArgumentParser(add_help=False)
    all_namespaces.add_argument(
        "-A", "--all-namespaces", action="store_true", help="every namespace instead of one"
    )

    parser = argparse.ArgumentParser(
        prog="kubectl certctl",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _connection_options(parser, None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    status.add_parser(commands, [common], all_namespaces)
    inspection.add_parser(commands, [common])
    actions.add_parsers(commands, [common], all_namespaces)
    crl.add_parser(commands, [common])
    check.add_parser(commands, [common])
    import_command.add_parser(commands, [common], all_namespaces)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit status (see :class:`ExitCode`)."""
    args = build_parser().parse_args(argv)
    errors = make_console(sys.stderr)
    connected: list[Cluster] = []

    def connect_once() -> Cluster:
        if not connected:
            connected.append(connect(args.kubeconfig, args.context))
        return connected[0]

    try:
        return int(args.func(args, connect_once))
    except CliError as error:
        errors.print(Text.assemble(("error", "bold red"), ": ", error.message))
        return int(error.exit_code)
    except KeyboardInterrupt:
        errors.print("interrupted")
        return int(ExitCode.INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
