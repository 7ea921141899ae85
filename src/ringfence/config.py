"""Settings, built once at each entry point (CLI, server) and passed down.

Values come from, in order of precedence: explicit arguments, ``RINGFENCE_*``
environment variables, a TOML config file (``--config FILE`` or
``RINGFENCE_CONFIG``), then the defaults below.  Nothing here is created at
import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from ringfence.errors import FieldIssue, InputError, shown

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    """Everything ringfence can be configured with.

    Every field can be set as ``RINGFENCE_<FIELD>`` (for example
    ``RINGFENCE_DATABASE_URL``) or as ``<field> = ...`` in the config file.
    """

    model_config = SettingsConfigDict(env_prefix="RINGFENCE_", extra="forbid")

    database_url: str = Field(
        default="sqlite:///var/ringfence.db",
        description="SQLAlchemy URL: sqlite:///path.db (default, under ./var) or postgresql+psycopg://user@host/db.",
    )
    host: str = Field(default="127.0.0.1", description="Address the server listens on.")
    port: int = Field(default=8400, ge=1, le=65535, description="Port the server listens on.")
    data_dir: Path = Field(default=Path("var"), description="Directory for local state (SQLite file, artifacts).")
    server_url: str = Field(default="http://127.0.0.1:8400", description="Server the CLI talks to.")
    token: str = Field(default="", description="Operator API token the CLI sends (RINGFENCE_TOKEN).", repr=False)
    log_level: str = Field(default="info", description="Server log level: debug, info, warning or error.")
    max_upload_mb: int = Field(default=1024, ge=1, description="Largest inventory upload the API accepts, in MiB.")
    reconcile_interval_seconds: float = Field(
        default=5.0, ge=0.0, description="How often the server's reconciler ticks every active rollout (0 = never).")
    recovery_key: str = Field(default="", repr=False, description="Fernet key that encrypts imported recovery keys "
                              "at rest (RINGFENCE_RECOVERY_KEY); without it no key can be imported or revealed.")
    graph_url: str = Field(default="", description="Microsoft Graph endpoint to read BitLocker recovery keys from at "
                           "reveal time instead of the encrypted import (RINGFENCE_GRAPH_URL, e.g. "
                           "https://graph.microsoft.com/v1.0); empty: the import.")
    graph_token: str = Field(default="", repr=False, description="Bearer token for RINGFENCE_GRAPH_URL with "
                             "BitlockerKey.Read.All (RINGFENCE_GRAPH_TOKEN).")
    health_max_per_minute: int = Field(default=60, ge=1, description="Health reports one host may send a minute.")
    audit_key: str = Field(default="", repr=False, description=(
        "Key of the audit log's HMAC chain (RINGFENCE_AUDIT_KEY); held outside the database. Empty: read "
        "audit_key_file."))
    audit_key_file: Path | None = Field(default=None, description=(
        "File holding the audit key (default <data_dir>/audit.key; `ringfence serve` creates it, mode 0600, if no "
        "key is configured)."))
    audit_checkpoint_key_file: Path | None = Field(default=None, description=(
        "Ed25519 private key that signs audit checkpoints (default <data_dir>/audit-checkpoint.key; created by "
        "`ringfence audit checkpoint`); its public key is written beside it as .pub."))
    audit_checkpoint_dir: Path | None = Field(default=None, description=(
        "Where `ringfence audit checkpoint` writes signed checkpoints (default <data_dir>/audit-checkpoints); keep "
        "copies off the database host."))
    auth_failures_per_minute_per_source: int = Field(
        default=50, ge=1, description="Failed credential checks (401) one source address may have a minute before 429.")
    auth_failures_per_minute_per_credential: int = Field(
        default=10, ge=1, description="Failed credential checks one credential id (its first 12 characters) may have "
                                      "from one source address a minute before 429.")
    role: str = Field(default="all", description=(
        "What this server does: all (API, agent traffic and the reconciler), api (operator API, dashboard and "
        "agent traffic, no reconciler), reconciler (the elected loop; HTTP only /healthz, /readyz, /metrics) or "
        "ingest (agent traffic only: /tuf/, /v1/health, /v1/enrol, /v1/agent/…)."))
    ingest_nats_url: str = Field(default="", description=(
        "NATS server with JetStream (nats://127.0.0.1:4222) that agents' health reports go through: POST "
        "/v1/health stores each report in a durable stream and answers 202, and servers with --role ingest or "
        "all write them to the database. Empty (default): reports are written by the server that received them."))
    ingest_nats_stream: str = Field(default="RINGFENCE_HEALTH", pattern=r"^[A-Za-z0-9_-]{1,64}$", description=(
        "Name of the JetStream stream for health reports (one per ringfence installation on a NATS cluster)."))
    ingest_nats_ack_wait_seconds: float = Field(default=30.0, gt=0, le=3600, description=(
        "How long JetStream waits for an ingest server to confirm a batch before it delivers the batch to another "
        "(a killed ingest server's batch comes back after this; set when the stream's consumer is first created)."))
    host_token_key: str = Field(default="", repr=False, description=(
        "Key that signs short-lived host tokens (RINGFENCE_HOST_TOKEN_KEY, at least 16 bytes; the same on every "
        "server). Empty: derived from the audit key; without either, agents authenticate with their credential."))
    host_token_ttl_seconds: int = Field(default=600, ge=30, le=86_400, description=(
        "How long a host token (POST /v1/agent/token) is valid."))
    workers: int = Field(default=1, ge=1, le=64, description=(
        "Server processes on the one port (more than 1 needs PostgreSQL; the reconciler runs in one of them)."))

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        if value.lower() not in {"all", "api", "reconciler", "ingest"}:
            raise ValueError(f"role {shown(value)} is not one of all, api, reconciler, ingest")
        return value.lower()

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError(f"log_level {shown(value)} is not one of debug, info, warning, error")
        return value.lower()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then the TOML file (when one is configured)."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings; errors name the field and the bad value.

    ``config_file`` (a TOML file) is read after the environment; ``overrides``
    (from command-line options) win over both.
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    path = config_file or (Path(os.environ["RINGFENCE_CONFIG"]) if os.environ.get("RINGFENCE_CONFIG") else None)
    cls: type[Settings] = Settings
    if path is not None:
        if not path.is_file():
            raise InputError.single("config", f"file {shown(str(path))} does not exist", expected="a TOML file")
        cls = type("FileSettings", (Settings,), {"model_config": SettingsConfigDict(
            env_prefix="RINGFENCE_", extra="forbid", toml_file=path)})
    try:
        return cls(**clean)
    except ValidationError as e:
        issues = [FieldIssue(field=".".join(str(p) for p in err["loc"]) or "settings", message=err["msg"],
                             expected=f"a valid value, not {shown(err.get('input'))}") for err in e.errors()]
        raise InputError("invalid settings", issues) from e
    except (OSError, ValueError) as e:  # unreadable or malformed TOML
        raise InputError.single("config", f"cannot be read: {e}", expected="a valid TOML file") from e
