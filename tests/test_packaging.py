"""Package metadata: an SPDX license with its file, and the extras a user and a contributor need."""

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_license_is_an_spdx_expression_with_its_file(project):
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_the_linter_is_a_contributor_extra_not_a_test_dependency(project):
    extras = project["optional-dependencies"]
    assert any(dep.startswith("ruff") for dep in extras["dev"])
    assert not any(dep.startswith("ruff") for dep in extras["test"])
    assert "deinforeg-sklearn[test,plot]" in extras["dev"]
