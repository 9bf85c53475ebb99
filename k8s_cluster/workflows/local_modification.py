"""Deployment modifications in Cloudify's local mode, so that the stock `scale_entity` runs there.

A Cloudify Manager keeps deployment modifications in its database: `start` adds the new node
instances (and the relationships existing instances gain to them), `finish` deletes the removed
ones, `rollback` restores the instances as they were before `start`. Local mode's workflow
context handler raises NotImplementedError for all of it. `LocalModificationHandler` does the
same work on the local storage (the files under $CFY_WORKDIR, or memory), with the DSL parser's
own `modify_deployment` computing what changes; `local_modifications(ctx)` swaps it in for the
duration of a workflow when `ctx.local`. On a manager it does nothing: the manager's handler is
used as is.

The modifications themselves are kept in the deployment's record (deployment.json), under
MODIFICATIONS_KEY, in the manager's shape: id, status, modified_nodes, node_instances
(added_and_related, removed_and_related, before_modification, ...), created_at, ended_at.
"""

from __future__ import annotations

import copy
import json
import os
import random
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from cloudify.models_states import DeploymentModificationState as State
from cloudify.workflows.local import FileStorage, InMemoryStorage
from cloudify.workflows.workflow_context import LocalCloudifyWorkflowContextHandler, Modification
from cloudify_rest_client.deployment_modifications import DeploymentModification
from cloudify_rest_client.node_instances import NodeInstance
from dsl_parser.multi_instance import modify_deployment

MODIFICATIONS_KEY = "deployment_modifications"


@contextmanager
def local_modifications(ctx) -> Iterator[None]:
    """Give a local workflow deployment modifications; on a manager leave the handler alone."""
    if not ctx.local:
        yield
        return
    previous = ctx.internal.handler
    ctx.internal.handler = LocalModificationHandler(previous.workflow_ctx, previous.storage)
    try:
        yield
    finally:
        ctx.internal.handler = previous


class ModificationError(RuntimeError):
    pass


