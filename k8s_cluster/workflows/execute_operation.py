"""execute_operation: Cloudify's own, with its list parameters taken as a user types them."""

from __future__ import annotations

from cloudify.decorators import workflow
from cloudify.exceptions import NonRecoverableError
from cloudify.plugins import workflows

from .parameters import ParameterError, name_list

LISTS = ("type_names", "node_ids", "node_instance_ids")


@workflow(resumable=True)
def execute_operation(ctx, operation, **kwargs):
    """Cloudify's execute_operation (same parameters); type_names, node_ids and
    node_instance_ids may also be a YAML or JSON list in a string or a comma-separated string,
    as `-p node_ids=[a,b]` on the command line gives them."""
    try:
        lists = {name: name_list(name, kwargs.pop(name, [])) for name in LISTS}
    except ParameterError as err:
        raise NonRecoverableError(str(err)) from None
    workflows.execute_operation(ctx=ctx, operation=operation, **lists, **kwargs)
