"""The admin page's Django test-client tests (tests/adminproject/client_tests.py), run in a
pytest of their own with ``adminproject.settings``: the settings of this run have no database,
and a process has one settings module. One test here per test there, each passing or failing
with it, its failure shown."""

import ast
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest
from conftest import REPO, TESTS_DIR

CLIENT_TESTS = TESTS_DIR / "adminproject" / "client_tests.py"
NAMES = [
    node.name
    for node in ast.parse(CLIENT_TESTS.read_text()).body
    if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
]


@pytest.fixture(scope="session")
def client_results(tmp_path_factory):
    """``{test name: None (passed) or its failure text}``, from one run of the file."""
    junit = tmp_path_factory.mktemp("admin-client") / "junit.xml"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--ds=adminproject.settings",
            f"--junitxml={junit}",
            str(CLIENT_TESTS),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,  # each test reports its own outcome
    )
    if not junit.exists():
        pytest.fail(f"the client tests did not run:\n{run.stdout}\n{run.stderr}")
    results = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        results[case.get("name")] = None if problem is None else problem.text or ""
    return results


@pytest.mark.parametrize("name", NAMES)
def test_admin_client(client_results, name):
    assert name in client_results, f"{name} did not run"
    if client_results[name] is not None:
        pytest.fail(client_results[name], pytrace=False)
