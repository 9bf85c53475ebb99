"""The REST semantics: routing of API paths, CRUD verbs, subresources and watch.

Independent of HTTP: :meth:`Api.handle` takes a :class:`Request` and returns a
:class:`Response` (a JSON body, or a stream of watch events).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from . import GIT_VERSION, MAJOR, MINOR, openapi, protobuf, tables, timeutil
from .auth import Attributes, User, authorize
from .errors import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    invalid,
    not_found,
    success_status,
)
from .kinds import GENERATION_KEYS, Admission, validate_name
from .objects import (
    deleting,
    labels_of,
    new_uid,
    node_ready,
    pdb_status,
    pod_ready,
    random_suffix,
    set_condition,
)
from .patch import json_patch, merge_patch, strategic_merge
from .registry import Discovery, ResourceType, by_key, lookup
from .selectors import (
    fields_match,
    labels_match,
    labelselector_matches,
    parse_field_selector,
    parse_label_selector,
)
from .store import Store

VERBS_BY_METHOD = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
EVICTION_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    user: User

    @classmethod
    def build(
        cls, method: str, raw_path: str, headers: dict[str, str], body: bytes, user: User
    ) -> Request:
        path, _, qs = raw_path.partition("?")
        query = {k: v[0] for k, v in parse_qs(qs, keep_blank_values=True).items()}
        return cls(method, path, query, {k.lower(): v for k, v in headers.items()}, body, user)

    def json(self) -> Any:
        """The body as JSON data; protobuf bodies (kubectl's typed clients) are decoded."""
        if not self.body:
            return None
        ctype = self.headers.get("content-type", "").split(";")[0].strip()
        if ctype == protobuf.CONTENT_TYPE:
            return protobuf.decode(self.body)
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_request(
                f"the body of the request was in an unknown format - "
                f"accepted media types include: application/json: {exc}"
            ) from exc

    @property
    def dry_run(self) -> bool:
        return bool(self.query.get("dryRun"))

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("true", "1")


@dataclass
class Response:
    code: int
    body: Any = None  # dict/list -> JSON, str -> text
    content_type: str = "application/json"
    stream: Iterator[bytes | None] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Target:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


class Api:
    def __init__(
        self,
        store: Store,
        service_cidr: str,
        server_address: str = "",
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.admission = Admission(store, service_cidr)
        self.discovery = Discovery(server_address)
        self.on_change = on_change or (lambda: None)

    # --- entry --------------------------------------------------------------------------

    def handle(self, req: Request) -> Response:
        try:
            return self._handle(req)
        except ApiError as err:
            return Response(err.code, err.status())

    def _handle(self, req: Request) -> Response:
        segments = [s for s in req.path.split("/") if s]
        if not segments or segments[0] not in ("api", "apis"):
            return self._non_resource(req, segments)
        group_version, rest = self._split_group_version(segments)
        if group_version is None:
            authorize(req.user, Attributes("get", req.path, discovery=True))
            if req.method != "GET":
                raise ApiError(
                    405,
                    "the server does not allow this method on the requested resource",
                    "MethodNotAllowed",
                )
            return self._discovery(segments)
        if not rest:
            authorize(req.user, Attributes("get", req.path, discovery=True))
            doc = self.discovery.resource_list(group_version)
            if doc is None:
                raise ApiError(404, "the server could not find the requested resource", "NotFound")
            return Response(200, doc)
        watch_path = False
        if rest[0] == "watch":
            watch_path, rest = True, rest[1:]
        target = self._target(group_version, rest)
        verb = self._verb(req, target, watch_path)
        authorize(
            req.user,
            Attributes(
                verb,
                req.path,
                resource=target.rt.plural,
                group=target.rt.group,
                namespace=target.namespace or "",
                name=target.name or "",
                subresource=target.subresource or "",
            ),
        )
        return self._dispatch(req, target, verb)

    @staticmethod
    def _split_group_version(segments: list[str]) -> tuple[str | None, list[str]]:
        if segments[0] == "api":
            if len(segments) < 2:
                return None, []
            return segments[1], segments[2:]
        if len(segments) < 3:
            return None, []
        return f"{segments[1]}/{segments[2]}", segments[3:]

    def _target(self, group_version: str, rest: list[str]) -> Target:
        def missing() -> ApiError:
            return ApiError(404, "the server could not find the requested resource", "NotFound")

        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            candidate = lookup(group_version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        rt = lookup(group_version, rest[0])
        if rt is None or len(rest) > 3:
            raise missing()
        if namespace is not None and not rt.namespaced:
            raise missing()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub and sub not in {s[0] for s in rt.subresources}:
            raise missing()
        return Target(rt, namespace, name, sub)

    def _verb(self, req: Request, target: Target, watch_path: bool) -> str:
        if req.method == "GET":
            if target.name:
                return "watch" if watch_path else "get"
            return "watch" if (watch_path or req.flag("watch")) else "list"
        if req.method == "DELETE" and not target.name:
            return "deletecollection"
        verb = VERBS_BY_METHOD.get(req.method)
        if verb is None:
            raise ApiError(
                405,
                "the server does not allow this method on the requested resource",
                "MethodNotAllowed",
            )
        return verb

    # --- non-resource -------------------------------------------------------------------

    def _non_resource(self, req: Request, segments: list[str]) -> Response:
        authorize(req.user, Attributes("get" if req.method == "GET" else "post", req.path))
        if req.method != "GET":
            raise ApiError(
                405,
                "the server does not allow this method on the requested resource",
                "MethodNotAllowed",
            )
        head = segments[0] if segments else ""
        if head in ("healthz", "livez", "readyz"):
            if req.flag("verbose"):
                return Response(
                    200,
                    f"[+]ping ok\n[+]etcd ok\n{head} check passed\n",
                    "text/plain; charset=utf-8",
                )
            return Response(200, "ok", "text/plain; charset=utf-8")
        if req.path.rstrip("/") == "/version":
            return Response(200, version_info())
        if head == "openapi":
            return openapi.serve(segments[1:])
        if not segments:
            paths = [
                "/api",
                "/api/v1",
                "/apis",
                "/healthz",
                "/livez",
                "/readyz",
                "/version",
                "/openapi/v2",
                "/openapi/v3",
            ]
            paths += [f"/apis/{g}" for g in sorted({r.split("/")[0] for r in _group_versions()})]
            return Response(200, {"paths": sorted(paths)})
        raise ApiError(404, "the server could not find the requested resource", "NotFound")

    def _discovery(self, segments: list[str]) -> Response:
        if segments == ["api"]:
            return Response(200, self.discovery.api_versions())
        if segments == ["apis"]:
            return Response(200, self.discovery.api_group_list())
        if len(segments) == 2:
            try:
                return Response(200, self.discovery.api_group(segments[1]))
            except KeyError:
                pass
        raise ApiError(404, "the server could not find the requested resource", "NotFound")

    # --- dispatch -----------------------------------------------------------------------

    def _dispatch(self, req: Request, t: Target, verb: str) -> Response:
        rt = t.rt
        if verb in ("list", "watch") and not t.name:
            if verb == "watch":
                return self.watch(req, rt, t.namespace)
            return self.list(req, rt, t.namespace)
        if verb == "watch":  # /watch/.../<name>
            req.query["fieldSelector"] = f"metadata.name={t.name}"
            return self.watch(req, rt, t.namespace)
        if rt.namespaced and t.namespace is None:
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        ns = t.namespace or ""
        if verb == "deletecollection":
            return self.delete_collection(req, rt, ns)
        if verb == "create" and not t.name:
            if rt.key == "/bindings":
                body = req.json() or {}
                return self.bind(req, ns, body.get("metadata", {}).get("name", ""), body)
            return self.create(req, rt, ns)
        assert t.name is not None
        sub = t.subresource
        if sub == "eviction" and verb == "create":
            return self.evict(req, ns, t.name)
        if sub == "binding" and verb == "create":
            return self.bind(req, ns, t.name, req.json() or {})
        if sub == "scale":
            return self.scale(req, rt, ns, t.name, verb)
        if verb == "get":
            return self.get(req, rt, ns, t.name)
        if verb == "update":
            return self.update(req, rt, ns, t.name, sub)
        if verb == "patch":
            return self.patch(req, rt, ns, t.name, sub)
        if verb == "delete" and not sub:
            return self.delete(req, rt, ns, t.name)
        raise ApiError(
            405,
            "the server does not allow this method on the requested resource",
            "MethodNotAllowed",
        )

    # --- reads --------------------------------------------------------------------------

    def _existing(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any]:
        obj = self.store.get(rt.key, ns, name)
        if obj is None:
            raise not_found(rt.plural, rt.group, name)
        return obj

    def get(self, req: Request, rt: ResourceType, ns: str, name: str) -> Response:
        obj = self._existing(rt, ns, name)
        if tables.wants_table(req.headers.get("accept", "")):
            return Response(
                200, tables.to_table(rt, [obj], req.query, self.store, str(self.store.rv))
            )
        return Response(200, obj)

    def _selected(self, req: Request, rt: ResourceType, ns: str | None) -> list[dict[str, Any]]:
        labels = parse_label_selector(req.query.get("labelSelector"))
        fields = parse_field_selector(req.query.get("fieldSelector"))
        return [
            o
            for o in self.store.list(rt.key, ns)
            if labels_match(labels, labels_of(o)) and fields_match(fields, o)
        ]

    def list(self, req: Request, rt: ResourceType, ns: str | None) -> Response:
        with self.store.lock:
            items = self._selected(req, rt, ns)
            rv = str(self.store.rv)
        if tables.wants_table(req.headers.get("accept", "")):
            return Response(200, tables.to_table(rt, items, req.query, self.store, rv))
        return Response(
            200,
            {
                "kind": rt.list_kind,
                "apiVersion": rt.group_version,
                "metadata": {"resourceVersion": rv},
                "items": items,
            },
        )

    # --- create -------------------------------------------------------------------------

    def _check_body(self, rt: ResourceType, body: Any, ns: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        kind = body.get("kind")
        api_version = body.get("apiVersion")
        if kind and kind != rt.kind:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the "
                f"expected API version ({rt.group_version})"
                if api_version != rt.group_version
                else f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )
        if api_version and api_version != rt.group_version:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the "
                f"expected API version ({rt.group_version})"
            )
        body = copy.deepcopy(body)
        body["kind"] = rt.kind
        body["apiVersion"] = rt.group_version
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise bad_request(
                    "the namespace of the provided object does not match the "
                    "namespace sent on the request"
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        return body

    def _require_namespace(self, rt: ResourceType, ns: str) -> None:
        if not rt.namespaced:
            return
        namespace = self.store.get("/namespaces", "", ns)
        if namespace is None:
            raise not_found("namespaces", "", ns)
        if deleting(namespace):
            raise ApiError(
                403,
                f"{rt.plural} is forbidden: unable to create new content in "
                f"namespace {ns} because it is being terminated",
                "Forbidden",
            )

    def create(self, req: Request, rt: ResourceType, ns: str, body: Any = None) -> Response:
        body = self._check_body(rt, req.json() if body is None else body, ns)
        with self.store.lock:
            obj = self.create_object(rt, body, req.user, dry_run=req.dry_run)
        self.on_change()
        return Response(201, obj)

    def create_object(
        self, rt: ResourceType, obj: dict[str, Any], user: User, dry_run: bool = False
    ) -> dict[str, Any]:
        """Create a checked object (kind/apiVersion/namespace set). Caller holds the lock."""
        meta = obj["metadata"]
        ns = meta.get("namespace", "")
        self._require_namespace(rt, ns)
        if not meta.get("name"):
            if meta.get("generateName"):
                for _ in range(10):
                    meta["name"] = meta["generateName"] + random_suffix()
                    if self.store.get(rt.key, ns, meta["name"]) is None:
                        break
            else:
                raise invalid(
                    rt.kind,
                    rt.group,
                    "",
                    [("metadata.name", "Required value: name or generateName is required")],
                )
        validate_name(rt, meta["name"])
        if self.store.get(rt.key, ns, meta["name"]) is not None:
            raise already_exists(rt.plural, rt.group, meta["name"])
        for key in (
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
        ):
            meta.pop(key, None)
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = timeutil.rfc3339()
        if rt.key in GENERATION_KEYS:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        self.admission.on_create(rt, obj, user)
        if dry_run:
            meta["resourceVersion"] = ""
            return obj
        return self.store.put(rt.key, obj)

    # --- update / patch -----------------------------------------------------------------

    def update(
        self, req: Request, rt: ResourceType, ns: str, name: str, sub: str | None
    ) -> Response:
        body = self._check_body(rt, req.json(), ns)
        if body["metadata"].get("name") not in (None, "", name):
            raise bad_request(
                "the name of the object ({}) does not match the name on the URL ({})".format(
                    body["metadata"].get("name"), name
                )
            )
        body["metadata"]["name"] = name
        with self.store.lock:
            old = self._existing(rt, ns, name)
            wanted_rv = body["metadata"].get("resourceVersion")
            if wanted_rv and wanted_rv != old["metadata"].get("resourceVersion"):
                raise conflict(rt.plural, rt.group, name)
            obj = self.write(rt, body, old, req.user, sub, dry_run=req.dry_run)
        self.on_change()
        return Response(200, obj)

    def patch(
        self, req: Request, rt: ResourceType, ns: str, name: str, sub: str | None
    ) -> Response:
        ctype = req.headers.get("content-type", "").split(";")[0].strip()
        try:
            patch = req.json()
        except ApiError:
            if ctype == "application/apply-patch+yaml":
                raise ApiError(
                    415,
                    "this server applies server-side apply bodies written in "
                    "JSON only (YAML is not supported)",
                    "UnsupportedMediaType",
                ) from None
            raise
        with self.store.lock:
            old = self.store.get(rt.key, ns, name)
            if old is None:
                if ctype == "application/apply-patch+yaml" and not sub:
                    body = self._check_body(rt, patch, ns)
                    body["metadata"]["name"] = name
                    obj = self.create_object(rt, body, req.user, dry_run=req.dry_run)
                    self.on_change()
                    return Response(201, obj)
                raise not_found(rt.plural, rt.group, name)
            new = apply_patch(ctype, old, patch)
            if not isinstance(new, dict):
                raise bad_request("patched object is not a JSON object")
            new = self._check_body(rt, new, ns)
            if new["metadata"].get("name") != name:
                raise bad_request("the name of the object does not match the name on the URL")
            if isinstance(patch, dict):
                wanted_rv = (patch.get("metadata") or {}).get("resourceVersion")
                if wanted_rv and wanted_rv != old["metadata"].get("resourceVersion"):
                    raise conflict(rt.plural, rt.group, name)
            obj = self.write(rt, new, old, req.user, sub, dry_run=req.dry_run)
        self.on_change()
        return Response(200, obj)

    def write(
        self,
        rt: ResourceType,
        new: dict[str, Any],
        old: dict[str, Any],
        user: User,
        sub: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Store ``new`` as the next version of ``old``. Caller holds the lock."""
        if sub in ("status", "approval"):
            merged = copy.deepcopy(old)
            if sub == "approval":
                conds = [
                    c
                    for c in (new.get("status") or {}).get("conditions") or []
                    if c.get("type") in ("Approved", "Denied")
                ]
                merged.setdefault("status", {})["conditions"] = conds
            else:
                merged["status"] = new.get("status", {})
            new = merged
        elif sub == "finalize":
            merged = copy.deepcopy(old)
            merged["spec"] = new.get("spec", {})
            new = merged
        else:
            if rt.has_status:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            self.admission.on_update(rt, new, old, user)
        meta = new["metadata"]
        old_meta = old["metadata"]
        for key in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
            "name",
        ):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta.pop("managedFields", None)
        if rt.key in GENERATION_KEYS:
            generation = old_meta.get("generation", 1)
            if new.get("spec") != old.get("spec"):
                generation += 1
            meta["generation"] = generation
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        if new == old:
            return old
        if dry_run:
            return new
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and meta.get("deletionGracePeriodSeconds", 0) == 0
        ):
            final = self.store.remove(rt.key, new)
            return final or new
        return self.store.put(rt.key, new)

    # --- scale --------------------------------------------------------------------------

    def scale(self, req: Request, rt: ResourceType, ns: str, name: str, verb: str) -> Response:
        with self.store.lock:
            obj = self._existing(rt, ns, name)
            current = scale_of(obj)
            if verb == "get":
                return Response(200, current)
            if verb == "update":
                wanted = req.json() or {}
            elif verb == "patch":
                ctype = req.headers.get("content-type", "").split(";")[0].strip()
                wanted = apply_patch(ctype, current, req.json())
            else:
                raise ApiError(405, "method not allowed", "MethodNotAllowed")
            replicas = (wanted.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise invalid(
                    "Scale",
                    "autoscaling",
                    name,
                    [
                        (
                            "spec.replicas",
                            f"Invalid value: {replicas}: must be greater than or equal to 0",
                        )
                    ],
                )
            new = copy.deepcopy(obj)
            new.setdefault("spec", {})["replicas"] = replicas
            stored = self.write(rt, new, obj, req.user, dry_run=req.dry_run)
        self.on_change()
        return Response(200, scale_of(stored))

    # --- delete -------------------------------------------------------------------------

    def _delete_options(self, req: Request) -> dict[str, Any]:
        options = req.json() or {}
        if not isinstance(options, dict):
            raise bad_request("DeleteOptions must be an object")
        if "gracePeriodSeconds" in req.query:
            options["gracePeriodSeconds"] = int(req.query["gracePeriodSeconds"])
        if "propagationPolicy" in req.query:
            options["propagationPolicy"] = req.query["propagationPolicy"]
        if req.query.get("orphanDependents") == "true":
            options["propagationPolicy"] = "Orphan"
        if options.get("orphanDependents") is True:
            options["propagationPolicy"] = "Orphan"
        if req.dry_run:
            options["dryRun"] = ["All"]
        return options

    def delete(self, req: Request, rt: ResourceType, ns: str, name: str) -> Response:
        options = self._delete_options(req)
        with self.store.lock:
            obj = self._existing(rt, ns, name)
            result = self.delete_object(rt, obj, options)
        self.on_change()
        if rt.key in ("/pods", "/namespaces") or (result is not obj and deleting(result or {})):
            return Response(200, result)
        return Response(
            200,
            success_status(
                200,
                {
                    "name": name,
                    "group": rt.group,
                    "kind": rt.plural,
                    "uid": obj["metadata"]["uid"],
                },
            ),
        )

    def delete_collection(self, req: Request, rt: ResourceType, ns: str) -> Response:
        options = self._delete_options(req)
        with self.store.lock:
            for obj in self._selected(req, rt, ns):
                self.delete_object(rt, obj, options)
        self.on_change()
        return Response(200, success_status())

    def delete_object(
        self, rt: ResourceType, obj: dict[str, Any], options: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Delete with DeleteOptions semantics. Caller holds the lock. Returns the final object
        (with deletionTimestamp when deletion is graceful or waits for finalizers)."""
        meta = obj["metadata"]
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise conflict(
                rt.plural,
                rt.group,
                meta["name"],
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in "
                f"object meta: {meta.get('uid')}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise conflict(
                rt.plural,
                rt.group,
                meta["name"],
                f"Precondition failed: ResourceVersion in precondition: "
                f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                f"{meta.get('resourceVersion')}",
            )
        if options.get("dryRun"):
            return obj
        if rt.key == "/namespaces" and meta["name"] in PROTECTED_NAMESPACES:
            raise ApiError(
                403,
                f'namespaces "{meta["name"]}" is forbidden: this namespace may not be deleted',
                "Forbidden",
            )
        policy = options.get("propagationPolicy") or "Background"
        if policy == "Orphan":
            self._orphan_dependents(meta.get("uid", ""))
        if rt.key == "/pods":
            grace = self._pod_grace(obj, options)
            if grace > 0:
                if deleting(obj) and (meta.get("deletionGracePeriodSeconds") or 0) <= grace:
                    return obj
                new = copy.deepcopy(obj)
                new["metadata"]["deletionTimestamp"] = timeutil.rfc3339(time.time() + grace)
                new["metadata"]["deletionGracePeriodSeconds"] = grace
                return self.store.put(rt.key, new)
        if rt.key == "/namespaces":
            # like the real server: Terminating now, emptied and removed by the namespace
            # controller (Controllers.namespaces)
            if deleting(obj):
                return obj
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = timeutil.rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["status"] = {"phase": "Terminating"}
            return self.store.put(rt.key, new)
        if meta.get("finalizers"):
            if deleting(obj):
                return obj
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = timeutil.rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            return self.store.put(rt.key, new)
        if policy == "Foreground":
            self._delete_dependents(meta.get("uid", ""))
        return self.store.remove(rt.key, obj)

    def _pod_grace(self, pod: dict[str, Any], options: dict[str, Any]) -> int:
        spec = pod.get("spec") or {}
        grace = options.get("gracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        grace = max(0, int(grace))
        node = spec.get("nodeName")
        if not node or self.store.get("/nodes", "", node) is None:
            return 0
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return 0
        return grace

    def _dependents(self, uid: str) -> list[tuple[ResourceType, dict[str, Any]]]:
        found = []
        for key, bucket in self.store.objects.items():
            for obj in list(bucket.values()):
                refs = obj.get("metadata", {}).get("ownerReferences") or []
                if any(r.get("uid") == uid for r in refs):
                    found.append((by_key(key), obj))
        return found

    def _orphan_dependents(self, uid: str) -> None:
        for rt, obj in self._dependents(uid):
            new = copy.deepcopy(obj)
            refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            self.store.put(rt.key, new)

    def _delete_dependents(self, uid: str) -> None:
        for rt, obj in self._dependents(uid):
            current = self.store.get(
                rt.key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
            )
            if current is not None:
                self.delete_object(rt, current, {"propagationPolicy": "Foreground"})

    def finalize_namespace(self, namespace: dict[str, Any]) -> bool:
        """Delete everything in a Terminating namespace (pods gracefully, like the namespace
        controller) and remove the namespace once it is empty. Caller holds the lock."""
        ns = namespace["metadata"]["name"]
        remaining = 0
        for key, bucket in list(self.store.objects.items()):
            for (obj_ns, _), obj in list(bucket.items()):
                if obj_ns != ns or not ns:
                    continue
                remaining += 1
                if not deleting(obj):
                    self.delete_object(by_key(key), obj, {"propagationPolicy": "Background"})
        if remaining == 0:
            self.store.remove("/namespaces", namespace)
            return True
        return False

    # --- pods: eviction and binding -----------------------------------------------------

    def evict(self, req: Request, ns: str, name: str) -> Response:
        body = req.json() or {}
        options = dict(body.get("deleteOptions") or {})
        if req.dry_run:
            options["dryRun"] = ["All"]
        pods = by_key("/pods")
        with self.store.lock:
            pod = self._existing(pods, ns, name)
            self._check_disruption_budget(pod, dry_run=req.dry_run)
            self.delete_object(pods, pod, options)
        self.on_change()
        return Response(201, success_status(201))

    def _check_disruption_budget(self, pod: dict[str, Any], dry_run: bool) -> None:
        phase = pod.get("status", {}).get("phase")
        if phase in ("Succeeded", "Failed", "Pending") or deleting(pod):
            return
        ns = pod["metadata"].get("namespace", "")
        pdbs = [
            p
            for p in self.store.list("policy/poddisruptionbudgets", ns)
            if labelselector_matches((p.get("spec") or {}).get("selector"), labels_of(pod))
        ]
        if not pdbs:
            return
        if len(pdbs) > 1:
            raise ApiError(
                500,
                "This pod has more than one PodDisruptionBudget, which the "
                "eviction subresource does not support.",
                "InternalError",
            )
        pdb = pdbs[0]
        status = pdb_status(pdb, self.store.list("/pods", ns), self.controller_replicas(ns))
        policy = (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy", "IfHealthyBudget")
        if not pod_ready(pod):
            if policy == "AlwaysAllow":
                return
            if status["currentHealthy"] >= status["desiredHealthy"] > 0:
                return
        elif status["disruptionsAllowed"] > 0:
            if not dry_run:
                new = copy.deepcopy(pdb)
                status["disruptionsAllowed"] -= 1
                status.setdefault("disruptedPods", {})[pod["metadata"]["name"]] = timeutil.rfc3339()
                new["status"] = status
                self.store.put("policy/poddisruptionbudgets", new)
            return
        raise ApiError(
            429,
            EVICTION_MESSAGE,
            "TooManyRequests",
            {
                "causes": [
                    {
                        "reason": "DisruptionBudget",
                        "message": f"The disruption budget {pdb['metadata']['name']} needs "
                        f"{status['desiredHealthy']} healthy pods and has "
                        f"{status['currentHealthy']} currently",
                    }
                ]
            },
        )

    def controller_replicas(self, ns: str) -> dict[str, int]:
        result: dict[str, int] = {}
        for key in ("apps/replicasets", "apps/statefulsets", "/replicationcontrollers"):
            for obj in self.store.list(key, ns):
                result[obj["metadata"]["uid"]] = int((obj.get("spec") or {}).get("replicas", 1))
        for ds in self.store.list("apps/daemonsets", ns):
            result[ds["metadata"]["uid"]] = int(
                (ds.get("status") or {}).get("desiredNumberScheduled", 0)
            )
        return result

    def bind(self, req: Request, ns: str, name: str, body: dict[str, Any]) -> Response:
        target = (body.get("target") or {}).get("name")
        if not target:
            raise invalid("Binding", "", name, [("target.name", "Required value")])
        pods = by_key("/pods")
        with self.store.lock:
            pod = self._existing(pods, ns, name)
            current = (pod.get("spec") or {}).get("nodeName")
            if current:
                raise conflict(
                    "pods/binding", "", name, f'pod {name} is already assigned to node "{current}"'
                )
            if not req.dry_run:
                self.bind_pod(pod, target)
        self.on_change()
        return Response(201, success_status(201))

    def bind_pod(self, pod: dict[str, Any], node: str) -> dict[str, Any]:
        new = copy.deepcopy(pod)
        new.setdefault("spec", {})["nodeName"] = node
        set_condition(new, {"type": "PodScheduled", "status": "True"}, timeutil.rfc3339())
        return self.store.put("/pods", new)

    # --- watch --------------------------------------------------------------------------

    def watch(self, req: Request, rt: ResourceType, ns: str | None) -> Response:
        labels = parse_label_selector(req.query.get("labelSelector"))
        fields = parse_field_selector(req.query.get("fieldSelector"))
        timeout = float(req.query.get("timeoutSeconds") or 1800)
        as_table = tables.wants_table(req.headers.get("accept", ""))
        rv_param = req.query.get("resourceVersion", "")
        bookmarks = req.flag("allowWatchBookmarks")

        def selected(obj: dict[str, Any] | None) -> bool:
            if obj is None:
                return False
            if ns is not None and obj["metadata"].get("namespace", "") != ns:
                return False
            return labels_match(labels, labels_of(obj)) and fields_match(fields, obj)

        def encode(kind: str, obj: dict[str, Any]) -> bytes:
            if as_table:
                obj = tables.to_table(
                    rt, [obj], req.query, self.store, obj["metadata"].get("resourceVersion", "")
                )
            return (json.dumps({"type": kind, "object": obj}) + "\n").encode()

        with self.store.lock:
            initial: list[bytes] = []
            if rv_param in ("", "0"):
                start = self.store.rv
                initial = [encode("ADDED", o) for o in self.store.list(rt.key, ns) if selected(o)]
            else:
                try:
                    start = int(rv_param)
                except ValueError:
                    raise bad_request(f"invalid resource version {rv_param!r}") from None
                if start < self.store.log_start:
                    gone = ApiError(
                        410,
                        f"too old resource version: {start} ({self.store.log_start + 1})",
                        "Expired",
                    )
                    initial = [
                        (json.dumps({"type": "ERROR", "object": gone.status()}) + "\n").encode()
                    ]
                    start = -1

        def stream() -> Iterator[bytes | None]:
            yield from initial
            if start < 0:
                return
            position = start
            deadline = time.monotonic() + timeout
            last_bookmark = time.monotonic()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                with self.store.cond:
                    if self.store.rv <= position:
                        self.store.cond.wait(min(remaining, 1.0))
                    changes = self.store.changes_since(position)
                    current_rv = self.store.rv
                out = []
                for change in changes:
                    position = change.rv
                    if change.key != rt.key:
                        continue
                    now_in = change.type != "DELETED" and selected(change.obj)
                    was_in = selected(change.old)
                    if change.type == "DELETED":
                        if was_in:
                            out.append(encode("DELETED", change.obj))
                    elif now_in and was_in:
                        out.append(encode("MODIFIED", change.obj))
                    elif now_in:
                        out.append(encode("ADDED", change.obj))
                    elif was_in:
                        out.append(encode("DELETED", change.obj))
                position = max(position, current_rv)
                if out:
                    yield b"".join(out)
                elif bookmarks and time.monotonic() - last_bookmark > 30:
                    last_bookmark = time.monotonic()
                    yield (
                        json.dumps(
                            {
                                "type": "BOOKMARK",
                                "object": {
                                    "kind": rt.kind,
                                    "apiVersion": rt.group_version,
                                    "metadata": {"resourceVersion": str(position)},
                                },
                            }
                        )
                        + "\n"
                    ).encode()
                else:
                    yield None  # lets the server check the client is still there

        return Response(200, None, "application/json", stream=stream())

    # --- bootstrap ----------------------------------------------------------------------

    def ensure_defaults(self, root_ca_pem: str | None, port: int, address: str = "") -> None:
        """Objects a fresh cluster has: namespaces, the kubernetes Service and its Endpoints."""
        system = User("system:apiserver", ["system:masters"], "x509")
        with self.store.lock:
            for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
                if self.store.get("/namespaces", "", ns) is None:
                    self.create_object(
                        by_key("/namespaces"),
                        {
                            "kind": "Namespace",
                            "apiVersion": "v1",
                            "metadata": {"name": ns},
                        },
                        system,
                    )
            if self.store.get("/services", "default", "kubernetes") is None:
                first = str(self.admission.service_net.network_address + 1)
                self.create_object(
                    by_key("/services"),
                    {
                        "kind": "Service",
                        "apiVersion": "v1",
                        "metadata": {
                            "name": "kubernetes",
                            "namespace": "default",
                            "labels": {"component": "apiserver", "provider": "kubernetes"},
                        },
                        "spec": {
                            "clusterIP": first,
                            "ports": [
                                {
                                    "name": "https",
                                    "port": 443,
                                    "protocol": "TCP",
                                    "targetPort": port,
                                }
                            ],
                        },
                    },
                    system,
                )
            if address and self.store.get("/endpoints", "default", "kubernetes") is None:
                self.create_object(
                    by_key("/endpoints"),
                    {
                        "kind": "Endpoints",
                        "apiVersion": "v1",
                        "metadata": {
                            "name": "kubernetes",
                            "namespace": "default",
                            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
                        },
                        "subsets": [
                            {
                                "addresses": [{"ip": address}],
                                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
                            }
                        ],
                    },
                    system,
                )


def _group_versions() -> list[str]:
    from .registry import RESOURCES

    return sorted({r.group_version for r in RESOURCES if r.group})


def version_info() -> dict[str, str]:
    import platform

    return {
        "major": MAJOR,
        "minor": MINOR,
        "emulationMajor": MAJOR,
        "emulationMinor": MINOR,
        "minCompatibilityMajor": MAJOR,
        "minCompatibilityMinor": str(int(MINOR) - 1),
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": f"linux/{'arm64' if platform.machine() in ('aarch64', 'arm64') else 'amd64'}",
    }


def apply_patch(ctype: str, old: dict[str, Any], patch: Any) -> Any:
    if ctype == "application/merge-patch+json":
        return merge_patch(old, patch)
    if ctype in ("application/strategic-merge-patch+json", "application/apply-patch+yaml"):
        if not isinstance(patch, dict):
            raise bad_request("strategic merge patch must be a JSON object")
        return strategic_merge(old, patch)
    if ctype == "application/json-patch+json":
        return json_patch(old, patch)
    raise ApiError(
        415,
        f"the body of the request was in an unknown format - accepted media "
        f"types include: application/json-patch+json, "
        f"application/merge-patch+json, application/apply-patch+yaml, "
        f'application/strategic-merge-patch+json (got "{ctype}")',
        "UnsupportedMediaType",
    )


def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    selector = (obj.get("spec") or {}).get("selector") or {}
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(parts),
        },
    }


__all__ = ["Api", "Request", "Response", "apply_patch", "node_ready", "version_info"]
