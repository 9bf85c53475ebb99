"""Authentication (client certificates, bootstrap tokens, anonymous) and a simple authorizer."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

from . import timeutil
from .errors import ApiError

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
BOOTSTRAP_TYPE = "bootstrap.kubernetes.io/token"
ANONYMOUS_PATHS = ("/healthz", "/livez", "/readyz", "/version")


@dataclass
class User:
    name: str
    groups: list[str] = field(default_factory=list)
    method: str = "anonymous"  # x509 | bootstrap | anonymous

    @property
    def is_node(self) -> bool:
        return "system:nodes" in self.groups and self.name.startswith("system:node:")


ANONYMOUS = User("system:anonymous", ["system:unauthenticated"], "anonymous")


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def _b64(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not value:
        return ""
    try:
        return base64.b64decode(value).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def user_from_cert(peercert: dict[str, Any] | None) -> User | None:
    if not peercert:
        return None
    cn = ""
    orgs: list[str] = []
    for rdn in peercert.get("subject", ()):
        for attr, value in rdn:
            if attr == "commonName":
                cn = value
            elif attr == "organizationName":
                orgs.append(value)
    if not cn:
        return None
    return User(cn, [*orgs, "system:authenticated"], "x509")


def user_from_token(token: str, get_secret) -> User:
    """Validate ``id.secret`` against kube-system/bootstrap-token-<id>; 401 when invalid."""
    match = TOKEN_RE.match(token.strip())
    if not match:
        raise unauthorized()
    token_id, token_secret = match.groups()
    secret = get_secret("kube-system", f"bootstrap-token-{token_id}")
    if (
        not secret
        or secret.get("type") != BOOTSTRAP_TYPE
        or secret["metadata"].get("deletionTimestamp")
    ):
        raise unauthorized()
    data = secret.get("data") or {}
    string_data = secret.get("stringData") or {}

    def value(key: str) -> str:
        return _b64(data, key) or str(string_data.get(key, ""))

    if value("token-id") != token_id or value("token-secret") != token_secret:
        raise unauthorized()
    if value("usage-bootstrap-authentication") != "true":
        raise unauthorized()
    expiration = value("expiration")
    if expiration:
        expires = timeutil.parse_time(expiration)
        if expires is None or expires <= timeutil.now():
            raise unauthorized()
    groups = ["system:bootstrappers"]
    for extra in value("auth-extra-groups").split(","):
        extra = extra.strip()
        if extra and extra not in groups:
            groups.append(extra)
    return User(f"system:bootstrap:{token_id}", [*groups, "system:authenticated"], "bootstrap")


@dataclass
class Attributes:
    """What a request wants to do, for the authorizer."""

    verb: str  # get list watch create update patch delete deletecollection
    path: str
    resource: str = ""  # plural, "" for non-resource requests
    group: str = ""
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    discovery: bool = False


_BOOTSTRAP_RULES = (
    # (group, resource, namespace, name or "", verbs)
    ("", "configmaps", "kube-public", "cluster-info", ("get", "list", "watch")),
    # real kubeadm grants these to bootstrap tokens through RBAC for `kubeadm join`:
    ("", "configmaps", "kube-system", "kubeadm-config", ("get",)),
    ("", "configmaps", "kube-system", "kubelet-config", ("get",)),
    ("", "nodes", "", "", ("get",)),
    (
        "certificates.k8s.io",
        "certificatesigningrequests",
        "",
        "",
        ("create", "get", "list", "watch"),
    ),
)


def _forbidden(user: User, attrs: Attributes) -> ApiError:
    if not attrs.resource:
        text = f'User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
        return ApiError(403, f"forbidden: {text}", "Forbidden")
    what = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    scope = f' in the namespace "{attrs.namespace}"' if attrs.namespace else " at the cluster scope"
    full = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
    label = f'{full} "{attrs.name}"' if attrs.name else full
    return ApiError(
        403,
        f'{label} is forbidden: User "{user.name}" cannot {attrs.verb} resource "{what}" '
        f'in API group "{attrs.group}"{scope}',
        "Forbidden",
        {"name": attrs.name, "group": attrs.group, "kind": attrs.resource},
    )


def authorize(user: User, attrs: Attributes) -> None:
    """Raise 401/403 unless ``user`` may do ``attrs``. Certificate users may do everything."""
    if user.method == "x509":
        return
    non_resource_ok = (
        not attrs.resource
        and attrs.verb == "get"
        and (any(attrs.path == p or attrs.path.startswith(p + "/") for p in ANONYMOUS_PATHS))
    )
    cluster_info = (
        attrs.resource == "configmaps"
        and attrs.group == ""
        and attrs.namespace == "kube-public"
        and attrs.name == "cluster-info"
        and not attrs.subresource
        and attrs.verb == "get"
    )
    if user.method == "anonymous":
        if non_resource_ok or cluster_info:
            return
        raise unauthorized()
    # bootstrap token users
    if non_resource_ok or attrs.discovery:
        return
    if attrs.subresource:
        raise _forbidden(user, attrs)
    for group, resource, namespace, name, verbs in _BOOTSTRAP_RULES:
        if (
            attrs.group == group
            and attrs.resource == resource
            and (not namespace or attrs.namespace == namespace)
            and (not name or attrs.name == name)
            and attrs.verb in verbs
        ):
            return
    raise _forbidden(user, attrs)
