"""Fixtures of the test bed (tests/testbed.py), shared by every test that needs Kubernetes."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests import testbed

_MODULE_SECONDS: dict[str, float] = {}
_BUNDLE_SECONDS: list[float] = []


def _why_not_runnable() -> str | None:
    if os.geteuid() != 0:
        return "the test bed needs root (LXC hosts)"
    for tool in ("lxc-start", "debootstrap", "dpkg-deb", "gpg", "go", "cc"):
        if not shutil.which(tool):
            return f"the test bed needs {tool} (run bin/setup)"
    return None


def pytest_collection_modifyitems(config, items):
    """Tests on the test bed carry the e2e marker; off CI, they are skipped where it cannot run.
    On CI they run, and fail, so a machine that lacks something is never a silent pass."""
    reason = _why_not_runnable()
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
        if reason and item.get_closest_marker("e2e") and not os.environ.get("CI"):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session", autouse=True)
def _hosts_of_killed_sessions_removed(tmp_path_factory):
    if os.geteuid() != 0:
        yield
        return
    basetemp = tmp_path_factory.getbasetemp()
    with testbed.hold_session(basetemp):
        for identity in testbed.remove_hosts_of_ended_sessions(basetemp):
            print(f"removed the hosts a killed test session left in {identity}")
        yield


@pytest.fixture(scope="module", autouse=True)
def _module_clock(request):
    started = time.monotonic()
    yield
    _MODULE_SECONDS[request.module.__name__] = time.monotonic() - started


def pytest_terminal_summary(terminalreporter):
    slow = {name: seconds for name, seconds in _MODULE_SECONDS.items() if seconds >= 5}
    if not slow and not _BUNDLE_SECONDS:
        return
    terminalreporter.section("time per module (s)")
    if _BUNDLE_SECONDS:
        terminalreporter.line(f"{_BUNDLE_SECONDS[0]:8.1f}  bin/build-bundle (offline bundle)")
    for name, seconds in sorted(slow.items(), key=lambda item: -item[1]):
        terminalreporter.line(f"{seconds:8.1f}  {name}")


@dataclass(frozen=True)
class Bundle:
    path: Path
    summary: dict
    url: str  # where the test bed serves it

    @property
    def test_image(self) -> str:
        return self.summary["test_image"]

    @property
    def kubectl(self) -> Path:
        return self.path / "bin" / "kubectl"


@pytest.fixture(scope="session")
def bundle() -> Bundle:
    path, seconds = testbed.build_bundle()
    _BUNDLE_SECONDS.append(seconds)
    url, server = testbed.serve(path)
    testbed.Kubectl.path = path / "bin" / "kubectl"
    yield Bundle(path, json.loads((path / "bundle.json").read_text()), url)
    server.shutdown()


@pytest.fixture(scope="session")
def cfy(tmp_path_factory) -> testbed.Cfy:
    base = tmp_path_factory.mktemp("cfy")
    return testbed.Cfy(base / "cloudify", base / "state")


@pytest.fixture(scope="session")
def inputs_file(tmp_path_factory, bundle) -> Path:
    path = tmp_path_factory.mktemp("inputs") / "inputs.yaml"
    path.write_text(yaml.safe_dump(testbed.bundle_inputs(bundle.path, bundle.url, testbed.SUBNET)))
    return path


@pytest.fixture(scope="session")
def shared_cluster(cfy, bundle, tmp_path_factory) -> dict:
    """One cluster (1 control plane + 2 workers) for the tests that only add objects to it and
    clean up after themselves; on a subnet of its own, beside the clusters other tests make.
    Its hosts take containerd and runc from release archives (the others: from packages)."""
    inputs = tmp_path_factory.mktemp("shared") / "inputs.yaml"
    settings = testbed.bundle_inputs(bundle.path, bundle.url, testbed.SHARED_SUBNET)
    settings["container_runtime"] = testbed.release_runtime(bundle.path, bundle.url)
    inputs.write_text(yaml.safe_dump(settings))
    deployment = testbed.SHARED_DEPLOYMENT
    try:
        cfy("install", "blueprints/k8s-cluster.yaml", "-b", deployment, "-i", str(inputs))
        yield cfy.outputs(deployment)
    finally:
        cfy.tear_down(deployment)