class LocalModificationHandler(LocalCloudifyWorkflowContextHandler):
    """The local handler, plus start/finish/rollback/list of deployment modifications."""

    def __init__(self, workflow_ctx, storage) -> None:
        super().__init__(workflow_ctx, storage)
        self._store = _LocalDeployment(storage)
        self._lock = threading.RLock()

    def start_deployment_modification(self, nodes: dict) -> Modification:
        with self._lock:
            started = [m["id"] for m in self._store.modifications() if m["status"] == State.STARTED]
            if started:
                raise ModificationError(
                    f"deployment {self._store.name} has a deployment modification still started "
                    f"({', '.join(started)}): run scale with abort_started=true to roll it back"
                )
            record = self._new_modification(nodes)
            self._store.save_modification(record)  # first: an interrupted start can be rolled back
            self._add_instances(record["node_instances"]["added_and_related"])
            return Modification(self.workflow_ctx, DeploymentModification(record))

    def finish_deployment_modification(self, modification) -> None:
        with self._lock:
            record = self._started(modification)
            self._remove_instances(record["node_instances"]["removed_and_related"])
            self._store.set_instance_counts(record["modified_nodes"])
            self._end(record, State.FINISHED)

    def rollback_deployment_modification(self, modification) -> None:
        with self._lock:
            record = self._started(modification)
            before = {i["id"]: i for i in record["node_instances"]["before_modification"]}
            current = self._store.instances()
            record["node_instances"]["before_rollback"] = current
            for instance in current:
                if instance["id"] not in before:
                    self._store.delete_instance(instance["id"])
            for instance in before.values():
                self._store.put_instance(instance)
            self._end(record, State.ROLLEDBACK)

    def list_deployment_modifications(self, status: str) -> list[Modification]:
        return [
            Modification(self.workflow_ctx, DeploymentModification(record))
            for record in self._store.modifications()
            if status is None or record["status"] == status
        ]

    # --- start ---------------------------------------------------------------------------------

    def _new_modification(self, modified_nodes: dict) -> dict:
        instances = self._store.instances()
        # The parser reads a node's instance count from `capabilities` when present: that is the
        # count at deployment creation. Without it, it reads number_of_instances, kept current.
        nodes = [_without(node, "capabilities") for node in self._store.nodes()]
        modification_id = self._modification_id(modified_nodes)
        with _seeded_random(modification_id):
            changes = modify_deployment(
                nodes=nodes,
                previous_nodes=copy.deepcopy(nodes),
                previous_node_instances=copy.deepcopy(instances),
                modified_nodes=modified_nodes,
                scaling_groups=copy.deepcopy(self.scaling_groups),
            )
        changes["before_modification"] = instances
        _number_added(changes["added_and_related"], instances)
        return {
            "id": modification_id,
            "deployment_id": self._store.name,
            "status": State.STARTED,
            "modified_nodes": modified_nodes,
            "node_instances": changes,
            "context": {
                "deployment_id": self._store.name,
                "execution_id": self.workflow_ctx.execution_id,
                "workflow_id": self.workflow_ctx.workflow_id,
            },
            "created_at": _now(),
            "ended_at": None,
        }

    def _modification_id(self, modified_nodes: dict) -> str:
        """Derived from the deployment, the execution and the request; it also seeds the new
        instance ids, so the same start, repeated, makes the same instances (and host names)."""
        execution = self.workflow_ctx.execution_id
        earlier = sum(
            1 for m in self._store.modifications() if m["context"].get("execution_id") == execution
        )
        request = json.dumps(modified_nodes, sort_keys=True)
        name = f"{self._store.name}/{execution}/{earlier}/{request}"
        return str(uuid.uuid5(uuid.NAMESPACE_URL, name))

    def _add_instances(self, added_and_related: list[dict]) -> None:
        nodes = {node["id"]: node for node in self._store.nodes()}
        for change in added_and_related:
            if change.get("modification") == "added":
                self._store.put_instance(_new_instance(change))
                continue
            instance = self._store.instance(change["id"])
            instance["relationships"] = _merged_relationships(
                nodes[instance["node_id"]], instance["relationships"], change["relationships"]
            )
            instance["version"] = instance.get("version", 0) + 1
            self._store.put_instance(instance)

    # --- finish and rollback -------------------------------------------------------------------

    def _remove_instances(self, removed_and_related: list[dict]) -> None:
        for change in removed_and_related:
            if change.get("modification") == "removed":
                self._store.delete_instance(change["id"])
                continue
            instance = self._store.instance(change["id"])
            gone = {rel["target_id"] for rel in change["relationships"]}
            instance["relationships"] = [
                rel for rel in instance["relationships"] if rel["target_id"] not in gone
            ]
            instance["version"] = instance.get("version", 0) + 1
            self._store.put_instance(instance)

    def _started(self, modification) -> dict:
        record = self._store.modification(modification["id"])
        if record["status"] != State.STARTED:
            raise ModificationError(
                f"deployment modification {record['id']} already ended ({record['status']})"
            )
        return record

    def _end(self, record: dict, status: str) -> None:
        record.update(status=status, ended_at=_now())
        self._store.save_modification(record)


# --- the local storage -------------------------------------------------------------------------


