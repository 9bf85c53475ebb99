"""Every blueprint parses with Cloudify's real DSL parser, offline, and has the expected shape."""

import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from dsl_parser.parser import parse_from_path

ROOT = Path(__file__).resolve().parents[2]
BLUEPRINTS = sorted(p for p in (ROOT / "blueprints").glob("*.yaml") if p.name != "plugin.yaml")
CFY = Path(sys.executable).with_name("cfy")


@pytest.mark.parametrize("blueprint", BLUEPRINTS, ids=lambda p: p.name)
def test_cfy_blueprints_validate_passes(blueprint, tmp_path):
    result = subprocess.run(
        [str(CFY), "blueprints", "validate", str(blueprint)],
        capture_output=True,
        text=True,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout


def test_cluster_blueprint_shape():
    plan = parse_from_path(str(ROOT / "blueprints" / "k8s-cluster.yaml"))
    nodes = {node["name"]: node for node in plan["nodes"]}
    assert set(nodes) == {"cluster", "control_plane_host", "worker_host", "control_plane", "worker"}
    worker_rels = {rel["type"]: rel["target_id"] for rel in nodes["worker"]["relationships"]}
    assert worker_rels == {
        "cloudify.relationships.contained_in": "worker_host",
        "k8s.relationships.joins": "control_plane",
        "k8s.relationships.in_cluster": "cluster",
    }
    assert plan["groups"]["workers"]["members"] == ["worker_host"]
    # the suite's own workflows replace Cloudify's install and uninstall
    assert plan["workflows"]["install"]["operation"] == "k8s_cluster.workflows.lifecycle.install"
    assert (
        plan["workflows"]["uninstall"]["operation"] == "k8s_cluster.workflows.lifecycle.uninstall"
    )
    # every operation points at a function that exists in the plugin
    import importlib

    modules = ("k8s_cluster.operations", "k8s_cluster.storage_operations")
    for node in plan["nodes"]:
        for op in node["operations"].values():
            if op["operation"]:
                module, _, function = op["operation"].rpartition(".")
                assert module in modules, op["operation"]
                assert callable(getattr(importlib.import_module(module), function)), op["operation"]


def test_every_input_has_a_type_or_default_and_a_description():
    plan = parse_from_path(str(ROOT / "blueprints" / "k8s-cluster.yaml"))
    for name, spec in plan["inputs"].items():
        assert spec.get("description"), name
        assert "default" in spec, name


def test_input_defaults_match_the_validation_defaults():
    from k8s_cluster.inputs import DEFAULTS

    plan = parse_from_path(str(ROOT / "blueprints" / "k8s-cluster.yaml"))
    blueprint_defaults = {name: spec["default"] for name, spec in plan["inputs"].items()}
    for name, default in blueprint_defaults.items():
        if name in ("local_settings", "container_runtime"):
            continue  # {} in the blueprint: each key has its own default in inputs.DEFAULTS
        assert DEFAULTS[name] == default, name


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck is not installed")
def test_scripts_pass_shellcheck():
    scripts = sorted(str(p) for p in (ROOT / "scripts").glob("*.sh"))
    scripts += [
        str(p) for folder in (".ci", "bin") for p in (ROOT / folder).glob("*") if p.is_file()
    ]
    result = subprocess.run(["shellcheck", "-S", "style", *scripts], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_scripts_start_strict():
    scripts = [
        *(ROOT / "scripts").glob("*.sh"),
        *(ROOT / "bin").glob("*"),
        *(ROOT / ".ci").glob("*"),
    ]
    for script in scripts:
        lines = script.read_text().splitlines()
        assert lines[0] == "#!/usr/bin/env bash", script
        assert "set -euo pipefail" in lines, script


def test_wagon_builds_with_the_plugin_and_its_resources(tmp_path):
    wagon = Path(sys.executable).with_name("wagon")
    result = subprocess.run(
        [str(wagon), "create", str(ROOT), "-o", str(tmp_path), "-f"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    built = list(tmp_path.glob("*.wgn"))
    assert [p.name.split("-py")[0] for p in built] == ["cloudify_k8s_cluster_plugin-0.1.0"]
    with zipfile.ZipFile(built[0]) as archive:
        metadata = json.loads(archive.read("cloudify-k8s-cluster-plugin/package.json"))
        wheel_name = next(n for n in archive.namelist() if "/cloudify_k8s_cluster_plugin-" in n)
        plugin_wheel = zipfile.ZipFile(io.BytesIO(archive.read(wheel_name)))
    assert metadata["package_name"] == "cloudify-k8s-cluster-plugin"
    assert metadata["package_version"] == "0.1.0"
    files = set(plugin_wheel.namelist())
    for resource in (
        "k8s_cluster/scripts/prepare-node.sh",
        "k8s_cluster/templates/kubeadm-init.yaml.j2",
    ):
        assert resource in files


# Each single-value input is checked by cfy itself, from the blueprint's constraints, before
# any plan exists (on a manager too); the validation step checks it again, with the same bounds.
# value -> (the blueprint accepts it, the validation accepts it)
SINGLE_VALUES = {
    "worker_count": {-1: (False, False), 0: (True, True), 100: (True, True), 101: (False, False)},
    "min_workers": {-1: (False, False), 0: (True, True), 2: (True, True), 101: (False, False)},
    "control_plane_count": {0: (False, False), 1: (True, True), 3: (False, False)},
    "kubernetes_version": {
        "1.37": (True, True),
        "v1.37.2": (True, True),
        "1.30": (True, True),
        "1.100": (True, True),
        "1.29": (False, False),
        "2.0": (False, False),
        "1.37.x": (False, False),
    },
    "ssh_user": {"root": (True, True), "deploy_2": (True, True), "root; rm": (False, False)},
    "node_monitor_grace_period": {
        "40s": (True, True),
        "2m": (True, True),
        "40": (False, False),
        "0s": (False, False),
        "5s": (True, False),  # the range (10s to 60m) is the validation's alone
    },
}


def _blueprint_accepts(plan, name, value) -> bool:
    from dsl_parser.tasks import prepare_deployment_plan

    try:
        prepare_deployment_plan(plan, inputs={name: value})
    except Exception as err:  # the DSL parser's own error types
        assert name in str(err) and str(value) in str(err), err
        return False
    return True


def _validation_accepts(name, value) -> bool:
    from k8s_cluster.inputs import DEFAULTS, InputError, validate

    try:
        validate({**DEFAULTS, name: value}, ROOT)
    except InputError as err:
        return not [line for line in err.problems if line.startswith(name)]
    return True


@pytest.mark.parametrize("name", sorted(SINGLE_VALUES))
def test_single_value_bounds_are_the_blueprints_and_the_validations(name):
    plan = parse_from_path(str(ROOT / "blueprints" / "k8s-cluster.yaml"))
    for value, (blueprint, validation) in SINGLE_VALUES[name].items():
        assert _blueprint_accepts(plan, name, value) == blueprint, value
        assert _validation_accepts(name, value) == validation, value


def test_the_scaling_group_stops_where_worker_count_does():
    from k8s_cluster.inputs import MAX_WORKERS

    plan = parse_from_path(str(ROOT / "blueprints" / "k8s-cluster.yaml"))
    policy = plan["scaling_groups"]["workers"]["properties"]
    assert policy["max_instances"] == MAX_WORKERS
