"""Wiring the demo into ``ringfence serve --demo``: its own database and clock, its tokens, its agents."""

from __future__ import annotations

import shutil
from typing import Any

from fastapi import FastAPI
from rich.console import Console

from ringfence.adapters.db.engine import Database
from ringfence.config import Settings
from ringfence.demo.clock import FastClock
from ringfence.demo.fleet import DemoFleet
from ringfence.domain.access import Role
from ringfence.services.context import Actor, Clock
from ringfence.services.tokens import create_token

__all__ = ["DEMO_ROLES", "MAX_SPEED", "demo_settings", "start_demo"]

#: Fastest demo clock: a reconciler tick of 2,000 hosts takes about 0.4 s, and ticks must stay within the engine's
#: MAX_TICK_GAP (2 demo minutes) of each other or every tick restarts the rate limit.
MAX_SPEED = 120.0
#: The demo creates one token per role so that every view of the dashboard can be tried.
DEMO_ROLES = ("viewer", "operator", "approver")


def demo_settings(settings: Settings, *, speed: float, hosts: int) -> tuple[Settings, FastClock]:
    """Settings for the demo: a fresh SQLite database and artifacts under ``DATA_DIR/demo``, a 1 s reconciler tick."""
    if not 0 < speed <= MAX_SPEED:
        from ringfence.errors import InputError  # noqa: PLC0415

        raise InputError.single("demo_speed", f"is {speed:g}", expected=f"a speed-up above 0 and at most {MAX_SPEED:g} "
                                "(faster, reconciler ticks would fall more than the engine's 2 demo minutes apart)")
    clock = FastClock(speed)
    if not 10 <= hosts <= 5000:
        from ringfence.errors import InputError  # noqa: PLC0415

        raise InputError.single("demo_hosts", f"is {hosts}", expected="10 … 5,000 hosts")
    root = settings.data_dir / "demo"
    shutil.rmtree(root, ignore_errors=True)  # the demo always starts from scratch; it never touches other data
    root.mkdir(parents=True, exist_ok=True)
    demo = settings.model_copy(update={"database_url": f"sqlite:///{root / 'ringfence.db'}", "data_dir": root,
                                       # ticks less than the engine's MAX_TICK_GAP (2 min) of demo time apart
                                       "reconcile_interval_seconds": min(1.0, max(0.25, 40.0 / speed)),
                                       "health_max_per_minute": max(settings.health_max_per_minute, 120)})
    return demo, clock


def start_demo(app: FastAPI, db: Database, clock: Clock, *, hosts: int, console: Console) -> DemoFleet:
    """Create the demo tokens, import and start the fleet, and hand it to the dashboard."""
    state: Any = app.state.ringfence
    boot = Actor(name="ringfence-demo", role=Role.ADMIN, source="local")
    for role in DEMO_ROLES:
        token, _ = create_token(db, name=f"demo-{role}", role=role, actor=boot, clock=clock, reason="demo tokens")
        console.print(f"  demo {role:>8} token: {token}", soft_wrap=True, highlight=False)
    speed = getattr(clock, "speed", 1.0)
    fleet = DemoFleet(db=db, ingest=state.ingest, artifacts=state.artifacts, clock=clock, speed=speed, host_count=hosts)
    with console.status(f"demo: importing {hosts:,} simulated hosts and starting a good release…"):
        fleet.setup()
    fleet.start()
    app.state.demo = fleet
    console.print(f"demo: {hosts:,} hosts, clock ×{speed:g}; open the dashboard and press 'Replay 19 July 2024'",
                  highlight=False)
    return fleet
