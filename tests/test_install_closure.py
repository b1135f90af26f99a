"""`make` installs everything R needs: the install closure, from metadata alone.

The walk (tools/install_closure.py) reads r/DESCRIPTION, the R code that `make`
runs, the local repository's PACKAGES index and Debian's metadata for the
packages the Makefile names, never which R packages this machine has: a
package installed here by hand cannot hide a hole.
"""

import os
import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import install_closure  # noqa: E402

pytestmark = [pytest.mark.subprocess]

REPOSITORY = pathlib.Path(os.environ.get("R_CRAN", ROOT.parent / "shared" / "r-cran"))


@pytest.fixture(scope="module")
def repository():
    if not (REPOSITORY / "src" / "contrib" / "PACKAGES").exists():
        message = f"no local CRAN-like repository at {REPOSITORY}: packages come from CRAN"
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"CI=true: {message}, so the install closure cannot be checked")
        pytest.skip(message)
    return install_closure.local_repository(REPOSITORY)


@pytest.fixture(scope="module")
def debian_packages():
    return install_closure.makefile_debian_packages()


@pytest.fixture(scope="module")
def debian():
    return install_closure.Debian()


def test_the_closure_has_no_holes(repository, debian_packages, debian):
    requirements = install_closure.root_requirements()
    assert {"keras3", "tensorflow", "reticulate", "testthat"} <= {r.package for r in requirements}
    assert install_closure.holes(debian_packages, repository, requirements, debian) == []


@pytest.mark.parametrize(
    "dropped, missing, needed_by",
    [
        # reticulate imports Matrix; r-base-core without recommends lacks it.
        ("r-cran-matrix", "Matrix", "reticulate (local repository, Imports)"),
        ("r-cran-zeallot", "zeallot", "keras3 (local repository, Imports)"),
        ("r-cran-testthat", "testthat (>= 3.0.0)", "tfprobr (r/DESCRIPTION Suggests)"),
    ],
)
def test_dropping_a_debian_package_names_what_is_missing_and_who_needs_it(
    repository, debian_packages, debian, dropped, missing, needed_by
):
    assert dropped in debian_packages
    remaining = [package for package in debian_packages if package != dropped]
    found = install_closure.holes(remaining, repository, install_closure.root_requirements(),
                                  debian)
    assert any(hole.startswith(f"{missing}, needed by {needed_by}") for hole in found), found


def test_every_named_debian_package_is_known_to_dpkg_or_apt(debian_packages, debian):
    for package in debian_packages:
        assert debian.record(package) is not None, package


class FakeDebian:
    """Debian as a table, to test the walk apart from this machine."""

    def __init__(self, versions):
        self.versions = versions

    def closure(self, names):
        return {name: self.versions[name] for name in names}


def _requirement(package, minimum=None):
    return install_closure.Requirement(package, minimum, ("tfprobr (r/DESCRIPTION Imports)",))


def test_a_package_nothing_provides_is_a_hole_with_its_chain():
    repository = {"keras3": {"Package": "keras3", "Version": "1.5.1", "Imports": "zeallot, rlang"}}
    debian = FakeDebian({"r-base-core": "4.2.2", "r-cran-rlang": "1.0.6"})
    found = install_closure.holes(["r-base-core", "r-cran-rlang"], repository,
                                  [_requirement("keras3")], debian)
    assert found == [
        "zeallot, needed by keras3 (local repository, Imports), needed by tfprobr "
        "(r/DESCRIPTION Imports): not a base package, not in the Debian packages the Makefile "
        "installs (r-cran-zeallot), and not in the local repository"
    ]


def test_a_version_too_old_everywhere_is_a_hole():
    repository = {"rlang": {"Package": "rlang", "Version": "1.0.9"}}
    debian = FakeDebian({"r-base-core": "4.2.2", "r-cran-rlang": "1.0.6"})
    found = install_closure.holes(["r-base-core", "r-cran-rlang"], repository,
                                  [_requirement("rlang", "1.1.0")], debian)
    assert found == ["rlang (>= 1.1.0), needed by tfprobr (r/DESCRIPTION Imports): Debian's "
                     "r-cran-rlang is 1.0.6; the local repository has 1.0.9"]
    # A newer release in the local repository closes it (install.packages takes it).
    repository["rlang"]["Version"] = "1.1.4"
    assert install_closure.holes(["r-base-core", "r-cran-rlang"], repository,
                                 [_requirement("rlang", "1.1.0")], debian) == []


def test_base_packages_and_r_itself_come_with_r_base_core():
    debian = FakeDebian({"r-base-core": "4.2.2"})
    requirements = [_requirement("R", "4.1"), _requirement("utils"), _requirement("grDevices")]
    assert install_closure.holes(["r-base-core"], {}, requirements, debian) == []
    found = install_closure.holes(["r-base-core"], {}, [_requirement("R", "4.3")], debian)
    assert found == ["R (>= 4.3), needed by tfprobr (r/DESCRIPTION Imports): Debian's R is 4.2.2"]


@pytest.mark.parametrize(
    "debian_version, upstream",
    [("1.5-3-1", "1.5-3"), ("4.2.2.20221110-2", "4.2.2.20221110"), ("1:2.0.1+dfsg-1", "2.0.1"),
     ("0.3.2-1+b1", "0.3.2")],
)
def test_upstream_version_of_a_debian_version(debian_version, upstream):
    assert install_closure.upstream_version(debian_version) == upstream


def test_versions_compare_as_r_compares_them():
    assert install_closure.satisfies("1.5-3", "1.5")
    assert install_closure.satisfies("1.10.0", "1.9.2")
    assert not install_closure.satisfies("1.0.6", "1.1.0")
    assert install_closure.satisfies("1.0", None)


def test_r_code_that_make_runs_declares_its_packages():
    used = install_closure.r_packages_used()
    # The R test runner, the demo's render command and the benchmarks are all read.
    assert "testthat" in used and "rmarkdown" in used and "keras3" in used
    assert any(path == "Makefile" for path in used["rmarkdown"])


def test_readme_names_the_packages_the_two_commands_install(repository, debian_packages, debian):
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Set-up: two commands\n(.*?)^## ", readme, flags=re.S | re.M).group(1)
    debian_listed = re.search(r"Debian packages:(.*?)\n- ", section, flags=re.S).group(1)
    assert set(re.findall(r"`([a-z][a-z0-9.+-]*)`", debian_listed)) == set(debian_packages)
    cran_listed = re.search(r"R packages:(.*?)\n- ", section, flags=re.S).group(1)
    _, from_repository = install_closure.walk(
        debian_packages, repository, install_closure.root_requirements(), debian
    )
    assert set(re.findall(r"`([A-Za-z0-9.]+)`", cran_listed)) == from_repository | {"tfprobr"}
