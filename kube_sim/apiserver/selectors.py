"""Label selectors, field selectors, metav1.LabelSelector, node affinity and tolerations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import bad_request


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("gt", "lt"):
            try:
                number = int(value or "")
                bound = int(self.values[0])
            except ValueError:
                return False
            return number > bound if self.op == "gt" else number < bound
        return False


_TOKEN = re.compile(r"\s*(\(|\)|,|!=|==|=|!|[^\s(),!=]+)")


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse the string form (``a=b,c!=d,e in (f,g),!h,i``)."""
    if not text or not text.strip():
        return []
    tokens = [t for t in _TOKEN.findall(text) if t]
    reqs: list[Requirement] = []
    i = 0

    def need(cond: bool) -> None:
        if not cond:
            raise bad_request(f"unable to parse requirement: invalid label selector: {text!r}")

    while i < len(tokens):
        if tokens[i] == "!":
            need(i + 1 < len(tokens))
            reqs.append(Requirement(tokens[i + 1], "!exists"))
            i += 2
        else:
            key = tokens[i]
            need(key not in "(),=")
            i += 1
            if i >= len(tokens) or tokens[i] == ",":
                reqs.append(Requirement(key, "exists"))
            elif tokens[i] in ("=", "==", "!="):
                op = "!=" if tokens[i] == "!=" else "="
                need(i + 1 < len(tokens) and tokens[i + 1] not in "(),")
                reqs.append(Requirement(key, op, (tokens[i + 1],)))
                i += 2
            elif tokens[i] in ("in", "notin"):
                op = tokens[i]
                need(i + 1 < len(tokens) and tokens[i + 1] == "(")
                i += 2
                values: list[str] = []
                while i < len(tokens) and tokens[i] != ")":
                    if tokens[i] != ",":
                        values.append(tokens[i])
                    i += 1
                need(i < len(tokens))
                i += 1
                reqs.append(Requirement(key, op, tuple(values)))
            else:
                need(False)
        if i < len(tokens):
            need(tokens[i] == ",")
            i += 1
    return reqs


def labels_match(reqs: list[Requirement], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in reqs)


def _field_value(obj: dict[str, Any], path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def parse_field_selector(text: str | None) -> list[tuple[str, str, str]]:
    """``a.b=c,d!=e`` -> [(path, op, value)]; op is "=" or "!="."""
    result: list[tuple[str, str, str]] = []
    if not text or not text.strip():
        return result
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-/]+)\s*(==|!=|=)\s*(.*)", part)
        if not match:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        op = "!=" if match.group(2) == "!=" else "="
        result.append((match.group(1), op, match.group(3)))
    return result


def fields_match(reqs: list[tuple[str, str, str]], obj: dict[str, Any]) -> bool:
    for path, op, value in reqs:
        actual = _field_value(obj, path)
        if (actual == value) != (op == "="):
            return False
    return True


def selector_from_labelselector(selector: dict[str, Any] | None) -> list[Requirement] | None:
    """metav1.LabelSelector -> requirements. None selector matches nothing (returns None)."""
    if selector is None:
        return None
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}.get(
            expr.get("operator", ""), "in"
        )
        reqs.append(Requirement(expr.get("key", ""), op, tuple(expr.get("values") or ())))
    return reqs


def labelselector_matches(selector: dict[str, Any] | None, labels: dict[str, str] | None) -> bool:
    reqs = selector_from_labelselector(selector)
    if reqs is None:
        return False
    return labels_match(reqs, labels)


# --- scheduling helpers ----------------------------------------------------------------------


def _node_term_matches(term: dict[str, Any], node: dict[str, Any]) -> bool:
    labels = node.get("metadata", {}).get("labels") or {}
    fields = {"metadata.name": node.get("metadata", {}).get("name", "")}
    ops = {
        "In": "in",
        "NotIn": "notin",
        "Exists": "exists",
        "DoesNotExist": "!exists",
        "Gt": "gt",
        "Lt": "lt",
    }
    for expr in term.get("matchExpressions") or []:
        req = Requirement(
            expr.get("key", ""),
            ops.get(expr.get("operator", ""), "in"),
            tuple(expr.get("values") or ()),
        )
        if not req.matches(labels):
            return False
    for expr in term.get("matchFields") or []:
        req = Requirement(
            expr.get("key", ""),
            ops.get(expr.get("operator", ""), "in"),
            tuple(expr.get("values") or ()),
        )
        if not req.matches(fields):
            return False
    return bool(term.get("matchExpressions") or term.get("matchFields"))


def node_affinity_matches(pod_spec: dict[str, Any], node: dict[str, Any]) -> bool:
    """spec.nodeSelector and requiredDuringSchedulingIgnoredDuringExecution node affinity."""
    labels = node.get("metadata", {}).get("labels") or {}
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms")
    if terms:
        return any(_node_term_matches(t, node) for t in terms)
    return True


def toleration_matches(tol: dict[str, Any], taint: dict[str, Any]) -> bool:
    effect = tol.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    operator = tol.get("operator") or "Equal"
    key = tol.get("key") or ""
    if not key:
        return operator == "Exists"
    if key != taint.get("key"):
        return False
    if operator == "Exists":
        return True
    return (tol.get("value") or "") == (taint.get("value") or "")


def tolerates(
    tolerations: list[dict[str, Any]] | None,
    taints: list[dict[str, Any]] | None,
    effects: tuple[str, ...] = ("NoSchedule", "NoExecute"),
) -> bool:
    for taint in taints or []:
        if taint.get("effect") not in effects:
            continue
        if not any(toleration_matches(t, taint) for t in tolerations or []):
            return False
    return True
