"""What every CLI module shares: the consoles and the options that mean the same in every verb."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["ConfigOpt", "DataDirOpt", "DbOpt", "JsonOpt", "ReasonOpt", "ServerOpt", "TokenOpt", "err", "out"]

out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file (or RINGFENCE_CONFIG).")]
ServerOpt = Annotated[str | None, typer.Option("--server", help="Server URL (RINGFENCE_SERVER_URL).")]
TokenOpt = Annotated[str | None, typer.Option("--token", help="Operator token (RINGFENCE_TOKEN).")]
DbOpt = Annotated[str | None, typer.Option("--database-url", help="Database URL (RINGFENCE_DATABASE_URL).")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Server data directory (RINGFENCE_DATA_DIR).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")]
