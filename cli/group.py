"""The ``kgrec`` click group class: a bad argument is one line on stderr and exit code 2.

Click's default prints the usage, a hint and the error over four lines; scripts and people
both read one line better. Help requested by giving no arguments is left as click shows it.
"""

from __future__ import annotations

from typing import IO, Any

import click

_NO_ARGS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


class OneLineUsageError(click.ClickException):
    """A usage error shown as ``Error: <message> (see '<command> --help')``."""

    exit_code = 2

    def __init__(self, message: str, command_path: str | None) -> None:
        super().__init__(message)
        self.command_path = command_path

    def show(self, file: IO[Any] | None = None) -> None:
        hint = f" (see '{self.command_path} --help')" if self.command_path else ""
        click.echo(f"Error: {self.format_message()}{hint}", err=True, file=file)


def _one_line(exc: click.UsageError) -> OneLineUsageError:
    return OneLineUsageError(exc.format_message(), exc.ctx.command_path if exc.ctx else None)


class OneLineErrorGroup(click.Group):
    """A group whose usage errors, its own and its subcommands', print as one line."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            if _NO_ARGS_HELP and isinstance(exc, _NO_ARGS_HELP):
                raise
            raise _one_line(exc) from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            if _NO_ARGS_HELP and isinstance(exc, _NO_ARGS_HELP):
                raise
            raise _one_line(exc) from exc
