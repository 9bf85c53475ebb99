"""The code is formatted and linted with ruff (the project's settings in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUFF = str(Path(sys.executable).with_name("ruff"))


def test_ruff_check_passes():
    result = subprocess.run([RUFF, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]


def test_ruff_format_leaves_nothing_to_change():
    result = subprocess.run(
        [RUFF, "format", "--check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-4000:]


def test_the_suites_go_is_gofmt_formatted():
    """The Go of the bundle builder (its mains and stand-ins); `go vet` runs where it is built."""
    result = subprocess.run(
        ["gofmt", "-l", "k8s_bundle/go"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_the_test_workload_passes_go_vet(tmp_path):
    """testapp has no dependency: vet it in a module of its own, as the bundle builder does."""
    (tmp_path / "go.mod").write_text("module k8s-cluster/bundle/testapp\n\ngo 1.26.0\n")
    (tmp_path / "main.go").write_text((ROOT / "k8s_bundle/go/testapp/main.go").read_text())
    result = subprocess.run(["go", "vet", "."], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
