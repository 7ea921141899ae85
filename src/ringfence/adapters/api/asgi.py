"""The HTTP servers that run the API, chosen once, here (by measurement: bench/agent_poll.py, bench/README.md).

- **One process** (the default, and the only choice on SQLite): uvicorn with its standard extras
  (httptools and uvloop, from ``uvicorn[standard]``) serving the app object in this process, so the
  demo fleet and tests share it.  On ``/tuf/`` polling it reached 1.75× plain uvicorn (h11, asyncio).
- **Several processes** (``--workers N``, PostgreSQL): granian, a Rust HTTP server, with N worker
  processes that each build the app from the settings this process resolved (passed as JSON in the
  environment, :func:`app_from_env`).  uvicorn's own multi-process mode was no faster than its single
  process in the same run; granian with two workers was the fastest stack measured.  The reconciler then
  runs in exactly one worker: each competes for the advisory lock (:mod:`ringfence.adapters.db.leader`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

from fastapi import FastAPI

from ringfence.adapters.db.engine import Database
from ringfence.config import Settings, load_settings
from ringfence.errors import InputError, shown

__all__ = ["SETTINGS_ENV", "app_from_env", "check", "serve"]

SETTINGS_ENV = "RF_SERVE_SETTINGS_JSON"  # not RINGFENCE_*: Settings would read it as a field
_FACTORY = "ringfence.adapters.api.asgi:app_from_env"


def app_from_env() -> FastAPI:
    """Build the app in a worker process from the settings its parent resolved (or from the environment)."""
    from ringfence.adapters.api.app import create_app  # noqa: PLC0415 - keeps this module light to import

    _die_with_parent()
    raw = os.environ.get(SETTINGS_ENV)
    settings = Settings.model_validate_json(raw) if raw else load_settings()
    return create_app(settings)


def _die_with_parent() -> None:
    """A worker ends when its parent does, also on SIGKILL (Linux ``PR_SET_PDEATHSIG``): never an orphan
    serving the port and running a reconciler after its ``ringfence serve`` was killed."""
    if not sys.platform.startswith("linux") or SETTINGS_ENV not in os.environ:
        return
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def check(settings: Settings, *, demo: bool) -> None:
    """Refuse combinations that cannot work, before anything starts (errors name the option and the fix)."""
    if settings.workers > 1 and not settings.database_url.startswith("postgresql"):
        raise InputError.single("workers", f"is {settings.workers} with database {shown(settings.database_url)}",
                                expected="1 with SQLite (one process), or a postgresql+psycopg:// database_url")
    if settings.workers > 1 and demo:
        raise InputError.single("workers", f"is {settings.workers} with --demo",
                                expected="1: the demo fleet runs inside the server process")


def serve(app: FastAPI, db: Database, settings: Settings) -> None:
    """Serve until stopped: ``app`` in this process, or ``settings.workers`` granian worker processes."""
    if settings.workers <= 1:
        import uvicorn  # noqa: PLC0415 - only the server needs it

        uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False,
                    http="auto", loop="auto")  # auto: httptools and uvloop (uvicorn[standard])
        return
    from granian.constants import Interfaces, Loops  # noqa: PLC0415
    from granian.log import LogLevels  # noqa: PLC0415
    from granian.server import Server  # noqa: PLC0415

    db.dispose()  # the workers open their own connections; none may be shared across the fork
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    Server(_FACTORY, address=settings.host, port=settings.port, interface=Interfaces.ASGI, workers=settings.workers,
           loop=Loops.auto, log_level=LogLevels(settings.log_level), log_access=False, websockets=False,
           factory=True).serve()
