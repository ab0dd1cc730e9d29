"""The package metadata builds without deprecated forms.

setuptools deprecated the table form of ``project.license`` (``{text = ...}``) and announced that builds
using it stop working after 2027-02-18; CI installs the project from source on every run, so the
metadata must be the PEP 639 form: an SPDX expression string, with a setuptools that understands it.
"""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path

from packaging.licenses import canonicalize_license_expression
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_license_is_an_spdx_expression_that_setuptools_reads_without_deprecation():
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert isinstance(project["license"], str), project["license"]
    assert canonicalize_license_expression(project["license"]) == project["license"]

    from setuptools.config.pyprojecttoml import read_configuration

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read = read_configuration(PYPROJECT)
    assert read["project"]["license"] == project["license"]


def test_build_requires_a_setuptools_that_knows_spdx_licenses():
    requires = [Requirement(r) for r in tomllib.loads(PYPROJECT.read_text())["build-system"]["requires"]]
    setuptools = next(r for r in requires if r.name == "setuptools")
    # PEP 639 license expressions are understood from setuptools 77 on; older ones reject the string
    assert not setuptools.specifier.contains(Version("76.9")), str(setuptools.specifier)
    assert setuptools.specifier.contains(Version("77.0"))
