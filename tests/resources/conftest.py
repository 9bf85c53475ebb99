"""The resources library and k8s-app.yaml against a real cluster: the session's shared one."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.testbed import Kubectl


@dataclass(frozen=True)
class ApiServer:
    """How tests reach the shared cluster's API server."""

    kubeconfig: str
    url: str  # https://HOST:PORT
    ca_file: Path
    workers: tuple[str, ...]

    def kubectl(self, *args: str, check: bool = True) -> str:
        return Kubectl.run(self.kubeconfig, *args, check=check)

    def namespaces(self) -> list[str]:
        listed = json.loads(self.kubectl("get", "namespaces", "-o", "json"))["items"]
        return [item["metadata"]["name"] for item in listed]


@pytest.fixture(scope="module")
def apiserver(shared_cluster, tmp_path_factory) -> ApiServer:
    kubeconfig = shared_cluster["kubeconfig_path"]
    cluster = yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]
    ca_file = tmp_path_factory.mktemp("ca") / "ca.crt"
    ca_file.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    workers = tuple(w["name"] for w in shared_cluster["worker_nodes"])
    return ApiServer(kubeconfig, shared_cluster["api_endpoint"], ca_file, workers)
