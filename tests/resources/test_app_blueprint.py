"""The app blueprint parses with Cloudify's DSL parser and its operations and workflows resolve
to functions of the plugin."""

from __future__ import annotations

import importlib
from pathlib import Path

from dsl_parser.parser import parse_from_path

ROOT = Path(__file__).resolve().parents[2]
PLAN = parse_from_path(str(ROOT / "blueprints" / "k8s-app.yaml"))


def resolve(dotted: str):
    module, _, function = dotted.rpartition(".")
    return getattr(importlib.import_module(module), function)


def test_every_operation_is_a_function_of_the_plugin():
    for node in PLAN["nodes"]:
        operations = list(node["operations"].values())
        for rel in node["relationships"]:
            operations += rel["source_operations"].values()
        for op in operations:
            if op["operation"]:
                assert callable(resolve(op["operation"])), op["operation"]


def test_object_nodes_live_in_the_cluster_and_the_database_is_routed():
    nodes = {node["name"]: node for node in PLAN["nodes"]}
    for name, node in nodes.items():
        if "k8s.resources.Object" in node["type_hierarchy"]:
            targets = {r["type"]: r["target_id"] for r in node["relationships"]}
            assert targets.get("k8s.relationships.in_kubernetes") == "cluster", name
    database = {r["type"]: r["target_id"] for r in nodes["database"]["relationships"]}
    assert database["k8s.relationships.routes_to"] == "database_host"
    establish = next(
        r for r in nodes["database"]["relationships"] if r["type"] == "k8s.relationships.routes_to"
    )["source_operations"]["establish"]["operation"]
    assert establish == "k8s_cluster.resource_operations.publish_external"


def test_workflows_are_mapped_to_the_suites():
    for name in ("update_resources", "migrate_pods", "install", "uninstall"):
        assert callable(resolve(PLAN["workflows"][name]["operation"])), name
