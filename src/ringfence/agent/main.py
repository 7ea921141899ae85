"""``ringfence-agent``: run the endpoint agent, enrol it, show its state.

Every failure leaves through :func:`main`: bad config or input exits 2 with
each bad field listed, a refused enrolment or a second agent on the same
state dir exits 1.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ringfence.agent.config import AgentConfig, load_config
from ringfence.agent.core import Agent
from ringfence.agent.reporter import EnrolmentRefused
from ringfence.agent.state import StateDir, StateLocked
from ringfence.domain.presence import NOTICE_REASONS
from ringfence.errors import InputError, RingfenceError, shown

__all__ = ["app", "main"]

app = typer.Typer(name="ringfence-agent", help="The ringfence endpoint agent: signed updates, last known good, "
                  "crash-loop self-revert.", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="The agent's TOML config (see examples/agent.toml).")]


def _logging(config: AgentConfig, verbose: bool) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if config.log_file is not None:
        config.log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(config.log_file, encoding="utf-8"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s ringfence-agent %(levelname)s %(message)s")
    for noisy in ("tuf", "urllib3", "httpx", "httpcore", "securesystemslib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command()
def run(config: ConfigOpt,
        once: Annotated[bool, typer.Option("--once", help="Poll once, report and exit.")] = False,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    """Enrol if needed, then poll the signed channel and converge to this host's desired state until stopped."""
    cfg = load_config(config)
    _logging(cfg, verbose)
    agent = Agent(cfg)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.stopping.set())
    agent.run(max_polls=1 if once else 0)


@app.command()
def enrol(config: ConfigOpt) -> None:
    """Exchange the one-time enrolment token for this host's credential, send its facts, and exit."""
    cfg = load_config(config)
    _logging(cfg, False)
    agent = Agent(cfg)
    agent.open()  # not a start: pending crash-loop counters stay as they are
    try:
        if not agent.enrol():
            raise RingfenceError(f"cannot reach the server at {cfg.server}; nothing changed")
        agent.send_facts()
        out.print(f"enrolled: host {agent.host_id}", highlight=False)
    finally:
        agent.close()


@app.command("notify-away")
def notify_away(config: ConfigOpt,
                reason: Annotated[str, typer.Option("--reason", help="sleep, shutdown, reboot or update_reboot.")
                                  ] = "sleep") -> None:
    """Tell the server this host is about to sleep, shut down or reboot (for a systemd sleep or shutdown hook).

    Until the host reports again it is not counted as silent.  Works while `run` holds the state dir: it only
    reads the credential and what the host runs, and sends none of the queued events.  Exit 1 when the server
    did not take the notice.
    """
    if reason not in NOTICE_REASONS:
        raise InputError.single("--reason", f"is {shown(reason)}", expected="one of " + ", ".join(NOTICE_REASONS))
    cfg = load_config(config)
    _logging(cfg, False)
    agent = Agent(cfg)
    agent.state = agent.dir.load()  # no lock: the running agent keeps it
    agent.host_id = cfg.host_id or agent.state.last_poll.get("host") or agent.dir.read_text("host_id")
    try:
        if not agent.reporter.credential or not agent.host_id:
            raise RingfenceError("this host is not enrolled yet (no credential in the state dir); nothing sent")
        if not agent.notify_away(reason, events=False):
            raise RingfenceError(f"the server at {cfg.server} did not take the notice")
        out.print(f"notice sent: host {agent.host_id} going away ({reason})", highlight=False)
    finally:
        agent.reporter.close()


@app.command()
def status(config: ConfigOpt,
           as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """What this host runs, what is pending, what is marked bad, which remediations ran (works while it runs)."""
    cfg = load_config(config)
    sdir = StateDir(cfg.state_dir)
    state = sdir.load()
    host = cfg.host_id or state.last_poll.get("host") or sdir.read_text("host_id")
    data: dict[str, Any] = {"host_id": host, "enrolled": bool(sdir.read_text("credential")),
                            "queued_events": len(sdir.queued()), **state.to_dict()}
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    out.print(f"host {data['host_id'] or '(not started yet)'} · cohort {state.cohort or '?'} · "
              f"{'enrolled' if data['enrolled'] else 'not enrolled'} · {data['queued_events']} events queued · "
              f"last poll {state.last_poll.get('at', 'never')}", highlight=False)
    table = Table(title="products")
    for c in ("product", "running", "committed (last known good)", "pending", "marked bad"):
        table.add_column(c)
    for name, ps in sorted(state.products.items()):
        pend = f"{ps.pending.version} (start {ps.pending.starts})" if ps.pending else ""
        table.add_row(name, ps.running, ps.committed, pend, ", ".join(ps.bad))
    out.print(table)
    for rid, rem in sorted(state.remediations.items()):
        out.print(f"remediation {rid}: {rem.get('state')} at {rem.get('at')}", highlight=False)


def main() -> None:
    """Entry point: errors are printed with every bad field; exit 2 for bad input, 1 otherwise."""
    try:
        app()
    except InputError as e:
        err.print(f"[bold red]error:[/bold red] {e.headline}", highlight=False, soft_wrap=True)
        for issue in e.issues[:50]:
            err.print(f"  - {issue}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (RingfenceError, EnrolmentRefused, StateLocked) as e:
        err.print(f"[bold red]error:[/bold red] {e}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
