"""Operations of the scale tests' stand-in nodes: each records its call to a JSON-lines file.

Set by the test: K8S_SCALE_TEST_DIR, a folder holding `calls.jsonl` (one line per call) and,
when present, `fail-create` (every create of a worker host then fails) or `fail-stop` (every
stop of a worker fails, as a drain that cannot finish does).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from cloudify import ctx
from cloudify.decorators import operation
from cloudify.exceptions import NonRecoverableError

from k8s_cluster.operations import removal_policy

OPERATION_SECONDS = 0.6  # long enough for parallel calls to overlap visibly


def _folder() -> Path:
    return Path(os.environ["K8S_SCALE_TEST_DIR"])


def _record(**extra) -> None:
    started = time.time()
    time.sleep(OPERATION_SECONDS)
    line = {
        "instance": ctx.instance.id,
        "node": ctx.node.id,
        "operation": ctx.operation.name.rsplit(".", 1)[-1],
        "workflow": ctx.workflow_id,
        "start": started,
        "end": time.time(),
        **extra,
    }
    with open(_folder() / "calls.jsonl", "a") as calls:
        calls.write(json.dumps(line) + "\n")


@operation
def record(**_):
    _record()


@operation
def create_host(**_):
    if (_folder() / "fail-create").exists():
        raise NonRecoverableError(f"create of {ctx.instance.id} failed on purpose")
    ctx.instance.runtime_properties["node"] = {"name": ctx.instance.id}
    _record()


@operation
def stop_worker(**_):
    policy = removal_policy(ctx)
    _record(policy={**vars(policy), "options": vars(policy.options)})
    if (_folder() / "fail-stop").exists():
        raise NonRecoverableError(f"drain of {ctx.instance.id} blocked on purpose")
