"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a strategic merge patch.

The strategic merge patch knows the merge keys of the built-in types the product and kubectl
touch (containers, env, ports, volumes, conditions, addresses, ownerReferences, ...); every other
list is replaced atomically, which is also what the real server does for lists without a patch
strategy (node ``spec.taints``, ``tolerations``, RBAC ``rules``...).
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError, bad_request


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- strategic merge -----------------------------------------------------------------------

# field name -> merge key; None means "merge as a set of primitives".
_MERGE_KEYS: dict[str, str | None] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "addresses": "type",
    "ownerReferences": "uid",
    "finalizers": None,
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "readinessGates": None,
    "secrets": "name",
    "volumesAttached": "name",
}

# fields whose merge key is "port" outside containers and "containerPort" inside them.
_PORTS = "ports"


def _merge_key(path: tuple[str, ...], name: str) -> tuple[bool, str | None]:
    """(is_merge_list, key) for the list field ``name`` found at ``path``."""
    if name == _PORTS:
        in_container = any(
            p in ("containers", "initContainers", "ephemeralContainers") for p in path
        )
        if in_container:
            return True, "containerPort"
        if "spec" in path and path[-1:] == ("spec",):
            return True, "port"
        return False, None
    if name == "conditions" and "status" not in path:
        return False, None
    if name == "addresses" and path[-1:] != ("status",):
        return False, None
    if name in _MERGE_KEYS:
        return True, _MERGE_KEYS[name]
    return False, None


def strategic_merge(target: Any, patch: Any, path: tuple[str, ...] = ()) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    orders: dict[str, list] = {}
    deletions: dict[str, list] = {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value or []
        elif key.startswith("$deleteFromPrimitiveList/"):
            deletions[key.split("/", 1)[1]] = value or []
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
            continue
        if isinstance(value, list):
            is_merge, merge_key = _merge_key(path, key)
            if is_merge:
                result[key] = _merge_list(result.get(key), value, merge_key, (*path, key))
            else:
                result[key] = [_strip_directives(v) for v in value]
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value, (*path, key))
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = value
    for key, values in deletions.items():
        if isinstance(result.get(key), list):
            result[key] = [v for v in result[key] if v not in values]
    for key, order in orders.items():
        if isinstance(result.get(key), list):
            result[key] = _apply_order(result[key], order, _merge_key(path, key)[1])
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def _merge_list(current: Any, patch: list, key: str | None, path: tuple[str, ...]) -> list:
    items = copy.deepcopy(current) if isinstance(current, list) else []
    if key is None:  # set of primitives
        for value in patch:
            if isinstance(value, dict) and value.get("$patch") == "replace":
                return []
            if value not in items:
                items.append(value)
        return items
    if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
        return [
            _strip_directives(v)
            for v in patch
            if not (isinstance(v, dict) and v.get("$patch") == "replace")
        ]
    for value in patch:
        if not isinstance(value, dict):
            items.append(value)
            continue
        ident = value.get(key)
        index = next(
            (i for i, it in enumerate(items) if isinstance(it, dict) and it.get(key) == ident), None
        )
        if value.get("$patch") == "delete":
            if index is not None:
                items.pop(index)
            continue
        if index is None:
            items.append(_strip_directives(value))
        else:
            items[index] = strategic_merge(items[index], value, path)
    return items


def _apply_order(items: list, order: list, key: str | None) -> list:
    def ident(item: Any) -> Any:
        if key is not None and isinstance(item, dict):
            return item.get(key)
        return item

    wanted = [ident(o) for o in order]
    ordered = sorted(
        items,
        key=lambda it: wanted.index(ident(it)) if ident(it) in wanted else len(wanted),
    )
    return ordered


# --- JSON patch ----------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict):
            doc = doc[part]
        else:
            raise KeyError(part)
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        try:
            doc = _apply_op(doc, op)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(
                422,
                f"the server rejected our request due to an error in our "
                f"request: json patch {op.get('op')} operation failed: {exc}",
                "Invalid",
            ) from exc
    return doc


def _apply_op(doc: Any, op: dict) -> Any:
    kind = op.get("op")
    parts = _pointer(op.get("path", ""))
    if kind == "test":
        if _walk(doc, parts) != op.get("value"):
            raise ValueError("test failed")
        return doc
    if kind in ("copy", "move"):
        src = _pointer(op.get("from", ""))
        value = copy.deepcopy(_walk(doc, src))
        if kind == "move":
            doc = _remove(doc, src)
        return _add(doc, parts, value)
    if kind == "add":
        return _add(doc, parts, copy.deepcopy(op.get("value")))
    if kind == "remove":
        return _remove(doc, parts)
    if kind == "replace":
        if not parts:
            return copy.deepcopy(op.get("value"))
        parent = _walk(doc, parts[:-1])
        last = parts[-1]
        if isinstance(parent, list):
            parent[int(last)] = copy.deepcopy(op.get("value"))
        else:
            if last not in parent:
                raise KeyError(last)
            parent[last] = copy.deepcopy(op.get("value"))
        return doc
    raise ValueError(f"unknown op {kind!r}")


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            parent.insert(int(last), value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise KeyError(last)
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        parent.pop(int(last))
    else:
        del parent[last]
    return doc
