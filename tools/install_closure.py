"""Does `make` install everything R needs? The install closure, checked from metadata alone.

Walks the R packages the project needs (``r/DESCRIPTION``'s Depends, Imports,
LinkingTo and Suggests, and every package the R tests, vignettes, benchmarks
and tools load) and, through the local CRAN-like repository's ``PACKAGES``
index, what those need in turn. Every package reached must be

- a base package of R (it comes with ``r-base-core``),
- in a Debian package the Makefile names, or one apt installs with them
  (their Depends and Pre-Depends, recursively), at a version that satisfies
  the requirement, or
- in the local repository, at a version that satisfies the requirement.

Nothing here asks R or looks at which R packages this machine has, so a
package installed by hand cannot hide a hole. Debian's metadata comes from
dpkg for packages that are installed and from apt's index for the others.

Usage: python tools/install_closure.py [--without DEBIAN_PACKAGE ...]
Prints each hole with the chain of packages that needs it; exits 1 if any.
"""

import argparse
import dataclasses
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

# R's base packages: they ship inside R itself (Debian's r-base-core).
BASE_PACKAGES = frozenset({
    "base", "compiler", "datasets", "graphics", "grDevices", "grid", "methods", "parallel",
    "splines", "stats", "stats4", "tcltk", "tools", "utils",
})

# Files whose R code runs under `make test`, `make demo` or `make bench`.
R_CODE_GLOBS = ("r/tests/**/*.R", "vignettes/*.Rmd", "bench/*.R", "tools/*.R", "Makefile")

_PACKAGE_USE = re.compile(
    r"""\b(?:library|require|requireNamespace|loadNamespace)\(\s*["']?([A-Za-z][A-Za-z0-9.]*)"""
    r"""|\b([A-Za-z][A-Za-z0-9.]*):::?[A-Za-z._`]"""
)


@dataclasses.dataclass(frozen=True)
class Requirement:
    package: str
    minimum: str | None  # a version the package must be at least, or None
    needed_by: tuple  # the chain, nearest first: ("keras3", "tfprobr (r/DESCRIPTION Imports)")

    def describe(self):
        wanted = self.package + (f" (>= {self.minimum})" if self.minimum else "")
        return f"{wanted}, needed by " + ", needed by ".join(self.needed_by)


def read_dcf(text):
    """Records of a Debian control file (R's DESCRIPTION and PACKAGES): a list of dicts."""
    records, record, field = [], {}, None
    for line in text.splitlines():
        if not line.strip():
            if record:
                records.append(record)
            record, field = {}, None
        elif line[0] in " \t" and field:
            record[field] += " " + line.strip()
        else:
            field, _, value = line.partition(":")
            record[field] = value.strip()
    if record:
        records.append(record)
    return records


def r_dependencies(field):
    """``"a (>= 1.2), b"`` -> [("a", "1.2"), ("b", None)]; other operators keep no minimum."""
    pairs = []
    for item in filter(None, (part.strip() for part in (field or "").split(","))):
        match = re.fullmatch(r"([A-Za-z][A-Za-z0-9.]*)\s*(?:\(\s*([<>=!]+)\s*([^)\s]+)\s*\))?", item)
        if not match:
            raise ValueError(f"cannot read the dependency {item!r}")
        name, operator, version = match.groups()
        pairs.append((name, version if operator == ">=" else None))
    return pairs


def version_key(version):
    """R's ordering of versions: numbers separated by '.' or '-'."""
    return tuple(int(part) for part in re.split(r"[.-]", version) if part.isdigit())


def upstream_version(debian_version):
    """The upstream version inside a Debian version: ``1:1.5-3-1+b1`` -> ``1.5-3``."""
    version = debian_version.split(":", 1)[-1]
    if "-" in version:
        version = version.rsplit("-", 1)[0]
    return re.split(r"[+~]", version)[0]


def satisfies(version, minimum):
    return minimum is None or version_key(version) >= version_key(minimum)


def makefile_debian_packages(root=ROOT):
    """The Debian packages the Makefile installs (``make debian-packages``)."""
    output = subprocess.run(
        ["make", "--no-print-directory", "-s", "-C", str(root), "debian-packages"],
        capture_output=True, text=True, check=True,
    ).stdout
    return output.split()


def r_packages_used(root=ROOT):
    """{package: [files]} for every R package loaded by R code that `make` runs."""
    used = {}
    for pattern in R_CODE_GLOBS:
        for path in sorted(root.glob(pattern)):
            text = path.read_text(errors="replace")
            if path.name == "Makefile":
                # Only the R inside `Rscript -e '...'` commands.
                text = "\n".join(re.findall(r"Rscript -e '([^']*)'", text))
            else:
                # Comments name packages freely.
                text = re.sub(r"^\s*#.*$", "", text, flags=re.M)
            for match in _PACKAGE_USE.finditer(text):
                name = match.group(1) or match.group(2)
                used.setdefault(name, []).append(str(path.relative_to(root)))
    return used


