"""The ``lungspread`` command: one Typer app, one module per command group.

Each module in :data:`COMMAND_MODULES` defines ``register(app)``; heavy libraries are imported
inside the command functions so that ``lungspread --help`` stays fast.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from lungspread import __version__
from lungspread.errors import LungspreadError

COMMAND_MODULES: tuple[str, ...] = (
    "lungspread.cli.cmd_analyze",
    "lungspread.cli.cmd_demo",
    "lungspread.cli.cmd_spread",
    "lungspread.cli.cmd_info",
    "lungspread.cli.cmd_lungs",
    "lungspread.cli.cmd_dataset",
    "lungspread.cli.cmd_export",
    "lungspread.cli.cmd_train",
    "lungspread.cli.cmd_evaluate",
    "lungspread.cli.cmd_phantom",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"lungspread {__version__}")
        raise typer.Exit()


def _build_app() -> typer.Typer:
    app = typer.Typer(
        name="lungspread",
        help="Find lung tumors in chest CT and measure how far they have spread.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
        verbose: int = typer.Option(
            0, "--verbose", "-v", count=True, help="More log output (-v info, -vv debug)."
        ),
    ) -> None:
        level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)
    return app


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI; user errors become one line on stderr and exit code 2."""
    app = _build_app()
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except LungspreadError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        return 2
    except KeyboardInterrupt:
        typer.secho("interrupted; no partial outputs were kept", err=True)
        return 130
    except MemoryError:
        typer.secho("error: out of memory; try a smaller input or --device cpu", err=True)
        return 2
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        typer.secho(f"error: {where}{exc.strerror or exc}", fg=typer.colors.RED, err=True)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
