"""The scale workflow in local mode, through the real cfy CLI, on a blueprint whose hosts and
Kubernetes nodes are stand-ins that record their calls (plugin/k8s_scale_test_ops.py).

The tests share one deployment and run in order: install, scale out, scale in (newest first,
then chosen instances), refusals that change nothing, a failed scale-out rolled back and run
again, uninstall.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CFY = str(Path(sys.executable).with_name("cfy"))
BLUEPRINT = HERE / "blueprints" / "scale-test.yaml"
NAME = "scaletest"


class Deployment:
    """One local deployment of the test blueprint, driven by cfy in a private work folder."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.calls_file = base / "calls.jsonl"
        self.fail_create = base / "fail-create"
        self.fail_stop = base / "fail-stop"
        self.env = dict(
            os.environ,
            CFY_WORKDIR=str(base / "cfy"),
            K8S_CLUSTER_STATE_DIR=str(base / "state"),
            K8S_SCALE_TEST_DIR=str(base),
            PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE / "plugin")]),
        )

    def cfy(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [CFY, *args], cwd=self.base, env=self.env, capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(f"cfy {' '.join(args)} failed:\n{result.stdout[-5000:]}")
        return result

    def scale(self, *parameters: str, check: bool = True) -> subprocess.CompletedProcess:
        args = [arg for p in parameters for arg in ("-p", p)]
        return self.cfy("executions", "start", "scale", "-b", NAME, *args, check=check)

    def instances(self) -> dict[str, dict]:
        listed = json.loads(self.cfy("node-instances", "-b", NAME).stdout)
        return {instance["id"]: instance for instance in listed}

    def ids(self, node: str) -> set[str]:
        return {i for i, instance in self.instances().items() if instance["node_id"] == node}

    def outputs(self) -> dict:
        return json.loads(self.cfy("deployments", "outputs", "-b", NAME).stdout)

    def group_count(self, group: str) -> int:
        path = self.base / "cfy/.cloudify/profiles/local/deployments" / NAME / "deployment.json"
        return json.loads(path.read_text())["scaling_groups"][group]["properties"][
            "current_instances"
        ]

    def calls(self, workflow: str | None = None) -> list[dict]:
        if not self.calls_file.exists():
            return []
        calls = [json.loads(line) for line in self.calls_file.read_text().splitlines()]
        return [c for c in calls if workflow is None or c["workflow"] == workflow]

    def clear_calls(self) -> None:
        self.calls_file.unlink(missing_ok=True)


def _private_key(path: Path) -> None:
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def _settings(key: Path) -> dict:
    """Cluster settings that pass validation: local hosts, which the stand-in nodes never make
    (existing machines would be checked over SSH by install first)."""
    return {
        "infrastructure_provider": "local",
        "worker_count": 2,
        "ssh_private_key_file": str(key),
        "local_settings": {"subnet": "10.76.0.0/24"},
    }


@pytest.fixture(scope="module")
def dep(tmp_path_factory) -> Deployment:
    deployment = Deployment(tmp_path_factory.mktemp("scale"))
    key = deployment.base / "id_ed25519"
    _private_key(key)
    inputs = deployment.base / "inputs.yaml"
    inputs.write_text(yaml.safe_dump({"settings": _settings(key)}))
    deployment.cfy("install", str(BLUEPRINT), "-b", NAME, "-i", str(inputs))
    return deployment


def _overlap(calls: list[dict]) -> bool:
    return max(c["start"] for c in calls) < min(c["end"] for c in calls)


def _refused_with_nothing_changed(dep: Deployment, before: dict, result) -> None:
    """A refused scale: failed, no operation ran, every instance exactly as it was."""
    assert result.returncode != 0
    assert "Nothing was changed" in result.stdout
    assert dep.calls("scale") == []
    assert dep.instances() == before


def test_scale_out_adds_instances_in_parallel(dep):
    hosts_before = dep.ids("worker_host")
    assert len(hosts_before) == 2
    dep.clear_calls()

    dep.scale("scalable_entity_name=workers", "delta=2")

    instances = dep.instances()
    hosts = dep.ids("worker_host")
    new_hosts = hosts - hosts_before
    assert len(hosts) == 4 and len(dep.ids("worker")) == 4
    assert len(dep.outputs()["worker_nodes"]) == 4
    assert dep.group_count("workers") == 4
    assert sorted(instances[h]["index"] for h in new_hosts) == [1, 2]
    assert all(instances[h]["state"] == "started" for h in new_hosts)
    # Each new host has its own new group instance and a new worker on it, joined to the
    # control plane; the existing watcher now has relationships to the new hosts too.
    groups = {instances[h]["scaling_groups"][0]["id"] for h in hosts}
    assert len(groups) == 4
    control_plane = dep.ids("control_plane").pop()
    on_new_hosts = [
        w for w in dep.ids("worker") if instances[w]["relationships"][0]["target_id"] in new_hosts
    ]
    assert len(on_new_hosts) == 2
    for worker in on_new_hosts:
        targets = {r["target_id"] for r in instances[worker]["relationships"]}
        assert control_plane in targets
    watcher = instances[dep.ids("watcher").pop()]
    assert {r["target_id"] for r in watcher["relationships"]} == hosts
    # Only the new instances were installed, and at the same time.
    calls = dep.calls("scale")
    assert {c["instance"] for c in calls} == new_hosts | set(on_new_hosts)
    creates = [c for c in calls if c["node"] == "worker_host" and c["operation"] == "create"]
    assert len(creates) == 2 and _overlap(creates)


def test_scale_in_removes_the_newest_and_passes_drain_parameters(dep):
    instances = dep.instances()
    newest = max(dep.ids("worker_host"), key=lambda h: instances[h].get("index") or 0)
    dep.clear_calls()

    dep.scale(
        "scalable_entity_name=workers",
        "delta=-1",
        "drain_timeout=42",
        "drain_grace_period=5",
        "delete_emptydir_data=true",
    )

    hosts = dep.ids("worker_host")
    assert newest not in hosts and len(hosts) == 3 and len(dep.ids("worker")) == 3
    assert dep.group_count("workers") == 3
    assert len(dep.outputs()["worker_nodes"]) == 3
    watcher = dep.instances()[dep.ids("watcher").pop()]
    assert {r["target_id"] for r in watcher["relationships"]} == hosts
    stops = [c for c in dep.calls("scale") if c["operation"] == "stop"]
    assert len(stops) == 1
    assert stops[0]["policy"] == {
        "strict": True,
        "drain_timeout": 42.0,
        "grace_period": 5,
        "options": {"force": False, "delete_emptydir_data": True},
    }


def test_scale_in_honours_include_instances(dep):
    chosen = sorted(dep.ids("worker_host"))[0]
    others = dep.ids("worker_host") - {chosen}
    dep.clear_calls()

    dep.scale(
        "scalable_entity_name=workers",
        "delta=-1",
        f"include_instances={chosen}",
        "allow_ungraceful_removal=true",
        "force=true",
    )

    assert dep.ids("worker_host") == others
    stops = [c for c in dep.calls("scale") if c["operation"] == "stop"]
    assert stops[0]["policy"] == {
        "strict": False,
        "drain_timeout": 300.0,
        "grace_period": None,
        "options": {"force": True, "delete_emptydir_data": False},
    }


def test_include_instances_as_users_type_it(dep):
    """A YAML list in a string (-p key=[a]), a comma-separated string (-p key=a,b), and a real
    list (a JSON parameters document): each removes exactly the instances it names."""
    before = dep.ids("worker_host")
    dep.scale("scalable_entity_name=workers", "delta=4")
    added = sorted(dep.ids("worker_host") - before)
    forms = [
        ({added[0]}, ("delta=-1", f"include_instances=[{added[0]}]")),
        ({added[1], added[2]}, ("delta=-2", f"include_instances={added[1]},{added[2]}")),
        ({added[3]}, (json.dumps({"delta": -1, "include_instances": [added[3]]}),)),
    ]
    for named, parameters in forms:
        present = dep.ids("worker_host")
        dep.scale("scalable_entity_name=workers", *parameters, "allow_ungraceful_removal=true")
        assert present - dep.ids("worker_host") == named, parameters
    assert dep.ids("worker_host") == before


def test_a_worker_that_cannot_be_drained_is_kept(dep):
    before = dep.instances()
    dep.fail_stop.touch()
    dep.clear_calls()

    result = dep.scale("scalable_entity_name=workers", "delta=-1", check=False)
    dep.fail_stop.unlink()

    assert result.returncode != 0 and "blocked on purpose" in result.stdout
    assert [c["operation"] for c in dep.calls("scale")] == ["stop"]
    assert dep.instances() == before  # rolled back: kept, in the state it was in
    assert dep.group_count("workers") == 2


def test_scale_in_honours_exclude_instances(dep):
    instances = dep.instances()
    newest = max(dep.ids("worker_host"), key=lambda h: instances[h].get("index") or 0)
    its_worker = next(
        w for w in dep.ids("worker") if instances[w]["relationships"][0]["target_id"] == newest
    )

    dep.scale("scalable_entity_name=workers", "delta=-1", f"exclude_instances={its_worker}")

    assert dep.ids("worker_host") == {newest} and dep.ids("worker") == {its_worker}
    assert dep.group_count("workers") == 1


def test_below_the_minimum_is_refused(dep):
    before = dep.instances()
    dep.clear_calls()

    result = dep.scale("scalable_entity_name=workers", "delta=-1", check=False)

    _refused_with_nothing_changed(dep, before, result)
    assert "cannot scale workers by -1: it has 1 instance(s) and its minimum is 1" in result.stdout
    assert dep.group_count("workers") == 1


@pytest.mark.parametrize("entity", ["control_planes", "control_plane"])
def test_control_planes_are_refused(dep, entity):
    before = dep.instances()
    dep.clear_calls()

    result = dep.scale(f"scalable_entity_name={entity}", "delta=1", check=False)

    _refused_with_nothing_changed(dep, before, result)
    assert "control planes are not scaled through this workflow" in result.stdout


def test_bad_parameters_change_nothing(dep):
    before = dep.instances()
    dep.clear_calls()

    result = dep.scale("scalable_entity_name=nosuch", "delta=1", check=False)
    _refused_with_nothing_changed(dep, before, result)
    assert "nothing named 'nosuch' to scale" in result.stdout

    dep.scale("scalable_entity_name=workers", "delta=0")
    assert dep.instances() == before and dep.calls("scale") == []


def test_failed_scale_out_rolls_back_then_succeeds_when_run_again(dep):
    before = set(dep.instances())
    dep.fail_create.touch()
    dep.clear_calls()

    result = dep.scale("scalable_entity_name=workers", "delta=2", check=False)

    assert result.returncode != 0 and "failed on purpose" in result.stdout
    assert set(dep.instances()) == before
    assert dep.group_count("workers") == 1
    failed = {c["instance"] for c in dep.calls("scale") if c["operation"] == "delete"}
    assert len(failed) == 2 and not failed & before  # the rollback uninstalled the new hosts

    dep.fail_create.unlink()
    dep.scale("scalable_entity_name=workers", "delta=2")

    assert len(dep.ids("worker_host")) == 3 and len(dep.ids("worker")) == 3
    assert dep.group_count("workers") == 3


def test_a_modification_left_started_is_rolled_back_by_abort_started(dep):
    before = set(dep.instances())
    dep.fail_create.touch()
    result = dep.scale(
        "scalable_entity_name=workers", "delta=1", "rollback_if_failed=false", check=False
    )
    dep.fail_create.unlink()
    assert result.returncode != 0
    left = set(dep.instances()) - before  # the failed instance is kept, its modification open
    assert len(left) == 2

    result = dep.scale("scalable_entity_name=workers", "delta=1", check=False)
    assert result.returncode != 0 and "abort_started=true" in result.stdout
    assert set(dep.instances()) == before | left

    dep.scale("scalable_entity_name=workers", "delta=1", "abort_started=true")

    hosts = dep.ids("worker_host")
    assert len(hosts) == 4 and not hosts & left and dep.group_count("workers") == 4


def test_execute_operation_takes_lists_as_users_type_them(dep):
    """Read as one string, `[worker_host]` would also select the node `worker` (Cloudify's
    own workflow tests `node.id in node_ids`, a substring of the string)."""
    hosts = sorted(dep.ids("worker_host"))
    create = "operation=cloudify.interfaces.lifecycle.create"
    for typed, wanted in (
        (f"node_instance_ids=[{hosts[0]}]", {hosts[0]}),
        (f"node_instance_ids={hosts[0]},{hosts[1]}", set(hosts[:2])),
        ("node_ids=[worker_host]", set(hosts)),
    ):
        dep.clear_calls()
        dep.cfy("executions", "start", "execute_operation", "-b", NAME, "-p", create, "-p", typed)
        assert {c["instance"] for c in dep.calls("execute_operation")} == wanted, typed


def test_uninstall_removes_every_instance(dep):
    ids = set(dep.instances())
    dep.clear_calls()

    dep.cfy("uninstall", "-b", NAME)

    deleted = {c["instance"] for c in dep.calls("uninstall") if c["operation"] == "delete"}
    hosts_and_nodes = {i for i in ids if not i.startswith(("cluster", "watcher"))}
    assert deleted == hosts_and_nodes
    assert not list((dep.base / "cfy/.cloudify/profiles/local/deployments").iterdir())
    assert not (dep.base / "state" / NAME).exists()


def test_scale_with_in_memory_storage(tmp_path, monkeypatch):
    """Local mode through the API (cloudify.workflows.local), whose default storage is memory."""
    from cloudify.workflows import local

    monkeypatch.syspath_prepend(str(HERE / "plugin"))
    monkeypatch.setenv("K8S_CLUSTER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("K8S_SCALE_TEST_DIR", str(tmp_path))
    key = tmp_path / "id_ed25519"
    _private_key(key)
    env = local.init_env(str(BLUEPRINT), name="memory", inputs={"settings": _settings(key)})
    env.execute("install", task_retries=0)

    def hosts() -> set[str]:
        return {i.id for i in env.storage.get_node_instances(node_id="worker_host")}

    installed = hosts()
    env.execute("scale", {"scalable_entity_name": "workers", "delta": 1}, task_retries=0)
    assert len(hosts()) == 3 and installed < hosts()
    env.execute("scale", {"scalable_entity_name": "workers", "delta": -1}, task_retries=0)
    assert hosts() == installed
    env.execute("uninstall", task_retries=0)
