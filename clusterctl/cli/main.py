"""The ``clusterctl`` command: one typer app per noun, joined here."""

from __future__ import annotations

import typer

from clusterctl.cli import admin, budget, hardware, jobs, nodes, notify, report
from clusterctl.cli.demo import demo
from clusterctl.cli.plan import plan
from clusterctl.cli.simulate import simulate
from clusterctl.cli.up import up

app = typer.Typer(
    help="GPU cluster scheduler and utilization tracker for teams that own their GPUs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # help renders as written: no emoji for "JOB:ok:", no [markup]
)
app.command()(up)
app.command()(demo)
app.command(context_settings={"allow_interspersed_args": False})(jobs.submit)
app.command(context_settings={"allow_interspersed_args": False})(jobs.run)
app.command("jobs")(jobs.jobs)
app.command()(jobs.show)
app.command()(jobs.logs)
app.command()(jobs.cancel)
app.command()(jobs.attach)
app.command("port-forward")(jobs.port_forward)
app.command()(jobs.wait)
app.command()(jobs.hold)
app.command()(jobs.release)
app.command()(jobs.update)
app.command()(nodes.top)
app.command()(admin.whoami)
app.command()(simulate)
app.command()(plan)
app.add_typer(nodes.app, name="nodes")
app.add_typer(admin.app, name="admin")
app.add_typer(hardware.app, name="hardware")
app.add_typer(report.app, name="report")
app.add_typer(notify.app, name="notify")
app.add_typer(budget.app, name="budget")


def main() -> None:
    app()
