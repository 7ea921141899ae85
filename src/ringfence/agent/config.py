"""The agent's configuration: one TOML file (``agent.toml``), checked field by field.

Relative paths in the file are relative to the file's own directory, so a
config and its trusted root can be shipped together.  Every error names the
field and what would be accepted (:class:`~ringfence.errors.InputError`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ringfence.domain.host_record import HOST_FIELDS
from ringfence.errors import FieldIssue, InputError, shown

__all__ = ["AgentConfig", "InstallerConfig", "ProbeConfig", "load_config"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InstallerConfig(_Strict):
    """How one product is installed on this host."""

    kind: Literal["file", "command"] = Field(description="file: copy atomically into target_dir; "
                                                         "command: run `command` with the verified file")
    target_dir: Path | None = Field(default=None, description="file installer: directory the product's files go to")
    command: list[str] = Field(default_factory=list, description="command installer: argv (no shell); "
                               "{file}, {product} and {version} are replaced")
    timeout_seconds: float = Field(default=300.0, gt=0, description="command installer: how long the command may run")

    @model_validator(mode="after")
    def _complete(self) -> InstallerConfig:
        if self.kind == "file" and self.target_dir is None:
            raise ValueError("a file installer needs target_dir (the directory the product's files are installed to)")
        if self.kind == "command" and not self.command:
            raise ValueError('a command installer needs command, an argv list such as ["/usr/bin/installer", "{file}"]')
        return self


class ProbeConfig(_Strict):
    """The health probe that must pass before an installed version is committed."""

    command: list[str] = Field(default_factory=list, description="argv (no shell); {product}, {version} and {file} "
                               "are replaced; exit 0 means healthy. Empty: the host is healthy if the agent runs")
    timeout_seconds: float = Field(default=60.0, gt=0, description="a probe running longer has failed")


class AgentConfig(_Strict):
    """Everything the agent can be configured with (see examples/agent.toml)."""

    server: str = Field(description="The ringfence server URL, e.g. http://127.0.0.1:8400")
    metadata_url: str = Field(default="", description="TUF metadata base URL (default {server}/tuf/metadata/)")
    targets_url: str = Field(default="", description="TUF targets base URL (default {server}/tuf/targets/)")
    state_dir: Path = Field(description="Where the agent keeps everything that must survive a restart")
    trusted_root: Path = Field(description="The initial trusted root.json shipped with the agent "
                                           "(`ringfence channel export` writes it)")
    enrolment_token: str = Field(default="", repr=False, description="One-time enrolment token (rfe_…)")
    enrolment_token_file: Path | None = Field(default=None, description="A file holding the enrolment token")
    host_id: str = Field(default="", description="Host id override (default: osquery system_info.uuid, "
                                                 "else an id generated once and kept in the state dir)")
    platform: str = Field(default="", description="Artifact platform to install (default: the host's os_family)")
    poll_interval_seconds: float = Field(default=60.0, gt=0, description="Time between polls")
    poll_jitter: float = Field(default=0.2, ge=0, lt=1, description="Each interval is scaled by 1 ± this fraction")
    backoff_cap_seconds: float = Field(default=900.0, gt=0, description="Longest wait after repeated failures")
    request_timeout_seconds: float = Field(default=10.0, gt=0, description="Timeout of one HTTP request")
    crash_loop_threshold: int = Field(default=3, ge=1, le=100, description="Starts without a commit before the "
                                      "agent restores the last known good version")
    notice_on_stop: bool = Field(default=True, description="On a clean stop (SIGTERM: a shutdown or reboot stops the "
                                 "service) tell the server the host is going away, so it is not counted as silent")
    installers: dict[str, InstallerConfig] = Field(default_factory=dict, description="product → installer")
    probe: ProbeConfig = Field(default_factory=ProbeConfig)
    remediation_command: list[str] = Field(default_factory=lambda: ["/bin/sh", "{file}"],
                                           description="How a signed remediation script is run ({file} replaced)")
    remediation_timeout_seconds: float = Field(default=300.0, gt=0)
    facts: dict[str, Any] = Field(default_factory=dict, description="Inventory fields to report as they are "
                                  "(site, country, tier, labels, …), over the collected facts")
    log_file: Path | None = Field(default=None, description="Also log to this file (default: stderr only)")

    @field_validator("server", "metadata_url", "targets_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"{shown(value)} is not an http:// or https:// URL")
        return value

    @field_validator("facts")
    @classmethod
    def _facts(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(HOST_FIELDS) - {"id", "tenant"})
        if unknown:
            raise ValueError(f"{', '.join(unknown)} are not inventory fields; use some of {', '.join(HOST_FIELDS)}")
        if "id" in value or "tenant" in value:
            raise ValueError("set the host id with host_id; the tenant comes from the enrolment token")
        return value

    @property
    def metadata_base(self) -> str:
        """Where the signed metadata is fetched from."""
        return _slash(self.metadata_url or self.server.rstrip("/") + "/tuf/metadata/")

    @property
    def targets_base(self) -> str:
        """Where the signed targets are fetched from."""
        return _slash(self.targets_url or self.server.rstrip("/") + "/tuf/targets/")

    def token(self) -> str:
        """The enrolment token from the file or the config ("" when neither is set)."""
        if self.enrolment_token_file is not None:
            try:
                return self.enrolment_token_file.read_text(encoding="utf-8").strip()
            except OSError as e:
                raise InputError.single("enrolment_token_file", f"cannot be read: {e}",
                                        expected="a readable file holding an rfe_… token") from e
        return self.enrolment_token.strip()


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


_PATHS = ("state_dir", "trusted_root", "enrolment_token_file", "log_file")


def load_config(path: Path, **overrides: Any) -> AgentConfig:
    """Read and check ``agent.toml``; relative paths are taken from the file's directory."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise InputError.single("config", f"file {shown(str(path))} does not exist",
                                expected="an agent.toml (see examples/agent.toml)") from e
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise InputError.single("config", f"{path} cannot be read: {e}", expected="a valid TOML file") from e
    raw.update({k: v for k, v in overrides.items() if v is not None})
    base = path.resolve().parent
    for key in _PATHS:
        if isinstance(raw.get(key), str):
            raw[key] = str(base / raw[key])
    for name, inst in (raw.get("installers") or {}).items():
        if isinstance(inst, dict) and isinstance(inst.get("target_dir"), str):
            raw["installers"][name]["target_dir"] = str(base / inst["target_dir"])
    try:
        return AgentConfig.model_validate(raw)
    except ValidationError as e:
        issues = [FieldIssue(field=".".join(str(p) for p in err["loc"]) or "config", message=err["msg"],
                             location=str(path), expected="see examples/agent.toml") for err in e.errors()]
        raise InputError(f"invalid agent config {path}", issues) from e
