# The command line front door. Each subcommand lives in its own module exposing
# `add_arguments(parser)` and `run(args) -> int`; those modules keep heavy
# imports inside `run`; only the chosen command's module is imported at all.
# This is the only module that prints errors and chooses exit codes.
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from reprokit import __version__
from reprokit.errors import ReproError
from reprokit.redact import redact_uri

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "repro": ("reprokit.repro", "run the matrix: build envs, start servers, capture evidence"),
    "check": ("reprokit.check", "run every variant N times and count the verdicts"),
    "bisect": ("reprokit.bisect", "run the scenario on every release of a package in a range"),
    "bench": ("reprokit.bench", "measure the speed targets and print them as ratios"),
    "serve": ("reprokit.serve", "run SecantusDB with the legacy wire gateway in front"),
    "publish": ("reprokit.publish", "commit the built site to the gh-pages branch and push it"),
}

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the chosen command's module is imported."""
    parser = argparse.ArgumentParser(
        prog="reprokit", description="Executable bug write-ups: reproduce, capture, publish."
    )
    parser.add_argument("--version", action="version", version=f"reprokit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(sub_parser)
            sub_parser.set_defaults(_module=module)
    return parser


def _redact_record(record: logging.LogRecord) -> bool:
    """Logging filter: no mongodb:// credentials in any log line."""
    record.msg = redact_uri(record.getMessage())
    record.args = None
    return True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(next((a for a in argv if a in COMMANDS), None))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_redact_record)
    try:
        return int(args._module.run(args) or 0)
    except ReproError as exc:
        print(f"error: {redact_uri(str(exc))}", file=sys.stderr)
        if exc.tip:
            print(f"tip: {redact_uri(exc.tip)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        from reprokit import procs

        print("interrupted", file=sys.stderr)
        # 130 for Ctrl-C, 143 for SIGTERM: the shell's convention, 128 + signal.
        return 128 + procs.last_signal if procs.last_signal else EXIT_INTERRUPTED
