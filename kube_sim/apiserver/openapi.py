"""A minimal OpenAPI v3 surface.

kubectl (>= 1.27) decides from ``/openapi/v3`` whether the server supports server-side field
validation (``fieldValidation`` on PATCH for the object's group/version/kind). Serving that one
fact lets plain ``kubectl apply -f`` work without ``--validate=false``; kubectl then computes
strategic merge patches from its compiled-in types. ``/openapi/v2`` is not served (404), which
kubectl tolerates.
"""

from __future__ import annotations

import hashlib
import json

from . import GIT_VERSION
from .errors import ApiError
from .registry import RESOURCES


def _gv_path(group_version: str) -> str:
    return f"api/{group_version}" if "/" not in group_version else f"apis/{group_version}"


def _document(group_version: str) -> dict:
    paths: dict[str, dict] = {}
    for r in RESOURCES:
        if r.group_version != group_version:
            continue
        base = "/" + _gv_path(group_version)
        scope = base + ("/namespaces/{namespace}" if r.namespaced else "")
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        params = [
            {
                "name": "fieldValidation",
                "in": "query",
                "schema": {"type": "string"},
                "uniqueItems": True,
            },
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}, "uniqueItems": True},
        ]
        paths[f"{scope}/{r.plural}/{{name}}"] = {
            "patch": {
                "operationId": f"patch{r.kind}",
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
            },
            "put": {
                "operationId": f"replace{r.kind}",
                "x-kubernetes-action": "put",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
            },
        }
        paths[f"{scope}/{r.plural}"] = {
            "post": {
                "operationId": f"create{r.kind}",
                "x-kubernetes-action": "post",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": {"201": {"description": "Created"}},
            },
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }


def _group_versions() -> list[str]:
    seen: list[str] = []
    for r in RESOURCES:
        if r.group_version not in seen:
            seen.append(r.group_version)
    return seen


def _hash(group_version: str) -> str:
    text = json.dumps(_document(group_version), sort_keys=True)
    return hashlib.sha512(text.encode()).hexdigest()[:128].upper()


def serve(segments: list[str]):
    from .api import Response

    if segments == ["v3"]:
        return Response(
            200,
            {
                "paths": {
                    _gv_path(gv): {
                        "serverRelativeURL": f"/openapi/v3/{_gv_path(gv)}?hash={_hash(gv)}"
                    }
                    for gv in _group_versions()
                }
            },
        )
    if len(segments) >= 3 and segments[0] == "v3":
        rest = segments[1:]
        if rest[0] == "api" and len(rest) == 2:
            gv = rest[1]
        elif rest[0] == "apis" and len(rest) == 3:
            gv = f"{rest[1]}/{rest[2]}"
        else:
            gv = ""
        if gv in _group_versions():
            return Response(200, _document(gv), headers={"Cache-Control": "no-cache"})
    raise ApiError(404, "the server could not find the requested resource", "NotFound")
