"""Runbook steps through existing engines: ansible-runner, Redfish (sushy), the cloud providers' own rescue tools.

* **ansible** — ``ansible_runner.run`` with the step's playbook from a playbook directory, against the host
  (``localhost`` with a local connection when the target is this machine); every runner event is handed to
  ``on_event`` as it arrives, so the campaign receives the stream, and the step succeeds only when the run's
  status is ``successful``.
* **redfish** — ``sushy``: insert virtual media (the rescue image), set a one-time boot override to the
  virtual CD, reset.  The BMC URL, system id and credentials are the caller's (never stored by ringfence).
* **cloud** — the exact provider commands are generated (:func:`cloud_commands`) and returned for a person or a
  pipeline to run; ringfence does not run them and never records them as done.
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ringfence.domain.recovery import RunbookStep
from ringfence.errors import InputError, UnavailableError, shown

__all__ = ["Bmc", "StepResult", "cloud_commands", "run_ansible", "run_redfish"]


@dataclass(frozen=True, slots=True)
class StepResult:
    """What an executor did: ``ok`` only when the engine said so."""

    ok: bool
    status: str
    detail: str = ""
    events: int = 0


def _path_with_ansible() -> str:
    """PATH with the directory of the ansible-playbook next to this interpreter (a virtualenv) first."""
    here = Path(sys.executable).parent
    path = os.environ.get("PATH", "")
    if (here / "ansible-playbook").is_file():
        return f"{here}{os.pathsep}{path}"
    if shutil.which("ansible-playbook") is None:
        raise UnavailableError("ansible-playbook is not installed (pip install ansible-core)")
    return path


def run_ansible(step: RunbookStep, playbooks: Path, host: str, on_event: Callable[[Mapping[str, Any]], None], *,
                target: str = "localhost", timeout: int = 600, extravars: Mapping[str, str] | None = None) -> StepResult:
    """Run the step's playbook with ansible-runner against ``target``; stream its events to ``on_event``."""
    import ansible_runner  # type: ignore[import-untyped]  # noqa: PLC0415 - heavy, no stubs; only this executor needs it

    book = (playbooks / step.playbook).resolve()
    if not book.is_file() or playbooks.resolve() not in book.parents:
        raise InputError.single("playbook", f"{shown(step.playbook)} is not a file in {playbooks}",
                                expected="a playbook in the playbook directory")
    count = 0

    def handler(event: Mapping[str, Any]) -> bool:
        nonlocal count
        count += 1
        data = event.get("event_data") or {}
        on_event({"event": event.get("event", ""), "counter": event.get("counter", count),
                  "task": data.get("task", ""), "host": data.get("host", ""), "stdout": str(event.get("stdout", ""))[:500]})
        return True

    connection = "local" if target in ("localhost", "127.0.0.1") else "ssh"
    with tempfile.TemporaryDirectory(prefix="ringfence-ansible-") as work:
        python = sys.executable if connection == "local" else "auto_silent"
        inventory = f"{target} ansible_connection={connection} ansible_python_interpreter={python}\n"
        result = ansible_runner.run(private_data_dir=work, project_dir=str(book.parent), playbook=book.name,
                                    inventory=inventory, extravars={**(extravars or {}), "ringfence_host": host},
                                    quiet=True,
                                    event_handler=handler, timeout=timeout,
                                    envvars={"ANSIBLE_HOST_KEY_CHECKING": "False", "PATH": _path_with_ansible()})
        return StepResult(ok=result.status == "successful", status=str(result.status), detail=f"rc={result.rc}",
                          events=count)


@dataclass(frozen=True, slots=True)
class Bmc:
    """Where a host's BMC answers Redfish (``url`` the service root's origin, ``system`` its id or path), and with
    which credentials (the caller's, never stored)."""

    url: str
    system: str
    username: str = ""
    password: str = ""
    verify: bool = True


