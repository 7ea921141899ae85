"""The host record schema's field names, shared by the inventory importers and the agent's facts check.

Pure data, so the endpoint agent can validate its configured facts without importing the server's
inventory adapters.
"""

from __future__ import annotations

__all__ = ["HOST_FIELDS"]

#: Every host field of the record schema, in CSV column order.
HOST_FIELDS: tuple[str, ...] = (
    "id", "hostname", "tenant", "os_family", "os_name", "os_version", "os_build", "arch",
    "hardware_vendor", "hardware_model", "platform", "cloud_provider", "cloud_region", "cloud_zone",
    "site", "country", "subdivision", "timezone", "tier", "labels", "services", "agents",
    "encryption", "recovery_key_escrowed", "recovery_key_verified", "oob_management",
    "local_admin", "usb_boot", "last_seen",
)
