"""Bootstrap tokens on the cluster: Secrets, cluster-info signatures, `kubeadm token ...`."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from kube_sim.common import kubeconfig, pki, timeutil, yamlsubset
from kube_sim.common.rest import MERGE_PATCH, ApiClient, ApiError
from kube_sim.kubeadm_lib import tokens
from kube_sim.kubeadm_lib.cluster import configmap_path, get_or_none, secret_path
from kube_sim.kubeadm_lib.errors import KubeadmError

CLUSTER_INFO = ("kube-public", "cluster-info")


def cluster_info_kubeconfig(server: str, ca_pem: str) -> str:
    """The kubeconfig published in kube-public/cluster-info (cluster only, no credentials)."""
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "clusters": [
            {
                "cluster": {"certificate-authority-data": kubeconfig.b64(ca_pem), "server": server},
                "name": "",
            }
        ],
        "contexts": None,
        "current-context": "",
        "kind": "Config",
        "preferences": {},
        "users": None,
    }
    return yamlsubset.dump(doc)


def publish_cluster_info(
    client: ApiClient, server: str, ca_pem: str, signers: list[tokens.BootstrapToken]
) -> None:
    """Create (or replace) kube-public/cluster-info, signed by the given tokens."""
    payload = cluster_info_kubeconfig(server, ca_pem)
    data = {"kubeconfig": payload}
    for token in signers:
        if "signing" in token.usages:
            token_id, secret = tokens.split(token.token)
            data[tokens.JWS_PREFIX + token_id] = tokens.jws_sign(payload, token_id, secret)
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CLUSTER_INFO[1], "namespace": CLUSTER_INFO[0]},
        "data": data,
    }
    try:
        client.post(configmap_path(CLUSTER_INFO[0]), body)
    except ApiError as exc:
        if exc.status != 409:
            raise
        client.patch(configmap_path(*CLUSTER_INFO), {"data": data}, content_type=MERGE_PATCH)


def sign_cluster_info(client: ApiClient, token: tokens.BootstrapToken) -> bool:
    """Add this token's JWS to cluster-info (what the bootstrap signer controller does)."""
    if "signing" not in token.usages:
        return True
    current = get_or_none(client, configmap_path(*CLUSTER_INFO))
    if current is None:
        return False
    payload = (current.get("data") or {}).get("kubeconfig")
    if not payload:
        return False
    token_id, secret = tokens.split(token.token)
    patch = {"data": {tokens.JWS_PREFIX + token_id: tokens.jws_sign(payload, token_id, secret)}}
    client.patch(configmap_path(*CLUSTER_INFO), patch, content_type=MERGE_PATCH)
    return True


def prune_signatures(client: ApiClient, live_ids: set[str], also_remove: str | None = None) -> None:
    """Drop cluster-info signatures of tokens that no longer exist (or of also_remove)."""
    current = get_or_none(client, configmap_path(*CLUSTER_INFO))
    if current is None:
        return
    removals: dict[str, None] = {}
    for key in current.get("data") or {}:
        if key.startswith(tokens.JWS_PREFIX):
            token_id = key.removeprefix(tokens.JWS_PREFIX)
            if token_id not in live_ids or token_id == also_remove:
                removals[key] = None
    if removals:
        client.patch(configmap_path(*CLUSTER_INFO), {"data": removals}, content_type=MERGE_PATCH)


def store_token(client: ApiClient, token: tokens.BootstrapToken, allow_update: bool) -> None:
    """Create the token's Secret (init replaces an existing one; `token create` refuses)."""
    secret = token.secret()
    try:
        client.post(secret_path("kube-system"), secret)
    except ApiError as exc:
        if exc.status != 409:
            raise
        if not allow_update:
            raise KubeadmError(f'a token with id "{token.token_id}" already exists') from exc
        path = secret_path("kube-system", secret["metadata"]["name"])
        current = client.get(path)
        secret["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
        client.put(path, secret)


def list_tokens(client: ApiClient) -> list[tokens.BootstrapToken]:
    listing = client.get(secret_path("kube-system"))
    found = []
    for item in listing.get("items") or []:
        if not item.get("metadata", {}).get("name", "").startswith(tokens.SECRET_PREFIX):
            continue
        token = tokens.from_secret(item)
        if token is not None:
            found.append(token)
    return sorted(found, key=lambda t: t.token_id)


def delete_token(client: ApiClient, id_or_token: str) -> str:
    """Delete a token given its id or the whole token; returns the id."""
    token_id = id_or_token.split(".")[0]
    if not tokens.TOKEN_ID_RE.match(token_id) or (
        "." in id_or_token and not tokens.TOKEN_RE.match(id_or_token)
    ):
        raise KubeadmError(
            f'given token didn\'t match pattern "^([a-z0-9]{{6}})$" or '
            f'"^([a-z0-9]{{6}})\\.([a-z0-9]{{16}})$": "{id_or_token}"'
        )
    try:
        client.delete(secret_path("kube-system", tokens.SECRET_PREFIX + token_id))
    except ApiError as exc:
        if exc.status == 404:
            raise KubeadmError(
                f'failed to delete bootstrap token "{token_id}": secrets '
                f'"{tokens.SECRET_PREFIX}{token_id}" not found'
            ) from exc
        raise
    with contextlib.suppress(ApiError):
        prune_signatures(client, {t.token_id for t in list_tokens(client)}, also_remove=token_id)
    return token_id


def short_human_duration(seconds: float) -> str:
    """k8s.io/apimachinery duration.ShortHumanDuration."""
    secs = int(seconds)
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 60:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 60:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 365:
        return f"{days}d"
    return f"{days // 365}y"


def format_table(found: list[tokens.BootstrapToken], now: datetime | None = None) -> str:
    now = now or timeutil.now()
    header = ["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"]
    rows = [header]
    for token in found:
        if token.expires is None:
            ttl, expires = "<forever>", "<never>"
        else:
            remaining = (token.expires - now).total_seconds()
            ttl = "<invalid>" if remaining < 0 else short_human_duration(remaining)
            expires = timeutil.rfc3339(token.expires)
        rows.append(
            [
                token.token,
                ttl,
                expires,
                ",".join(sorted(token.usages)),
                token.description or "<none>",
                ",".join(token.groups) or "<none>",
            ]
        )
    widths = [max(10, *(len(r[i]) for r in rows)) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i] + 3) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def token_json(token: tokens.BootstrapToken) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": "BootstrapToken",
        "apiVersion": "output.kubeadm.k8s.io/v1alpha3",
        "token": token.token,
        "usages": sorted(token.usages),
        "groups": token.groups,
    }
    if token.description:
        out["description"] = token.description
    if token.expires is not None:
        out["expires"] = timeutil.rfc3339(token.expires)
    return out


def join_command(endpoint: str, token: str, ca_pem: str, certificate_key: str | None = None) -> str:
    """The join command line real kubeadm prints."""
    command = (
        f"kubeadm join {endpoint} --token {token} "
        f"--discovery-token-ca-cert-hash {pki.ca_cert_hash(ca_pem)} "
    )
    if certificate_key:
        command += f"--control-plane --certificate-key {certificate_key}"
    return command
