"""Wagon (Cloudify's plugin packager) needs a setup.py; the configuration is in pyproject.toml.

Wagon runs `python /path/to/setup.py --name` from another folder, and setuptools reads
pyproject.toml from the working folder, so move there first.
"""

import os

from setuptools import setup

os.chdir(os.path.dirname(os.path.abspath(__file__)))
setup()
