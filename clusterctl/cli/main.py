"""The ``clusterctl`` command: one typer app per noun, joined here.

A command imports only the module that defines it: ``clusterctl show 7`` does not load the
planner, the simulator's arrays or the controller's server (half of its start-up time went
there). ``clusterctl --help`` lists them from ``SUMMARIES`` without loading any; a word that
is not a command loads them all, so that the error lists every command.
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
    "submit": ("submit", "submit", NOT_INTERSPERSED),
    "run": ("interactive", "run", NOT_INTERSPERSED),
    "jobs": ("jobs", "jobs", None),
    "show": ("jobs", "show", None),
    "logs": ("jobs", "logs", None),
    "cancel": ("job_actions", "cancel", None),
    "attach": ("interactive", "attach", None),
    "port-forward": ("interactive", "port_forward", None),
    "wait": ("job_actions", "wait", None),
    "hold": ("job_actions", "hold", None),
    "release": ("job_actions", "release", None),
    "update": ("job_actions", "update", None),
    "top": ("nodes", "top", None),
    "whoami": ("admin", "whoami", None),
    "simulate": ("simulate", "simulate", None),
    "plan": ("plan", "plan", None),
}
GROUPS = ("nodes", "admin", "hardware", "report", "notify", "budget", "serve")
"""Nouns with commands of their own: each module's ``app``."""


SUMMARIES: dict[str, str] = {
    'up': 'Start Ray, the controller and an admin user for you; Ctrl-C stops what it started.',
    'demo': 'A self-contained tour: starts a simulated mixed fleet, runs sample jobs, exits.',
    'submit': 'Queue a job; prints its id once it is stored (one id per line for an array).',
    'run': (
        'Run a command through the queue and stay with it, as srun does: says why it waits, '
        'then connects your terminal to it: stdin, and its output (stdout and stderr '
        'together), through the controller.'),
    'jobs': 'The queue: pending and running jobs (with --all, finished ones too).',
    'show': "A job's spec, state history and the GPUs it held.",
    'logs': "A job's output (stdout and stderr together), kept by the controller.",
    'cancel': (
        'Cancel jobs: queued ones at once, running ones by SIGTERM, then SIGKILL after a '
        'grace.'),
    'attach': (
        'Come back to an interactive job (one started with `run`) after a dropped '
        'connection, or from another terminal (the earlier one is let go).'),
    'port-forward': (
        'Bring a port an interactive job serves (`run --port 8888`, a notebook) to '
        "this machine's 127.0.0.1, through the controller, until Ctrl-C."),
    'wait': 'Wait for a job to end.',
    'hold': 'Keep pending jobs from starting until released (their place in the queue is kept).',
    'release': 'Let held jobs start again.',
    'update': 'Change pending jobs: yours within the limits a submit has (admins: any job).',
    'top': (
        "A live view, as nvitop's: each GPU's utilization and memory with a short history, the"
        ' running jobs with their cost per hour, and the queue with why each job waits.'),
    'whoami': "Who the CLI's token says you are: user, team, admin or not.",
    'simulate': 'Replay a trace in simulated time through the live policy and the baselines.',
    'plan': 'Replay the history on the current fleet and on each proposal; price each; advise.',
    'nodes': 'Nodes and their GPUs.',
    'admin': 'Administration.',
    'hardware': 'Hardware inventory and cost settings.',
    'report': 'Utilization, cost, amortization and waste reports.',
    'notify': "Webhooks for your jobs' failures (and, for admins, a team's).",
    'budget': 'Team budgets: spent, forecast, and holding jobs when over.',
    'serve': (
        'Model services: `serve NAME --gpus 1 --replicas 1:4 -- CMD` starts one; list, show, '
        'logs, scale, stop, key.'),
}
"""What ``clusterctl --help`` lists, without importing a command's module (every module is
300 ms of imports, numpy among them, for a list of names): the first line of each command's
help; tests/test_cli_start.py fails when one drifts from its command's own."""


def _app() -> typer.Typer:
    app = typer.Typer(
        help="GPU cluster scheduler and utilization tracker for teams that own their GPUs.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,  # help renders as written: no emoji for "JOB:ok:", no [markup]
    )
    app.callback()(lambda: None)  # a group even with one command: its name stays a word
    return app


def listing() -> typer.Typer:
    """The app ``clusterctl`` and ``clusterctl --help`` show: every command, none loaded."""
    app = _app()
    for name, summary in SUMMARIES.items():
        app.command(name, help=summary)(lambda: None)
    return app


def build(word: str | None = None) -> typer.Typer:
    """The app with the command ``word`` names, or with every command."""
    app = _app()
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
    (build(words[0]) if words else listing())()
