"""Reading and writing kubeconfig files (the subset kubeadm and kubelets use)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from kube_sim.common import paths, yamlsubset


class KubeconfigError(ValueError):
    """A kubeconfig is missing, unreadable or lacks what is needed."""


@dataclass
class Credentials:
    """What a client needs from a kubeconfig's current context."""

    server: str
    ca_pem: str | None = None
    cert_pem: str | None = None
    key_pem: str | None = None
    token: str | None = None
    insecure: bool = False
    cluster_name: str = ""
    user_name: str = ""


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def build(
    *,
    cluster_name: str,
    server: str,
    ca_pem: str,
    user: str,
    cert_pem: str | None = None,
    key_pem: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    token: str | None = None,
    context: str | None = None,
) -> dict[str, Any]:
    """A kubeconfig document in the shape kubeadm writes."""
    auth: dict[str, Any] = {}
    if cert_pem is not None:
        auth["client-certificate-data"] = b64(cert_pem)
    if cert_file is not None:
        auth["client-certificate"] = cert_file
    if key_pem is not None:
        auth["client-key-data"] = b64(key_pem)
    if key_file is not None:
        auth["client-key"] = key_file
    if token is not None:
        auth["token"] = token
    context = context or f"{user}@{cluster_name}"
    return {
        "apiVersion": "v1",
        "clusters": [
            {
                "cluster": {"certificate-authority-data": b64(ca_pem), "server": server},
                "name": cluster_name,
            }
        ],
        "contexts": [{"context": {"cluster": cluster_name, "user": user}, "name": context}],
        "current-context": context,
        "kind": "Config",
        "preferences": {},
        "users": [{"name": user, "user": auth}],
    }


def dumps(config: dict[str, Any]) -> str:
    return yamlsubset.dump(config)


def write(path: str, config: dict[str, Any]) -> None:
    """Write a kubeconfig (mode 0600: it holds credentials)."""
    paths.write_file(path, dumps(config), mode=0o600)


def parse(text: str, source: str = "kubeconfig") -> dict[str, Any]:
    doc = yamlsubset.load(text, source)
    if not isinstance(doc, dict):
        raise KubeconfigError(f"{source}: not a kubeconfig (expected a mapping)")
    return doc


def _named(items: Any, name: str, what: str, source: str) -> dict[str, Any]:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            return item.get(what) or {}
    raise KubeconfigError(f"{source}: {what} {name!r} not found")


def _data_or_file(section: dict[str, Any], key: str) -> str | None:
    data = section.get(f"{key}-data")
    if data:
        return base64.b64decode(data).decode()
    filename = section.get(key)
    if filename:
        return paths.host(filename).read_text()
    return None


def credentials(config: dict[str, Any], source: str = "kubeconfig") -> Credentials:
    """The server, CA and client credentials of the current context."""
    context_name = config.get("current-context")
    contexts = config.get("contexts") or []
    if not context_name:
        if len(contexts) != 1:
            raise KubeconfigError(f"{source}: no current-context")
        context_name = contexts[0].get("name")
    context = _named(contexts, context_name, "context", source)
    cluster = _named(config.get("clusters"), context.get("cluster"), "cluster", source)
    user_name = context.get("user") or ""
    user = _named(config.get("users"), user_name, "user", source) if user_name else {}
    server = cluster.get("server")
    if not server:
        raise KubeconfigError(f"{source}: cluster {context.get('cluster')!r} has no server")
    return Credentials(
        server=server,
        ca_pem=_data_or_file(cluster, "certificate-authority"),
        cert_pem=_data_or_file(user, "client-certificate"),
        key_pem=_data_or_file(user, "client-key"),
        token=user.get("token"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cluster_name=str(context.get("cluster") or ""),
        user_name=str(user_name),
    )


def load(path: str) -> Credentials:
    """Credentials from a kubeconfig file on the host."""
    try:
        text = paths.given(path).read_text()
    except OSError as exc:
        raise KubeconfigError(f"failed to load kubeconfig {path}: {exc.strerror}") from exc
    return credentials(parse(text, path), path)