class Debian:
    """Debian's package metadata: dpkg's for installed packages, else apt's index."""

    def __init__(self):
        self._records = {}
        self._providers = {}
        process = subprocess.run(
            ["dpkg-query", "-W",
             "-f=${Package}\t${Status}\t${Version}\t${Depends}\t${Pre-Depends}\t${Provides}\n"],
            capture_output=True, text=True,
        )
        for line in process.stdout.splitlines():
            package, status, version, depends, pre_depends, provides = line.split("\t")
            if "install ok installed" not in status:
                continue
            self._records[package] = {"Version": version, "Depends": depends,
                                      "Pre-Depends": pre_depends}
            for item in filter(None, (p.strip() for p in provides.split(","))):
                self._providers.setdefault(item.split()[0], package)

    def record(self, name):
        """{"Version", "Depends", "Pre-Depends"} of ``name``, or None if unknown."""
        if name not in self._records:
            self._records[name] = self._candidate(name)
        return self._records[name]

    @staticmethod
    def _candidate(name):
        process = subprocess.run(["apt-cache", "show", "--no-all-versions", name],
                                 capture_output=True, text=True)
        records = read_dcf(process.stdout) if process.returncode == 0 else []
        return records[0] if records else None

    def provider(self, virtual):
        """An installed package that provides ``virtual``, or None."""
        return self._providers.get(virtual)

    def resolve(self, group):
        """The package apt would take for ``a (>= 1) | b``: the first one that exists."""
        names = [alternative.strip().split()[0].split(":")[0] for alternative in group.split("|")]
        for name in names:
            if self.record(name):
                return name
        for name in names:
            provider = self.provider(name)
            if provider:
                return provider
        return None

    def closure(self, names):
        """{Debian package: upstream version} for ``names`` and what apt installs with them.

        Raises LookupError naming a package that neither dpkg nor apt knows.
        """
        versions, queue = {}, list(names)
        while queue:
            name = queue.pop()
            if name in versions:
                continue
            record = self.record(name)
            if record is None:
                raise LookupError(f"the Debian package {name!r} is neither installed nor known "
                                  "to apt (run `apt-get update`)")
            versions[name] = upstream_version(record["Version"])
            for field in ("Pre-Depends", "Depends"):
                for group in filter(None, (g.strip() for g in record.get(field, "").split(","))):
                    resolved = self.resolve(group)
                    if resolved and resolved not in versions:
                        queue.append(resolved)
        return versions


def local_repository(path):
    """{package: PACKAGES record} of a local CRAN-like repository."""
    index = pathlib.Path(path) / "src" / "contrib" / "PACKAGES"
    return {record["Package"]: record for record in read_dcf(index.read_text())}


def root_requirements(root=ROOT):
    """What the project itself needs: DESCRIPTION's fields and the packages its R code loads."""
    description = read_dcf((root / "r" / "DESCRIPTION").read_text())[0]
    package = description["Package"]
    requirements = []
    for field in ("Depends", "Imports", "LinkingTo", "Suggests"):
        for name, minimum in r_dependencies(description.get(field)):
            requirements.append(Requirement(name, minimum, (f"{package} (r/DESCRIPTION {field})",)))
    for name, files in sorted(r_packages_used(root).items()):
        if name != package:
            requirements.append(Requirement(name, None, (", ".join(sorted(set(files))),)))
    return requirements


def holes(debian_packages, repository, requirements, debian=None):
    """Each requirement that nothing installs, as a sentence; an empty list when closed."""
    return walk(debian_packages, repository, requirements, debian)[0]


def walk(debian_packages, repository, requirements, debian=None):
    """(holes, the packages taken from the local repository): see ``holes``."""
    debian = debian or Debian()
    installed = debian.closure(debian_packages)
    r_version = installed.get("r-base-core")
    found, walked, queue = [], set(), list(requirements)
    while queue:
        requirement = queue.pop(0)
        name, minimum = requirement.package, requirement.minimum
        if name == "R" or name in BASE_PACKAGES:
            if r_version is None:
                found.append(f"{requirement.describe()}: R itself (r-base-core) is not installed")
            elif not satisfies(r_version, minimum):
                found.append(f"{requirement.describe()}: Debian's R is {r_version}")
            continue
        debian_version = installed.get("r-cran-" + name.lower())
        if debian_version is not None and satisfies(debian_version, minimum):
            continue  # apt brings what it needs
        record = repository.get(name)
        if record is not None and satisfies(record["Version"], minimum):
            if name not in walked:
                walked.add(name)
                for field in ("Depends", "Imports", "LinkingTo"):
                    for dependency, dependency_minimum in r_dependencies(record.get(field)):
                        queue.append(Requirement(
                            dependency, dependency_minimum,
                            (f"{name} (local repository, {field})",) + requirement.needed_by,
                        ))
            continue
        have = []
        if debian_version is not None:
            have.append(f"Debian's r-cran-{name.lower()} is {debian_version}")
        if record is not None:
            have.append(f"the local repository has {record['Version']}")
        found.append(f"{requirement.describe()}: " + ("; ".join(have) if have else
                     "not a base package, not in the Debian packages the Makefile installs "
                     f"(r-cran-{name.lower()}), and not in the local repository"))
    return sorted(set(found)), walked


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repository", default=str(ROOT.parent / "shared" / "r-cran"),
                        help="the local CRAN-like repository (the Makefile's R_CRAN)")
    parser.add_argument("--without", action="append", default=[], metavar="DEBIAN_PACKAGE",
                        help="check as if the Makefile did not name this package")
    options = parser.parse_args(argv)
    debian_packages = [p for p in makefile_debian_packages() if p not in options.without]
    found = holes(debian_packages, local_repository(options.repository), root_requirements())
    for hole in found:
        print(hole)
    if not found:
        print(f"closed: every R package needed comes with R, with the {len(debian_packages)} "
              "Debian packages the Makefile names, or from the local repository")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
