"""Bootstrap tokens: format, Secrets in kube-system, and cluster-info JWS signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kube_sim.common import timeutil

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
TOKEN_ID_RE = re.compile(r"^[a-z0-9]{6}$")
GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
DEFAULT_GROUP = "system:bootstrappers:kubeadm:default-node-token"
DEFAULT_USAGES = ("signing", "authentication")
VALID_USAGES = ("signing", "authentication")
DEFAULT_TTL = 24 * 3600.0
JWS_PREFIX = "jws-kubeconfig-"
_ALPHABET = string.ascii_lowercase + string.digits


def generate() -> str:
    """A new random token like real kubeadm's ('[a-z0-9]{6}.[a-z0-9]{16}')."""
    pick = secrets.choice
    return (
        "".join(pick(_ALPHABET) for _ in range(6))
        + "."
        + "".join(pick(_ALPHABET) for _ in range(16))
    )


def split(token: str) -> tuple[str, str]:
    match = TOKEN_RE.match(token)
    if not match:
        raise ValueError(
            f'the bootstrap token "{token}" was not of the form '
            f'"^([a-z0-9]{{6}})\\.([a-z0-9]{{16}})$"'
        )
    return match.group(1), match.group(2)


@dataclass
class BootstrapToken:
    token: str
    description: str = ""
    ttl: float | None = DEFAULT_TTL  # None or 0 = never expires
    expires: datetime | None = None
    usages: list[str] = field(default_factory=lambda: list(DEFAULT_USAGES))
    groups: list[str] = field(default_factory=lambda: [DEFAULT_GROUP])

    @property
    def token_id(self) -> str:
        return split(self.token)[0]

    def expiration(self, now: datetime | None = None) -> datetime | None:
        if self.expires is not None:
            return self.expires
        if not self.ttl:
            return None
        return (now or timeutil.now()) + timedelta(seconds=self.ttl)

    def secret(self, now: datetime | None = None) -> dict:
        """The kube-system Secret real kubeadm creates for this token."""
        token_id, token_secret = split(self.token)
        data = {"token-id": token_id, "token-secret": token_secret}
        if self.description:
            data["description"] = self.description
        expiration = self.expiration(now)
        if expiration is not None:
            data["expiration"] = timeutil.rfc3339(expiration)
        for usage in self.usages:
            data[f"usage-bootstrap-{usage}"] = "true"
        if self.groups:
            data["auth-extra-groups"] = ",".join(self.groups)
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET_PREFIX + token_id, "namespace": "kube-system"},
            "type": SECRET_TYPE,
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }


def from_secret(secret: dict) -> BootstrapToken | None:
    """The token a bootstrap-token Secret holds (None if it is not one)."""
    if secret.get("type") != SECRET_TYPE:
        return None
    raw = secret.get("data") or {}
    data = {k: base64.b64decode(v).decode(errors="replace") for k, v in raw.items()}
    token_id, token_secret = data.get("token-id", ""), data.get("token-secret", "")
    if not TOKEN_RE.match(f"{token_id}.{token_secret}"):
        return None
    expires = None
    if data.get("expiration"):
        try:
            expires = timeutil.parse_time(data["expiration"])
        except ValueError:
            expires = None
    usages = [
        key.removeprefix("usage-bootstrap-")
        for key, value in sorted(data.items())
        if key.startswith("usage-bootstrap-") and value == "true"
    ]
    groups = [g for g in data.get("auth-extra-groups", "").split(",") if g]
    return BootstrapToken(
        token=f"{token_id}.{token_secret}",
        description=data.get("description", ""),
        ttl=None,
        expires=expires,
        usages=usages,
        groups=groups,
    )


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jws_sign(payload: str, token_id: str, token_secret: str) -> str:
    """A detached HS256 JWS (header..signature) over payload, as the bootstrap signer makes."""
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    signing_input = f"{header}.{_b64url(payload.encode())}".encode()
    signature = hmac.new(token_secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}..{_b64url(signature)}"


def jws_verify(detached: str, payload: str, token_id: str, token_secret: str) -> bool:
    """Whether `detached` is a valid signature of payload by this token."""
    parts = detached.split(".")
    if len(parts) != 3 or parts[1] != "":
        return False
    try:
        padded = parts[0] + "=" * (-len(parts[0]) % 4)
        header = json.loads(base64.urlsafe_b64decode(padded))
    except ValueError:
        return False
    if header.get("alg") != "HS256" or header.get("kid") not in (None, token_id):
        return False
    signing_input = f"{parts[0]}.{_b64url(payload.encode())}".encode()
    expected = hmac.new(token_secret.encode(), signing_input, hashlib.sha256).digest()
    return hmac.compare_digest(_b64url(expected), parts[2])