class _LocalDeployment:
    """The few storage operations a modification needs, on a local DeploymentStorage."""

    def __init__(self, storage) -> None:
        self._storage = storage
        self.name: str = storage.name

    def nodes(self) -> list[dict]:
        return [dict(node) for node in self._storage.get_nodes()]

    def instances(self) -> list[dict]:
        return [copy.deepcopy(dict(i)) for i in self._storage.get_node_instances()]

    def instance(self, instance_id: str) -> dict:
        return copy.deepcopy(dict(self._storage.get_node_instance(instance_id)))

    def put_instance(self, instance: dict) -> None:
        self._storage.store_instance(NodeInstance(copy.deepcopy(instance)))

    def delete_instance(self, instance_id: str) -> None:
        """Local storage has no delete: FileStorage keeps one JSON file per instance."""
        backend = self._storage._storage
        if isinstance(backend, FileStorage):
            os.remove(backend._instance_path(self.name, instance_id))
        elif isinstance(backend, InMemoryStorage):
            del backend._node_instances[self.name][instance_id]
        else:
            raise ModificationError(f"cannot delete node instances from {type(backend).__name__}")

    def modifications(self) -> list[dict]:
        return copy.deepcopy(self._deployment().get(MODIFICATIONS_KEY) or [])

    def modification(self, modification_id: str) -> dict:
        for record in self.modifications():
            if record["id"] == modification_id:
                return record
        raise ModificationError(f"no deployment modification {modification_id}")

    def save_modification(self, record: dict) -> None:
        records = [m for m in self.modifications() if m["id"] != record["id"]] + [record]
        self._set(**{MODIFICATIONS_KEY: records})

    def set_instance_counts(self, modified_nodes: dict) -> None:
        """What finish changes besides instances: the group's or node's current count."""
        deployment = self._deployment()
        plan, groups, nodes = deployment["plan"], deployment["scaling_groups"], deployment["nodes"]
        for entity, change in modified_nodes.items():
            count = {
                "current_instances": change["instances"],
                "planned_instances": change["instances"],
            }
            if entity in groups:
                groups[entity]["properties"].update(count)
                plan["scaling_groups"][entity]["properties"].update(count)
                continue
            for node in [nodes[entity], *(n for n in plan["nodes"] if n["id"] == entity)]:
                node["number_of_instances"] = change["instances"]
                node["capabilities"]["scalable"]["properties"].update(count)
        self._set(plan=plan, scaling_groups=groups, nodes=nodes)

    def _deployment(self) -> dict:
        return self._storage.get_deployment(self.name)

    def _set(self, **attributes: Any) -> None:
        self._storage.set_deployment_attributes(self.name, **attributes)
        self._storage.deployment.update(attributes)  # the copy this process reads the plan from


# --- helpers -----------------------------------------------------------------------------------


@contextmanager
def _seeded_random(seed: str) -> Iterator[None]:
    """The parser draws new instance ids from the random module: seed it, then restore it."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def _number_added(added_and_related: list[dict], existing: list[dict]) -> None:
    """Number added instances after their node's highest index, as a manager does: the index
    is how `scale` tells newer instances from older ones."""
    highest: dict[str, int] = {}
    for instance in existing:
        highest[instance["node_id"]] = max(highest.get(instance["node_id"], 0), _index(instance))
    added = [i for i in added_and_related if i.get("modification") == "added"]
    for instance in sorted(added, key=lambda i: i["id"]):
        highest[instance["node_id"]] = instance["index"] = highest.get(instance["node_id"], 0) + 1


def _index(instance: dict) -> int:
    return instance.get("index") or 0


def _new_instance(change: dict) -> dict:
    """A stored node instance, in the shape local mode gives the instances made at install."""
    instance = _without(change, "modification")
    instance.update(
        node_id=change["node_id"],
        name=change["node_id"],
        relationships=change.get("relationships", []),
        state="uninitialized",
        version=0,
        runtime_properties={},
        system_properties={},
    )
    return instance


def _merged_relationships(node: dict, current: list[dict], added: list[dict]) -> list[dict]:
    """The instance's relationships plus the new ones, in the order the node declares them."""
    present = {(rel["target_id"], rel["type"]) for rel in current}
    merged = current + [rel for rel in added if (rel["target_id"], rel["type"]) not in present]
    order = [rel["target_id"] for rel in node.get("relationships", [])]
    rank = {target: place for place, target in reversed(list(enumerate(order)))}
    return sorted(merged, key=lambda rel: rank.get(rel["target_name"], len(order)))


def _without(mapping: dict, key: str) -> dict:
    return {k: copy.deepcopy(v) for k, v in mapping.items() if k != key}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
