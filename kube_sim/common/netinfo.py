"""Facts about this host's network and identity (hostname, default-route address)."""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess


def hostname() -> str:
    """The node name kubeadm and kubelet default to: the lower-cased host name."""
    return socket.gethostname().strip().lower()


def default_route_address() -> str | None:
    """The host's IPv4 address on the interface of its default route (None if no route)."""
    try:
        routes = _ip_json(["-4", "route", "show", "default"])
        for route in routes:
            dev = route.get("dev")
            if not dev:
                continue
            for link in _ip_json(["-4", "addr", "show", "dev", dev]):
                for info in link.get("addr_info", []):
                    if info.get("family") == "inet" and info.get("scope") == "global":
                        return str(info["local"])
    except (OSError, ValueError, KeyError, subprocess.CalledProcessError):
        return None
    return None


def _ip_json(args: list[str]) -> list[dict]:
    out = subprocess.run(
        ["ip", "-j", *args], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    return json.loads(out or "[]")


def split_host_port(endpoint: str, default_port: int | None = None) -> tuple[str, int]:
    """'host:port', '[v6]:port', 'host' (with default_port) -> (host, port)."""
    text = endpoint.strip()
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"invalid endpoint {endpoint!r}")
        host, rest = text[1:close], text[close + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError(f"invalid endpoint {endpoint!r}")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.count(":") > 1:
        ipaddress.IPv6Address(text)
        host, port_text = text, ""
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"invalid endpoint {endpoint!r}: no host")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"invalid endpoint {endpoint!r}: bad port")
        return host, int(port_text)
    if default_port is None:
        raise ValueError(f"invalid endpoint {endpoint!r}: no port")
    return host, default_port


def join_host_port(host: str, port: int) -> str:
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
