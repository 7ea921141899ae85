"""Installers: put a verified version's files in place on the host.

The agent hands an installer the verified copies it keeps under
``state_dir/versions/<product>/<version>/`` (the last known good version is
one of them), so restoring the last known good version is installing it again.

* :class:`FileInstaller` copies each file into ``target_dir`` atomically: a
  staging file in the same directory, fsync, rename over the old file, fsync
  the directory.  A reader of ``target_dir`` sees the old file or the new one.
* :class:`CommandInstaller` runs a configured command (an argv list, never a
  shell) with ``{file}``, ``{product}`` and ``{version}`` replaced, with a timeout.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Protocol

from ringfence.agent.config import InstallerConfig
from ringfence.agent.files import atomic_copy, fsync_dir

__all__ = ["CommandInstaller", "FileInstaller", "InstallError", "Installer", "installer_for", "substitute"]


class InstallError(Exception):
    """An install (or a restore) did not complete."""


class Installer(Protocol):
    """Puts a version's verified files in place; removes files a version left behind."""

    def install(self, product: str, version: str, files: list[Path]) -> None:
        """Install ``files`` (verified, kept by the agent) as ``product`` ``version``."""

    def remove(self, product: str, names: list[str]) -> None:
        """Remove installed files by name (used when there is no earlier version to go back to)."""


def substitute(argv: list[str], **values: str) -> list[str]:
    """Replace ``{name}`` placeholders in each argument (no shell is involved, so no quoting issues)."""
    out = []
    for arg in argv:
        text = arg
        for key, value in values.items():
            text = text.replace("{" + key + "}", value)
        out.append(text)
    return out


class FileInstaller:
    """Copies files into ``target_dir`` atomically."""

    def __init__(self, target_dir: Path) -> None:
        self.target_dir = target_dir

    def install(self, product: str, version: str, files: list[Path]) -> None:
        """Replace each file in ``target_dir`` by its new version, one atomic rename per file."""
        try:
            self.target_dir.mkdir(parents=True, exist_ok=True)
            for f in files:
                atomic_copy(f, self.target_dir / f.name)
        except OSError as e:
            raise InstallError(f"cannot install {product} {version} into {self.target_dir}: {e}") from e

    def remove(self, product: str, names: list[str]) -> None:
        """Delete the named files from ``target_dir``."""
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (self.target_dir / name).unlink()
        fsync_dir(self.target_dir)


class CommandInstaller:
    """Runs ``command`` once per file; a non-zero exit or a timeout fails the install."""

    def __init__(self, command: list[str], timeout: float) -> None:
        self.command = command
        self.timeout = timeout

    def install(self, product: str, version: str, files: list[Path]) -> None:
        """Hand each verified file to the command."""
        for f in files:
            argv = substitute(self.command, file=str(f), product=product, version=version)
            try:
                result = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, check=False)  # noqa: S603 - argv from the agent's own config, no shell
            except subprocess.TimeoutExpired as e:
                raise InstallError(f"installer {argv[0]} ran longer than {self.timeout:g} s for {product} {version}") from e
            except OSError as e:
                raise InstallError(f"installer {argv[0]} cannot be run: {e}") from e
            if result.returncode != 0:
                tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
                raise InstallError(f"installer {argv[0]} exited {result.returncode} for {product} {version}: {tail[0]}")

    def remove(self, product: str, names: list[str]) -> None:
        """A command installer has no uninstall step: the product keeps what the command installed."""


def installer_for(config: InstallerConfig) -> Installer:
    """Build the installer a product's config names."""
    if config.kind == "file":
        assert config.target_dir is not None
        return FileInstaller(config.target_dir)
    return CommandInstaller(config.command, config.timeout_seconds)
