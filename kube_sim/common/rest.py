"""A tiny Kubernetes REST client over https (stdlib only)."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import tempfile
import urllib.parse
from typing import Any

from kube_sim.common.kubeconfig import Credentials

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


class ApiError(RuntimeError):
    """The API server answered with an error status (or could not be reached: status 0)."""

    def __init__(self, status: int, message: str, body: Any = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.reason = reason


class ApiClient:
    """Talks to one API server with a client certificate, a bearer token, or anonymously."""

    def __init__(
        self,
        server: str,
        *,
        ca_pem: str | None = None,
        cert_pem: str | None = None,
        key_pem: str | None = None,
        token: str | None = None,
        insecure: bool = False,
        timeout: float = 10.0,
        user_agent: str = "kube-sim",
    ) -> None:
        url = urllib.parse.urlsplit(server)
        if url.scheme != "https" or not url.hostname:
            raise ValueError(f"unsupported API server URL {server!r}")
        self.server = server
        self.host = url.hostname
        self.port = url.port or 443
        self.token = token
        self.timeout = timeout
        self.user_agent = user_agent
        self.context = _ssl_context(ca_pem, cert_pem, key_pem, insecure)

    @classmethod
    def from_credentials(cls, creds: Credentials, **kwargs: Any) -> ApiClient:
        return cls(
            creds.server,
            ca_pem=creds.ca_pem,
            cert_pem=creds.cert_pem,
            key_pem=creds.key_pem,
            token=creds.token,
            insecure=creds.insecure,
            **kwargs,
        )

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = JSON,
        raw: bool = False,
    ) -> Any:
        """Send one request; returns the decoded JSON body (or text when raw)."""
        if query:
            path = f"{path}?{urllib.parse.urlencode(query)}"
        headers = {"Accept": JSON, "User-Agent": self.user_agent}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn = http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=self.timeout
        )
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ApiError(0, f"{method} {self.server}{path}: {exc}") from exc
        finally:
            conn.close()
        text = data.decode(errors="replace")
        if response.status >= 400:
            decoded: Any = None
            message = text.strip() or response.reason
            reason = ""
            try:
                decoded = json.loads(text)
                if isinstance(decoded, dict):
                    message = decoded.get("message") or message
                    reason = decoded.get("reason") or ""
            except ValueError:
                pass
            raise ApiError(response.status, message, decoded, reason)
        if raw:
            return text
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ApiError(response.status, f"{method} {path}: response is not JSON") from exc

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Any:
        return self.request("POST", path, body, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> Any:
        return self.request("PUT", path, body, **kw)

    def patch(self, path: str, body: Any, content_type: str = STRATEGIC_MERGE_PATCH) -> Any:
        return self.request("PATCH", path, body, content_type=content_type)

    def delete(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("DELETE", path, body, **kw)


def _ssl_context(
    ca_pem: str | None, cert_pem: str | None, key_pem: str | None, insecure: bool
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if insecure or not ca_pem:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_verify_locations(cadata=ca_pem)
    if cert_pem and key_pem:
        # ssl can only load client credentials from a file: a private one, removed at once.
        fd, name = tempfile.mkstemp(prefix="kube-sim-client-", suffix=".pem")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(cert_pem.rstrip("\n") + "\n" + key_pem)
            context.load_cert_chain(name)
        finally:
            os.unlink(name)
    return context


def quote(name: str) -> str:
    """Quote a path segment (object names are DNS-ish, but be safe)."""
    return urllib.parse.quote(name, safe="")
