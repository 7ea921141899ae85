"""``ringfence simulate``: replay a scenario under one or more rollout plans, locally, through the real engine."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ringfence.cli.options import err, out
from ringfence.sim.scenario import plan_names, scenario_names

__all__ = ["install"]


def install(app: typer.Typer) -> None:
    """Add ``simulate`` to the main CLI."""

    @app.command("simulate")
    def simulate(
        scenario: Annotated[str, typer.Option(
            help="Scenario name (" + ", ".join(scenario_names()) + ") or a YAML file.")],
        plan: Annotated[list[str] | None, typer.Option(
            help="Plan name (" + ", ".join(plan_names()) + ") or a plan YAML file (repeatable; "
                 "default: default).")] = None,
        hosts: Annotated[int | None, typer.Option(help="Fleet size (default: the scenario's).")] = None,
        seed: Annotated[int, typer.Option(help="Seed of the first replication (then seed+1, …).")] = 0,
        replications: Annotated[int, typer.Option(help="Runs per plan; the JSON gives medians.")] = 1,
        report: Annotated[Path | None, typer.Option(help="Write the HTML report (charts, halt evidence) here.")] = None,
        json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON results here.")] = None,
        policy: Annotated[list[str] | None, typer.Option(
            hidden=True, help="The former name of --plan (docs/glossary.md), kept for one release.")] = None,
    ) -> None:
        """Simulate a release's rollout under each plan with a virtual clock; crashed hosts, halts, recovery."""
        # Imported here: the simulator and its report weigh ~0.3 s that every other CLI verb should not pay.
        from ringfence.adapters.reports.simulation import format_value, render_html  # noqa: PLC0415
        from ringfence.sim.service import run_simulations  # noqa: PLC0415

        columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=False) as bar:
            tasks: dict[tuple[str, int], TaskID] = {}

            def progress(name: str, rep: int, fraction: float) -> None:
                key = (name, rep)
                if key not in tasks:
                    label = name if replications == 1 else f"{name} #{rep + 1}"
                    tasks[key] = bar.add_task(label, total=1.0)
                bar.update(tasks[key], completed=fraction)

            plans = [*(plan or []), *(policy or [])] or ["default"]
            run = run_simulations(scenario, plans, hosts=hosts, seed=seed, replications=replications, progress=progress)
            for task in tasks.values():
                bar.update(task, completed=1.0)
        summaries = run.summaries()
        table = Table(title=f"{run.scenario.name}: {summaries[0]['hosts']:,} hosts, seed {seed}"
                      + (f", median of {replications}" if replications > 1 else ""))
        keys = ["plan", "exposed_hosts", "crashed_hosts", "halted", "time_to_halt_s", "exposure_host_hours",
                "time_to_full_s", "false_halt", "manual_recovery_hosts", "recovery_hours"]
        for k in keys:
            table.add_column(k.removesuffix("_s").replace("_", " "), justify="left" if k == "plan" else "right")
        for s in summaries:
            table.add_row(*(duration(s[k]) if k.endswith("_s") else format_value(s[k]) for k in keys))
        out.print(table)
        for name in run.plans:
            halt = run.results[name][0].halt
            if halt is not None:
                out.print(f"[bold]{name}[/bold]: {halt['message']}", highlight=False, soft_wrap=True)
            for told in run.results[name][0].shadow:  # a gate in shadow mode: decided and shown, never enforced
                out.print(f"[bold]{escape(name)}[/bold]: {escape(told['title'])} at "
                          f"{told['at'][:16].replace('T', ' ')} UTC: {escape(told['message'])}", highlight=False,
                          soft_wrap=True)
        if json_out:
            json_out.write_text(json.dumps(summaries, indent=2) + "\n", encoding="utf-8")
        if report:
            report.write_text(render_html(run), encoding="utf-8")
        written = [str(p) for p in (json_out, report) if p]
        if written:
            err.print("wrote " + ", ".join(written), highlight=False)


def duration(seconds: object) -> str:
    """Seconds as people read a duration: ``42 s``, ``6 min``, ``4 h 2 min``, ``2 d 19 h``; ``—`` for none."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not math.isfinite(seconds):  # None, NaN
        return "—"
    s = round(float(seconds))
    if s < 60:
        return f"{s} s"
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 3600:
        return f"{minutes} min"
    if s < 86400:
        return f"{hours} h {minutes % 60} min" if minutes % 60 else f"{hours} h"
    return f"{days} d {hours % 24} h" if hours % 24 else f"{days} d"
