"""Keep secrets out of logs, events and error messages."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "<redacted>"

_PATTERNS = [
    # kubeadm bootstrap tokens: [a-z0-9]{6}.[a-z0-9]{16}
    re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b"),
    # kubeadm certificate keys: 32 bytes as 64 hex characters (after a flag or a colon)
    re.compile(r"(?<=--certificate-key[ =])[0-9a-f]{64}\b"),
    re.compile(r"(?<=certificateKey: )[\"']?[0-9a-f]{64}[\"']?"),
    # PEM private keys, whole block
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL),
    # kubeconfig embedded credentials
    re.compile(r"(?<=client-key-data: )\S+"),
    re.compile(r"(?<=client-certificate-data: )\S+"),
    re.compile(r"(?<=token: )\S+"),
]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask known secret values and anything shaped like a token, key or credential."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(MASK, text)
    return text
