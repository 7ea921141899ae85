"""Well-known endpoint agents and how osquery shows them.

Each :class:`KnownAgent` says how to recognise one product in osquery results
(see :mod:`ringfence.adapters.inventory.osquery`):

* ``programs`` — Windows ``programs.name`` patterns, most specific first; the
  first pattern that matches a row gives the version.  ``publishers`` match
  ``programs.publisher`` for vendors that publish nothing else.
* ``packages`` — Linux ``deb_packages`` / ``rpm_packages`` names.
* ``bundles`` — macOS ``apps.bundle_identifier`` and
  ``system_extensions.identifier``.  System extensions run in user space, so
  they never make an agent kernel-mode.
* ``drivers`` — Windows kernel and file-system driver service names, or the
  file name of the driver image without ``.sys``.  ``driver_paths`` match the
  whole image path (``\\`` turned into ``/``, lower case), for vendors that
  keep their drivers in a directory of their own.
* ``kernel_modules`` — Linux module names as in ``/proc/modules``.  Modules
  that ship with the kernel itself (``vmw_vmci``, ``hv_vmbus``) are not listed:
  updating the agent does not touch them.
* ``kernel_mode_on`` / ``boot_start_on`` — the OS families on which the product
  always loads kernel code / an early-launch (boot-start) driver.  They are
  used only when the host's driver inventory was not collected, so that a
  missing query errs towards "kernel-mode" (fail closed) rather than hiding the
  2024 failure mode.

Every pattern is lower case and matched case-insensitively with shell-style
wildcards (:func:`fnmatch.fnmatchcase`).  Names marked *best-effort* in the
comments come from vendor documentation or field reports that we could not
check against a live install; a wrong name never matches anything, so it costs
recall, never a false agent.

The catalog is data: add a product by appending a :class:`KnownAgent`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from ringfence.domain.model import OsFamily

__all__ = ["CATALOG", "KnownAgent", "by_bundle", "by_driver", "by_kernel_module", "by_package", "by_program"]

_WIN = frozenset({OsFamily.WINDOWS})


def _any(patterns: tuple[str, ...], value: str) -> bool:
    value = value.strip().lower()
    return bool(value) and any(fnmatchcase(value, p) for p in patterns)


@dataclass(frozen=True, slots=True)
class KnownAgent:
    """One product of the catalog and the names osquery shows it by."""

    vendor: str
    product: str
    programs: tuple[str, ...] = ()
    publishers: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    bundles: tuple[str, ...] = ()
    drivers: tuple[str, ...] = ()
    driver_paths: tuple[str, ...] = ()
    kernel_modules: tuple[str, ...] = ()
    kernel_mode_on: frozenset[OsFamily] = frozenset()
    boot_start_on: frozenset[OsFamily] = frozenset()

    def program_rank(self, name: str, publisher: str = "") -> int | None:
        """How well a Windows program row names this product (0 best), or ``None``."""
        lowered = name.strip().lower()
        for rank, pattern in enumerate(self.programs):
            if lowered and fnmatchcase(lowered, pattern):
                return rank
        if _any(self.publishers, publisher):
            return len(self.programs)
        return None

    def has_package(self, name: str) -> bool:
        """True when a deb or rpm package of this name belongs to the product."""
        return _any(self.packages, name)

    def has_bundle(self, identifier: str) -> bool:
        """True when a macOS bundle or system-extension identifier belongs to the product."""
        return _any(self.bundles, identifier)

    def has_driver(self, name: str, image_path: str = "") -> bool:
        """True when a Windows driver (service name, image path) belongs to the product."""
        path = image_path.strip().replace("\\", "/").lower()
        stem = path.rsplit("/", 1)[-1].removesuffix(".sys")
        return _any(self.drivers, name) or _any(self.drivers, stem) or _any(self.driver_paths, path)

    def has_kernel_module(self, name: str) -> bool:
        """True when a loaded Linux kernel module belongs to the product."""
        return _any(self.kernel_modules, name)


#: The known agents, in the order they are reported on a host.
CATALOG: tuple[KnownAgent, ...] = (
    KnownAgent(
        vendor="CrowdStrike", product="Falcon Sensor",
        # "CrowdStrike Windows Sensor" is the installer's product; the sensor
        # platform, device control and firmware analysis are installed beside it.
        programs=("crowdstrike windows sensor", "crowdstrike sensor platform", "crowdstrike*"),
        publishers=("crowdstrike*",),
        packages=("falcon-sensor",),
        bundles=("com.crowdstrike.falcon.*",),
        # CSAgent (csagent.sys, the file-system filter of July 2024) and CSBoot
        # (the early-launch anti-malware driver).  CSDeviceControl and
        # CSFirmwareAnalysis are best-effort names.
        drivers=("csagent", "csboot", "csdevicecontrol", "csfirmwareanalysis"),
        driver_paths=("*/drivers/crowdstrike/*",),
        # falcon_lsm_serviceable, falcon_lsm_pinned_<build>, falcon_nf_netcontain,
        # falcon_kal: loaded only in kernel mode (user mode / eBPF loads none).
        kernel_modules=("falcon_*",),
        kernel_mode_on=_WIN, boot_start_on=_WIN,
    ),
    KnownAgent(
        vendor="Microsoft", product="Defender for Endpoint",
        # Built into Windows 10/11 and Server 2016+, so absent from programs
        # there; the MSI name below is the down-level installer (best-effort).
        programs=("microsoft defender for endpoint*",),
        packages=("mdatp",),  # Linux: fanotify/eBPF, no kernel module
        bundles=("com.microsoft.wdav*",),
        # WdFilter (mini-filter), WdBoot (early-launch), WdNisDrv (network
        # inspection), MsSecFlt (Defender for Endpoint events mini-filter).
        drivers=("wdfilter", "wdboot", "wdnisdrv", "mssecflt"),
        driver_paths=("*/drivers/wd/*",),
        kernel_mode_on=_WIN, boot_start_on=_WIN,
    ),
    KnownAgent(
        vendor="SentinelOne", product="Sentinel Agent",
        programs=("sentinel agent", "sentinelone*"),
        publishers=("sentinelone*", "sentinel labs*"),
        packages=("sentinelagent",),  # rpm "SentinelAgent", deb "sentinelagent" (best-effort)
        bundles=("com.sentinelone.*",),
        # SentinelMonitor is the main filter driver; SentinelELAM and
        # SentinelDeviceControl are best-effort.
        drivers=("sentinelmonitor", "sentinelelam", "sentineldevicecontrol"),
        driver_paths=("*/sentinelone/*",),
        kernel_mode_on=_WIN, boot_start_on=_WIN,
    ),
    KnownAgent(
        vendor="Sophos", product="Intercept X",
        programs=("sophos endpoint agent", "sophos intercept x*", "sophos*"),
        publishers=("sophos*",),
        bundles=("com.sophos.*",),
        # SophosED (Endpoint Defense) and hmpalert (HitmanPro.Alert); SophosEL
        # (early launch), sntp and SAVOnAccess are best-effort.
        drivers=("sophosed", "hmpalert", "sophosel", "sntp", "savonaccess"),
        driver_paths=("*/sophos/*",),
        kernel_modules=("talpa_*",),  # legacy Sophos Anti-Virus for Linux on-access (best-effort)
        kernel_mode_on=_WIN, boot_start_on=_WIN,
    ),
    KnownAgent(
        vendor="Trellix", product="Endpoint Security",
        # McAfee Endpoint Security before the 2022 rename.
        programs=("trellix endpoint security*", "mcafee endpoint security*"),
        packages=("mcafeetp", "mcafeeesp"),  # ENS for Linux (best-effort)
        bundles=("com.trellix.*", "com.mcafee.*"),
        # mfehidk is the core link driver; the rest are best-effort.
        drivers=("mfehidk", "mfeavfk", "mfefirek", "mfewfpk", "mfeelamk", "mfeaack", "mfencbdc"),
        driver_paths=("*/mcafee/*", "*/trellix/*"),
        kernel_modules=("mfe_*",),  # best-effort
        kernel_mode_on=_WIN, boot_start_on=_WIN,
    ),
    KnownAgent(
        vendor="Broadcom", product="Symantec Endpoint Protection",
        programs=("symantec endpoint protection*",),
        # SymEvent/SymEvnt, SRTSP (real-time storage protection), SymELAM,
        # BHDrvx64 (behaviour), IDSVia64 (intrusion prevention); others best-effort.
        drivers=("symevent", "symevnt", "srtsp", "srtspx", "symelam", "bhdrvx64", "idsvia64", "symnets",
                 "symefasi", "eectrl"),
        driver_paths=("*/symantec/*",),
        kernel_modules=("symev*", "symap*"),  # best-effort
        kernel_mode_on=_WIN, boot_start_on=_WIN,
    ),
    KnownAgent(
        vendor="Trend Micro", product="Apex One",
        programs=("trend micro apex one*", "trend micro officescan*"),
        # tmcomm, tmactmon, tmevtmgr are shared with Deep Security; a host's
        # programs decide which product they belong to.  TMEBC (early boot) and
        # tmwfp are best-effort.
        drivers=("tmcomm", "tmactmon", "tmevtmgr", "tmumh", "tmebc", "tmwfp"),
        kernel_mode_on=_WIN, boot_start_on=_WIN,
    ),
    KnownAgent(
        vendor="Trend Micro", product="Deep Security Agent",
        programs=("trend micro deep security agent*",),
        packages=("ds_agent",),
        drivers=("tbimdsa", "tmcomm", "tmactmon", "tmevtmgr", "tmumh"),
        kernel_modules=("redirfs", "gsch", "bmhook", "dsa_filter", "dsa_filter_hook"),  # best-effort
        kernel_mode_on=_WIN,
    ),
    KnownAgent(
        vendor="Palo Alto Networks", product="Cortex XDR",
        programs=("cortex xdr*", "traps*"),
        packages=("cortex-agent",),  # best-effort
        bundles=("com.paloaltonetworks.*",),
        drivers=("cyverak", "cyvrmtgn", "cyvrfsfd", "cyvrlpc", "tedrdrv", "tedrpers", "tdevflt"),  # best-effort
        driver_paths=("*/palo alto networks/*",),
        kernel_mode_on=_WIN,
    ),
    KnownAgent(
        vendor="VMware", product="Carbon Black Cloud",
        programs=("carbon black cloud sensor*", "cb defense sensor*"),
        packages=("cb-psc-sensor",),
        bundles=("com.vmware.carbonblack.*", "com.carbonblack.*"),  # best-effort
        drivers=("ctifile", "ctinet", "cbelam"),  # cbelam best-effort
        driver_paths=("*/confer/*",),
        kernel_mode_on=_WIN,
    ),
    KnownAgent(
        vendor="VMware", product="Carbon Black EDR",
        programs=("carbon black sensor*", "cb response sensor*"),  # best-effort
        drivers=("carbonblackk", "cbk7"),
        kernel_modules=("cbsensor*",),  # best-effort
        kernel_mode_on=_WIN,
    ),
    KnownAgent(
        vendor="ESET", product="Endpoint Security",
        programs=("eset endpoint security*", "eset endpoint antivirus*", "eset server security*",
                  "eset file security*"),
        packages=("eea", "efs"),  # ESET Endpoint Antivirus / Server Security for Linux (best-effort)
        bundles=("com.eset.*",),
        drivers=("ehdrv", "eamonm", "edevmon", "epfwwfp", "epfw", "eelam", "ekbdflt"),
        kernel_modules=("eset_rtp",),  # best-effort
        kernel_mode_on=_WIN, boot_start_on=_WIN,
    ),
    KnownAgent(
        vendor="Kaspersky", product="Endpoint Security",
        programs=("kaspersky endpoint security*", "kaspersky security for windows server*"),
        packages=("kesl",),
        bundles=("com.kaspersky.*",),
        # klif (filter), klhk (hypervisor hook), klflt, klim6, kneps, klwfp;
        # klbackup*, kldisk, klpd are best-effort.
        drivers=("klif", "klhk", "klflt", "klkbdflt", "klim6", "kneps", "klwfp", "klpd", "klbackupdisk",
                 "klbackupflt", "kldisk"),
        driver_paths=("*/kaspersky lab/*",),
        kernel_mode_on=_WIN,
    ),
    KnownAgent(
        vendor="Bitdefender", product="GravityZone Endpoint Security Tools",
        programs=("bitdefender endpoint security tools*",),
        packages=("bitdefender-security-tools",),
        bundles=("com.bitdefender.*",),
        drivers=("gzflt", "trufos", "atc", "bdelam", "bdfwfpf", "bdsandbox"),  # bdelam, bdsandbox best-effort
        driver_paths=("*/bitdefender/*",),
        kernel_mode_on=_WIN, boot_start_on=_WIN,
    ),
    KnownAgent(
        vendor="Cisco", product="Secure Endpoint",
        programs=("cisco secure endpoint*", "cisco amp for endpoints connector*", "immunet*"),
        bundles=("com.cisco.endpoint.*", "com.cisco.amp.*"),  # best-effort
        # ImmunetProtect, ImmunetSelfProtect, ImmunetNetworkMonitor (best-effort).
        drivers=("immunet*",),
        driver_paths=("*/cisco/amp/*",),
        kernel_mode_on=_WIN,
    ),
    KnownAgent(
        vendor="Zscaler", product="Client Connector",
        programs=("zscaler*",),
        publishers=("zscaler*",),
        bundles=("com.zscaler.*",),
        # Driver names not verified: only drivers kept in a Zscaler directory
        # are attributed.
        driver_paths=("*/zscaler/*",),
    ),
    KnownAgent(
        vendor="Microsoft", product="Sysmon",
        packages=("sysmonforlinux",),  # eBPF, no kernel module
        drivers=("sysmondrv",),
        kernel_mode_on=_WIN,
    ),
    KnownAgent(
        vendor="VMware", product="VMware Tools",
        programs=("vmware tools",),
        packages=("open-vm-tools",),  # Linux: the vmw_* modules come with the kernel
        bundles=("com.vmware.tools*",),
        drivers=("vmci", "vsock", "vmhgfs", "vmmemctl", "vm3dmp", "vmrawdsk", "vmusbmouse"),
        kernel_mode_on=_WIN,
    ),
)


def by_program(name: str, publisher: str = "") -> list[tuple[KnownAgent, int]]:
    """The products a Windows program row names, each with its rank (0 best)."""
    found = []
    for agent in CATALOG:
        rank = agent.program_rank(name, publisher)
        if rank is not None:
            found.append((agent, rank))
    return found


def by_package(name: str) -> list[KnownAgent]:
    """The products a Linux package belongs to."""
    return [a for a in CATALOG if a.has_package(name)]


def by_bundle(identifier: str) -> list[KnownAgent]:
    """The products a macOS bundle or system-extension identifier belongs to."""
    return [a for a in CATALOG if a.has_bundle(identifier)]


def by_driver(name: str, image_path: str = "") -> list[KnownAgent]:
    """The products a Windows driver belongs to (more than one when products share drivers)."""
    return [a for a in CATALOG if a.has_driver(name, image_path)]


def by_kernel_module(name: str) -> list[KnownAgent]:
    """The products a loaded Linux kernel module belongs to."""
    return [a for a in CATALOG if a.has_kernel_module(name)]
