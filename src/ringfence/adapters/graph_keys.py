"""BitLocker recovery keys from Microsoft Entra ID through Microsoft Graph (a recovery key source).

The documented v1.0 shapes (learn.microsoft.com/graph/api/bitlockerrecoverykey-get and
bitlocker-list-recoverykeys; permission ``BitlockerKey.Read.All``):

* ``GET {graph}/informationProtection/bitlocker/recoveryKeys/{id}?$select=key`` returns one
  ``bitlockerRecoveryKey`` ``{id, createdDateTime, deviceId, volumeType, key}``; without ``$select=key`` the key is
  left out, and reading it writes an entry in the tenant's Entra audit log (category KeyManagement);
* ``GET {graph}/informationProtection/bitlocker/recoveryKeys?$filter=deviceId eq '{deviceId}'`` lists a device's
  keys (never the key itself), ``{"value": [...], "@odata.nextLink": ...}``.

The key id of an escrow record (``ringfence escrow import``) is the BitLocker key protector id, which is the
Graph object's ``id``; a host without one is looked up by its Entra device id (host label ``entra_device_id``),
taking the newest operating-system-volume key.  Every request sends ``Authorization: Bearer``, a ``User-Agent``
and ``ocp-client-name``/``ocp-client-version`` as the documentation asks.  The endpoint is configurable
(``RINGFENCE_GRAPH_URL``, e.g. a national cloud, or a local server in tests) and the bearer token comes from the
environment (``RINGFENCE_GRAPH_TOKEN``, e.g. ``az account get-access-token --resource-type ms-graph``); ringfence
stores neither the token nor the fetched key.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from ringfence import __version__
from ringfence.config import Settings
from ringfence.errors import UnavailableError, shown

__all__ = ["GraphKeySource", "key_source"]

_OS_VOLUME = ("operatingSystemVolume", "1", 1)


class GraphKeySource:
    """A :class:`~ringfence.services.recovery.KeySource` reading keys from Microsoft Graph."""

    name = "graph"

    def __init__(self, base_url: str, token: str, *, timeout_seconds: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise UnavailableError(f"RINGFENCE_GRAPH_URL is {shown(base_url)}: expected https://graph.microsoft.com/v1.0 "
                                   "(or a national cloud's Graph endpoint)")
        if not token:
            raise UnavailableError("RINGFENCE_GRAPH_TOKEN is empty: give a Graph access token with BitlockerKey.Read.All "
                                   "(az account get-access-token --resource-type ms-graph)")
        self._base = base_url.rstrip("/")
        self._client = httpx.Client(timeout=timeout_seconds, transport=transport, headers={
            "Authorization": f"Bearer {token}", "User-Agent": f"ringfence/{__version__}",
            "ocp-client-name": "ringfence recovery", "ocp-client-version": __version__, "Accept": "application/json"})

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any] | None:
        try:
            resp = self._client.get(self._base + path, params=params)
        except httpx.HTTPError as e:
            raise UnavailableError(f"Microsoft Graph did not answer ({type(e).__name__}): {e}") from e
        if resp.status_code == 404:
            return None
        if resp.status_code in (401, 403):
            raise UnavailableError(f"Microsoft Graph refused the request ({resp.status_code}): the token needs "
                                   "BitlockerKey.Read.All and a role that may read BitLocker keys")
        if resp.status_code >= 400:
            raise UnavailableError(f"Microsoft Graph answered {resp.status_code}: {resp.text[:200]}")
        try:
            body = resp.json()
        except ValueError as e:
            raise UnavailableError("Microsoft Graph answered with something that is not JSON") from e
        return body if isinstance(body, dict) else None

    def _newest_for_device(self, device_id: str) -> str:
        safe = device_id.replace("'", "''")
        params = {"$filter": f"deviceId eq '{safe}'"}
        path = "/informationProtection/bitlocker/recoveryKeys"
        found: list[dict[str, Any]] = []
        for _ in range(50):  # bounded: a device has a handful of keys
            page = self._get(path, params)
            if page is None:
                break
            found += [k for k in page.get("value", []) if isinstance(k, dict)]
            nxt = page.get("@odata.nextLink")
            if not isinstance(nxt, str) or not nxt.startswith(self._base):
                break
            path, params = nxt[len(self._base):], {}
        os_keys = [k for k in found if k.get("volumeType") in _OS_VOLUME] or found
        os_keys.sort(key=lambda k: str(k.get("createdDateTime", "")), reverse=True)
        return str(os_keys[0].get("id", "")) if os_keys else ""

    def fetch(self, *, host_id: str, key_id: str, device_id: str) -> tuple[str, str] | None:
        """``(key id, recovery key)`` of the host's key, or None when Entra ID holds none for it."""
        kid = key_id.strip("{}") if key_id else ""
        if not kid and device_id:
            kid = self._newest_for_device(device_id)
        if not kid:
            return None
        body = self._get(f"/informationProtection/bitlocker/recoveryKeys/{quote(kid, safe='')}", {"$select": "key"})
        if body is None or not isinstance(body.get("key"), str):
            return None
        return str(body.get("id", kid)), str(body["key"])


def key_source(settings: Settings) -> GraphKeySource | None:
    """The configured key source: Microsoft Graph when ``RINGFENCE_GRAPH_URL`` is set, else None (the import)."""
    return GraphKeySource(settings.graph_url, settings.graph_token) if settings.graph_url else None
