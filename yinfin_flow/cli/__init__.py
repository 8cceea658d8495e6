"""The ``yinfin-flow`` command line (also ``flask --app yinfin_flow …``).

Each area adds its commands in its own module under ``yinfin_flow/cli/`` and is
registered in :data:`GROUPS` below.
"""

from __future__ import annotations

import importlib

import click

from yinfin_flow import __version__

from .output import EXIT_CODES

GROUPS = ["db", "demo", "budget", "rates", "verify", "serve", "workflows", "journal", "report", "org", "token",
          "outbox"]


@click.group(epilog=EXIT_CODES)
@click.version_option(__version__, prog_name="yinfin-flow")
def main() -> None:
    """yinfin-flow: budget-linked approvals (业财融合).

    Lists and shows take --format table|json|csv; exports take -o - for standard
    output; who acts is --actor PERSON or $YINFIN_ACTOR (a person of the directory).
    Results go to standard output, errors and progress to standard error. Settings come
    from the environment, then from instance/yinfin.env for those it does not set.
    """
    from yinfin_flow import instance_env
    from yinfin_flow.config import ConfigError

    try:
        instance_env.apply()
    except ConfigError as err:
        raise click.ClickException(str(err)) from None


def _register() -> None:
    for name in GROUPS:
        try:
            module = importlib.import_module(f"yinfin_flow.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"yinfin_flow.cli.{name}":
                continue  # that area has no commands yet
            raise
        main.add_command(module.command)


_register()
