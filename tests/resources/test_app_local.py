"""blueprints/k8s-app.yaml through the real cfy CLI against the session's shared cluster: wrong
connections fail first with a clear message, the objects of a manifest stay the deployment's own
through update_resources, a readiness wait gives up with the object and what it saw, and
uninstall deletes them. The full story runs in tests/e2e/test_k8s_app.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.testbed import CFY, ROOT

pytestmark = pytest.mark.e2e


class Local:
    """cfy in a private work folder, with an inputs file per call."""

    def __init__(self, base: Path, image: str) -> None:
        self.base = base
        self.image = image
        self.env = dict(os.environ, CFY_WORKDIR=str(base / "cfy"), PYTHONPATH=str(ROOT))

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [CFY, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300
        )
        if check and result.returncode != 0:
            raise AssertionError(f"cfy {' '.join(args)} failed:\n{result.stdout[-5000:]}")
        return result

    def install(self, name: str, inputs: dict, check: bool = True):
        path = self.base / f"{name}.yaml"
        defaults = {"database_address": "10.9.0.5", "app_image": self.image}
        path.write_text(yaml.safe_dump({**defaults, **inputs}))
        return self("install", "blueprints/k8s-app.yaml", "-b", name, "-i", str(path), check=check)


@pytest.fixture
def local(tmp_path, bundle) -> Local:
    return Local(tmp_path, bundle.test_image)


def namespaces(apiserver) -> list[str]:
    return apiserver.namespaces()


def test_a_missing_kubeconfig_fails_before_anything_is_created(apiserver, local, tmp_path):
    result = local.install("nokube", {"kubeconfig": str(tmp_path / "nowhere")}, check=False)
    assert result.returncode != 0
    assert f"kubeconfig {tmp_path / 'nowhere'} is not a readable file" in result.stdout
    assert "shop" not in namespaces(apiserver)


def test_a_wrong_token_is_refused_by_name_and_never_printed(apiserver, local):
    inputs = {
        "api_endpoint": apiserver.url,
        "api_token": "wrong-token-value",
        "api_ca_cert": str(apiserver.ca_file),
        "namespace": "tokens",
    }
    result = local.install("token", inputs, check=False)
    assert result.returncode != 0
    assert f"the API server at {apiserver.url} answered 401 Unauthorized" in result.stdout
    assert "wrong-token-value" not in result.stdout + result.stderr
    assert "tokens" not in namespaces(apiserver)


def test_manifest_objects_stay_the_deployments_own_through_updates(apiserver, local):
    local.install("app", {"kubeconfig": apiserver.kubeconfig, "namespace": "own"})
    changes = {"app_access": {"metadata": {"labels": {"team": "shop"}}}}
    update = local("executions", "start", "update_resources", "-b", "app", "-p",
                   json.dumps({"overrides": changes}))  # fmt: skip
    assert "ServiceAccount own/web configured (metadata.labels)" in update.stdout
    role = json.loads(
        apiserver.kubectl("get", "role", "web-read-config", "-n", "own", "-o", "json")
    )
    assert role["metadata"]["labels"] == {"team": "shop"}
    uninstall = local("uninstall", "-b", "app")
    assert "existed before this deployment" not in uninstall.stdout
    assert "RoleBinding own/web-read-config deleted (Foreground)" in uninstall.stdout
    assert "own" not in namespaces(apiserver)


def test_readiness_gives_up_naming_the_object_and_what_it_saw(apiserver, local):
    for worker in apiserver.workers:  # nowhere to run: the pods stay Pending
        apiserver.kubectl("cordon", worker)
    try:
        inputs = {"kubeconfig": apiserver.kubeconfig, "namespace": "stuck", "ready_timeout": 3}
        result = local.install("stuck", inputs, check=False)
    finally:
        for worker in apiserver.workers:
            apiserver.kubectl("uncordon", worker)
        local("uninstall", "-b", "stuck", check=False)
    assert result.returncode != 0
    assert "Deployment stuck/web ready: not done after 3 s; last seen: 0 of 2" in result.stdout
    assert "stuck" not in namespaces(apiserver)
