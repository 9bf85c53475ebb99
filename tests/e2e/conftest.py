"""End-to-end tests: the real cfy CLI, real SSH, real LXC hosts made by the suite's own `local`
provider, and real Kubernetes from the offline bundle (see tests/testbed.py)."""

from __future__ import annotations

import pytest

from k8s_cluster.hosts.local import LocalProvider
from tests.testbed import SHARED_DEPLOYMENT, SUBNET


@pytest.fixture(scope="module", autouse=True)
def no_host_left_behind(cfy):
    """Each test module uninstalls what it installed. A host left running (a failed uninstall
    in a teardown) fails the module, and is removed so the next modules start clean."""
    yield
    left = {}
    for deployment_dir in sorted(cfy.state_dir.glob("*")):
        if deployment_dir.name == SHARED_DEPLOYMENT:
            continue
        provider = LocalProvider(deployment_dir.name, deployment_dir, subnet=SUBNET)
        names = provider.host_names()
        for name in names:
            provider.destroy_host(name)
        if names:
            left[deployment_dir.name] = names
    assert not left, f"hosts left behind by this module's uninstall: {left}"