def run_redfish(step: RunbookStep, bmc: Bmc) -> StepResult:
    """insert_media (the step's image, on the first virtual media device that takes a CD), boot_once, reset."""
    import sushy  # type: ignore[import-untyped]  # noqa: PLC0415 - no stubs; only this executor needs it
    from sushy import exceptions as sushy_errors  # noqa: PLC0415

    try:
        conn = sushy.Sushy(bmc.url, username=bmc.username, password=bmc.password, verify=bmc.verify)
        system = conn.get_system(bmc.system if bmc.system.startswith("/") else f"/redfish/v1/Systems/{bmc.system}")
        if step.action == "insert_media":
            for manager in system.managers:
                for vm in manager.virtual_media.get_members():
                    if not vm.media_types or any("cd" in str(t).lower() for t in vm.media_types):
                        vm.insert_media(step.image, inserted=True, write_protected=True)
                        return StepResult(True, "inserted", f"{step.image} on {vm.identity}")
            return StepResult(False, "failed", "no virtual media device that takes a CD")
        if step.action == "boot_once":
            system.set_system_boot_options(sushy.BOOT_SOURCE_TARGET_CD, enabled=sushy.BOOT_SOURCE_ENABLED_ONCE)
            return StepResult(True, "boot override set", "Cd, Once")
        if step.action == "reset":
            system.reset_system(sushy.RESET_FORCE_RESTART)
            return StepResult(True, "reset", "ForceRestart")
    except sushy_errors.SushyError as e:
        raise UnavailableError(f"Redfish at {bmc.url}: {e}") from e
    raise InputError.single("action", f"is {shown(step.action)}", expected="insert_media, boot_once or reset")


#: The offline fix AWS's rescue workflow runs on the helper instance, with the VM's root volume mounted at
#: ``$env:EC2RESCUE_OFFLINE_DRIVE`` (the runbook's own variable): remove the bad channel files of 19 July 2024.
AWS_OFFLINE_FIX = ('Get-ChildItem -Path "$env:EC2RESCUE_OFFLINE_DRIVE\\Windows\\System32\\drivers\\CrowdStrike\\" '
                   '-Include C-00000291*.sys -Recurse | Remove-Item -Force')


def cloud_commands(step: RunbookStep, host: Mapping[str, str]) -> list[list[str]]:
    """The provider's own rescue commands for one VM (``host``: name, resource_group/project, zone, instance_id).

    Azure: ``az vm repair`` with the repair-script-library's CrowdStrike script; AWS: Systems Manager's
    ``AWSSupport-StartEC2RescueWorkflow`` (it fails on encrypted EBS volumes) with :data:`AWS_OFFLINE_FIX`
    base64-encoded as its ``OfflineScript``; GCP: ``gce-rescue rescue`` (the boot disk swapped for a rescue
    disk, the original attached as a secondary disk: the fix itself is a person's step over RDP), then
    ``gce-rescue restore``.
    """
    needed = {"azure": ("name", "resource_group"), "aws": ("instance_id",), "gcp": ("name", "zone", "project")}
    if step.provider in needed:
        given = {**host, "instance_id": host.get("instance_id") or host.get("name", "")}
        missing = [f for f in needed[step.provider] if not given.get(f)]
        if missing:  # a command with an empty -g or --zone would look ready and fail at the provider
            raise InputError("the VM is not named well enough for its provider's rescue command",
                             [InputError.single(f"vm.{f}", "is missing", expected=f"--vm {f}=… for a "
                                                f"{step.provider} rescue").issues[0] for f in missing])
    name = host.get("name", "")
    if step.provider == "azure":
        rg = host.get("resource_group", "")
        return [["az", "vm", "repair", "create", "-g", rg, "-n", name, "--verbose"],
                ["az", "vm", "repair", "run", "-g", rg, "-n", name, "--run-id", "win-crowdstrike-fix-bootloop",
                 "--run-on-repair", "--verbose"],
                ["az", "vm", "repair", "restore", "-g", rg, "-n", name, "--verbose"]]
    if step.provider == "aws":
        iid = host.get("instance_id", name)
        script = base64.b64encode(AWS_OFFLINE_FIX.encode("utf-8")).decode("ascii")
        return [["aws", "ssm", "start-automation-execution", "--document-name", "AWSSupport-StartEC2RescueWorkflow",
                 "--parameters", f"InstanceId={iid},OfflineScript={script}"]]
    if step.provider == "gcp":
        where = [f"--zone={host.get('zone', '')}", f"--project={host.get('project', '')}", "--quiet"]
        return [["gce-rescue", "rescue", name, *where], ["gce-rescue", "restore", name, *where]]
    raise InputError.single("provider", f"is {shown(step.provider)}", expected="azure, aws or gcp")
