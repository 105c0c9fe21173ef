"""The ``clusterctl`` command: one typer app per noun, joined here.

A command imports only the module that defines it: ``clusterctl show 7`` does not load the
planner, the simulator's arrays or the controller's server (half of its start-up time went
there). Help, and any word that is not a command, load them all, so every command is listed.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

NOT_INTERSPERSED = {"allow_interspersed_args": False}

COMMANDS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    # name: (module under clusterctl.cli, function, context settings)
    "up": ("up", "up", None),
    "demo": ("demo", "demo", None),
    "submit": ("jobs", "submit", NOT_INTERSPERSED),
    "run": ("jobs", "run", NOT_INTERSPERSED),
    "jobs": ("jobs", "jobs", None),
    "show": ("jobs", "show", None),
    "logs": ("jobs", "logs", None),
    "cancel": ("jobs", "cancel", None),
    "attach": ("jobs", "attach", None),
    "port-forward": ("jobs", "port_forward", None),
    "wait": ("jobs", "wait", None),
    "hold": ("jobs", "hold", None),
    "release": ("jobs", "release", None),
    "update": ("jobs", "update", None),
    "top": ("nodes", "top", None),
    "whoami": ("admin", "whoami", None),
    "simulate": ("simulate", "simulate", None),
    "plan": ("plan", "plan", None),
}
GROUPS = ("nodes", "admin", "hardware", "report", "notify", "budget")
"""Nouns with commands of their own: each module's ``app``."""


def build(word: str | None = None) -> typer.Typer:
    """The app with the command ``word`` names, or with every command."""
    app = typer.Typer(
        help="GPU cluster scheduler and utilization tracker for teams that own their GPUs.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,  # help renders as written: no emoji for "JOB:ok:", no [markup]
    )
    app.callback()(lambda: None)  # a group even with one command: its name stays a word
    known = word in COMMANDS or word in GROUPS
    for name, (module, function, context) in COMMANDS.items():
        if not known or name == word:
            command = getattr(importlib.import_module(f"clusterctl.cli.{module}"), function)
            app.command(name, context_settings=context)(command)
    for name in GROUPS:
        if not known or name == word:
            app.add_typer(importlib.import_module(f"clusterctl.cli.{name}").app, name=name)
    return app


def main() -> None:
    words = [a for a in sys.argv[1:] if not a.startswith("-")]
    build(words[0] if words else None)()
