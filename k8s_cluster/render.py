"""Render the suite's Jinja2 templates (templates/) into host configuration files."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2

from .paths import resource_dir


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        undefined=jinja2.StrictUndefined,  # a missing value is an error, never an empty string
        autoescape=False,
        keep_trailing_newline=True,
    )


def render(template: str, **values: Any) -> str:
    return _environment().get_template(template).render(**values)
