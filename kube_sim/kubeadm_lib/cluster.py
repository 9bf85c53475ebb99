"""Small helpers for kubeadm's calls to the API server."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from kube_sim.common import kubeconfig, paths
from kube_sim.common.rest import ApiClient, ApiError, quote
from kube_sim.common.version import git_version

T = TypeVar("T")
USER_AGENT = f"kubeadm/{git_version()} (linux) kubernetes/sim"


def client_from_kubeconfig(path: str = paths.ADMIN_CONF, timeout: float = 10.0) -> ApiClient:
    return ApiClient.from_credentials(kubeconfig.load(path), timeout=timeout, user_agent=USER_AGENT)


def poll(
    attempt: Callable[[], T | None], timeout: float, interval: float = 0.5
) -> tuple[T | None, float]:
    """Call attempt() until it returns non-None or timeout passes: (result, seconds waited)."""
    start = time.monotonic()
    while True:
        result = attempt()
        waited = time.monotonic() - start
        if result is not None or waited >= timeout:
            return result, waited
        time.sleep(min(interval, max(0.0, timeout - waited)))


def get_or_none(client: ApiClient, path: str) -> Any:
    try:
        return client.get(path)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def ensure_namespace(client: ApiClient, name: str) -> None:
    if get_or_none(client, f"/api/v1/namespaces/{quote(name)}") is not None:
        return
    try:
        client.post(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
    except ApiError as exc:
        if exc.status != 409:
            raise


def create_or_update(client: ApiClient, collection: str, obj: dict[str, Any]) -> Any:
    """POST the object; if it exists, PUT it over the existing one (keeping resourceVersion)."""
    try:
        return client.post(collection, obj)
    except ApiError as exc:
        if exc.status != 409:
            raise
    path = f"{collection}/{quote(obj['metadata']['name'])}"
    for _ in range(5):
        current = client.get(path)
        body = dict(obj)
        body["metadata"] = {
            **obj["metadata"],
            "resourceVersion": current["metadata"].get("resourceVersion"),
        }
        try:
            return client.put(path, body)
        except ApiError as exc:
            if exc.status != 409:
                raise
    raise ApiError(409, f"could not update {path}: conflicts")


def configmap_path(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{quote(namespace)}/configmaps"
    return f"{base}/{quote(name)}" if name else base


def secret_path(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{quote(namespace)}/secrets"
    return f"{base}/{quote(name)}" if name else base
