"""The package's types: ``mypy --strict`` passes on the public API and on an example that uses
it (``pyproject.toml [tool.mypy]``), and ``inotifier/_native.pyi`` matches the compiled module
(mypy's stubtest imports it and compares every name and signature)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytest.importorskip("mypy", reason="mypy is installed in .venv (scripts/venv.sh), not here")


def run(*args, cwd=REPO):
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_mypy_strict_passes_on_the_public_api_and_its_example():
    checked = run("mypy", "--no-incremental")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Success: no issues found in 7 source files" in checked.stdout


def test_mypy_strict_refuses_a_misuse_of_the_api(tmp_path):
    misuse = tmp_path / "misuse.py"
    misuse.write_text(
        "import inotifier\n"
        "count: int = inotifier.watch('/tmp')\n"
        "name: bytes = inotifier.Event(mask=inotifier.IN_CREATE, path='/srv').pathname\n"
    )
    checked = run("mypy", "--strict", "--no-incremental", str(misuse), cwd=tmp_path)
    assert checked.returncode == 1
    assert 'has type "WatchIterator", variable has type "int"' in checked.stdout
    assert 'has type "str", variable has type "bytes"' in checked.stdout


def test_the_stub_of_the_native_module_matches_it():
    # From a directory without the sources: stubtest imports the installed package.
    allowlist = REPO / "tests" / "typing" / "stubtest-allowlist.txt"
    checked = run("mypy.stubtest", "inotifier._native", "--allowlist", str(allowlist), cwd="/")
    assert checked.returncode == 0, checked.stdout + checked.stderr
