"""Decoding of Kubernetes protobuf request bodies (``application/vnd.kubernetes.protobuf``).

kubectl's typed clients (``kubectl drain`` evictions, ``kubectl create deployment|namespace|
secret|configmap``, ``kubectl certificate approve``...) send protobuf, not JSON, and do not
fall back. Bodies are ``k8s\\0`` + a ``runtime.Unknown`` envelope whose ``raw`` field holds the
object; the field numbers come from :mod:`.proto_schema`, generated from the descriptors of
the k8s.io/api types (see ``gen_proto_schema.py``). Responses are always JSON.
"""

from __future__ import annotations

import base64
import json
import struct
from datetime import datetime, timezone
from typing import Any

from .errors import bad_request

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

META = "k8s.io.apimachinery.pkg.apis.meta.v1."
_GROUP_PACKAGES = {
    "": "core",
    "apps": "apps",
    "policy": "policy",
    "batch": "batch",
    "autoscaling": "autoscaling",
    "certificates.k8s.io": "certificates",
    "coordination.k8s.io": "coordination",
    "rbac.authorization.k8s.io": "rbac",
    "storage.k8s.io": "storage",
    "discovery.k8s.io": "discovery",
    "networking.k8s.io": "networking",
    "scheduling.k8s.io": "scheduling",
    "node.k8s.io": "node",
    "events.k8s.io": "events",
    "admissionregistration.k8s.io": "admissionregistration",
}


# Non-pointer ``omitempty`` fields that gogo protobuf always encodes; their zero values are
# dropped so decoded objects look like the JSON kubectl would have sent.
_OMIT_ZERO = {
    "generation",
    "hostPort",
    "stdin",
    "stdinOnce",
    "tty",
    "hostIPC",
    "hostNetwork",
    "hostPID",
    "minReadySeconds",
    "paused",
    "unschedulable",
    "readOnly",
    "restartCount",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
}


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> list[tuple[int, int, Any]]:
    """Wire-level parse: [(field number, wire type, value)]; length-delimited values are
    bytes, varints int, fixed64/fixed32 raw bytes."""
    out = []
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = read_varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(kind: str, wire: int, value: Any) -> Any:
    if kind == "s":
        return value.decode("utf-8")
    if kind == "y":
        return base64.b64encode(value).decode()
    if kind == "b":
        return bool(value)
    if kind == "i":
        return _signed(value)
    if kind == "d":
        return struct.unpack("<d", value)[0]
    if kind == "f":
        return struct.unpack("<f", value)[0]
    raise ValueError(f"unknown scalar kind {kind}")


def _special(type_name: str, data: bytes) -> tuple[bool, Any]:
    """Types with their own JSON form."""
    short = type_name.rsplit(".", 1)[-1]
    if type_name.endswith("intstr.IntOrString"):
        parsed = {n: v for n, _, v in fields(data)}
        if parsed.get(1, 0) == 1:
            return True, parsed.get(3, b"").decode()
        return True, _signed(parsed.get(2, 0))
    if type_name.endswith("resource.Quantity"):
        parsed = {n: v for n, _, v in fields(data)}
        return True, parsed.get(1, b"").decode()
    if type_name.startswith(META) and short in ("Time", "MicroTime"):
        parsed = {n: v for n, _, v in fields(data)}
        seconds, nanos = _signed(parsed.get(1, 0)), parsed.get(2, 0)
        if not seconds and not nanos:
            return True, None
        stamp = datetime.fromtimestamp(seconds + nanos / 1e9, tz=timezone.utc)
        if short == "MicroTime":
            return True, stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return True, stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    if type_name.startswith(META) and short == "Duration":
        parsed = {n: v for n, _, v in fields(data)}
        return True, f"{_signed(parsed.get(1, 0)) / 1e9:g}s"
    if type_name.endswith("runtime.RawExtension") or type_name.endswith("meta.v1.FieldsV1"):
        parsed = {n: v for n, _, v in fields(data)}
        raw = parsed.get(1, b"")
        try:
            return True, json.loads(raw) if raw else None
        except ValueError:
            return True, None
    return False, None


def decode_message(type_name: str, data: bytes) -> Any:
    from .proto_schema import MESSAGES

    special, value = _special(type_name, data)
    if special:
        return value
    schema = MESSAGES.get(type_name)
    if schema is None:
        raise bad_request(f"protobuf type {type_name} is not supported by this server")
    obj: dict[str, Any] = {}
    for number, wire, raw in fields(data):
        spec = schema.get(number)
        if spec is None:
            continue
        name, kind, repeated = spec
        if kind.startswith("M:"):
            _, key_kind, value_kind = kind.split(":", 2)
            entry = {n: (w, v) for n, w, v in fields(raw)}
            key = _value(key_kind, *entry.get(1, (2, b"")))
            value = _value(value_kind, *entry[2]) if 2 in entry else _empty(value_kind)
            obj.setdefault(name, {})[key] = value
            continue
        if repeated and wire == 2 and kind in ("i", "b"):  # packed
            pos, values = 0, []
            while pos < len(raw):
                item, pos = read_varint(raw, pos)
                values.append(_scalar(kind, 0, item))
            obj.setdefault(name, []).extend(values)
            continue
        value = _value(kind, wire, raw)
        if repeated:
            obj.setdefault(name, []).append(value)
        elif value is None or value == "" or (name in _OMIT_ZERO and not value):
            continue
        else:
            obj[name] = value
    return obj


def _empty(kind: str) -> Any:
    return "" if kind in ("s", "y") else ({} if kind.startswith("m:") else 0)


def _value(kind: str, wire: int, raw: Any) -> Any:
    if kind.startswith("m:"):
        return decode_message(kind[2:], raw)
    return _scalar(kind, wire, raw)


def message_for(api_version: str, kind: str) -> str:
    from .proto_schema import MESSAGES

    group, _, version = api_version.rpartition("/")
    package = _GROUP_PACKAGES.get(group)
    if package:
        name = f"k8s.io.api.{package}.{version}.{kind}"
        if name in MESSAGES:
            return name
    if META + kind in MESSAGES:
        return META + kind
    raise bad_request(f"protobuf bodies of {api_version} {kind} are not supported; send JSON")


def decode(body: bytes) -> dict[str, Any]:
    """``k8s\\0`` + runtime.Unknown -> the JSON-shaped object (with apiVersion and kind)."""
    if not body.startswith(MAGIC):
        raise bad_request("protobuf body without the k8s envelope")
    try:
        envelope = {n: v for n, _, v in fields(body[len(MAGIC) :])}
        type_meta = {n: v for n, _, v in fields(envelope.get(1, b""))}
        api_version = type_meta.get(1, b"").decode()
        kind = type_meta.get(2, b"").decode()
        obj = decode_message(message_for(api_version, kind), envelope.get(2, b""))
    except (ValueError, KeyError, UnicodeDecodeError, struct.error) as exc:
        raise bad_request(f"could not decode protobuf body: {exc}") from exc
    result = {"kind": kind, "apiVersion": api_version}
    result.update(obj)
    return result
