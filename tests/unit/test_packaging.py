"""What users install: the licence header of every plugin file, and the contents of the tarball
``ansible-galaxy collection build`` makes from a checkout that has gathered local state.

The tarball test copies the tree (tracked files plus new ones git does not ignore, as
scripts/sanity.sh does), plants in the copy the state a checkout gathers after test runs (one
entry for every pattern of .gitignore, plus the caches named below), builds it, lists it and
installs it into a fresh collections path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from support import ROOT

BIN = Path(sys.executable).parent
HEADER = [
    "# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)",
    "# SPDX-License-Identifier: GPL-3.0-or-later",
]

# Local state, by path component: none of it may reach the tarball.
STATE_PARTS = {
    ".hypothesis",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    "__pycache__",
    ".venv",
    ".collections",
    ".ansible",
    "build",
    "context",
    "output",
}
# The development side of the checkout (it needs a clone: .venv, .collections, git).
DEV_TOP = {
    "Makefile",
    "scripts",
    "tests",
    "benchmarks",
    ".ci",
    ".gitignore",
    ".pre-commit-config.yaml",
    ".git-blame-ignore-revs",
    ".ansible-lint",
    "pyproject.toml",
    "pytest.ini",
    "requirements-dev.txt",
    "requirements-newest.txt",
}
# Planted on top of one entry per .gitignore pattern.
PLANTED = [
    ".hypothesis/examples/0f/1a",
    ".pytest_cache/v/cache/lastfailed",
    ".ruff_cache/0.17.6/123",
    ".mypy_cache/3.11/x.json",
    ".ansible/tmp/ansible-local-1/x",
    ".venv/bin/python",
    "build/ansible_collections/lcfg/xen/galaxy.yml",
    "context/Containerfile",
    "tests/output/junit.xml",
    "benchmarks/output/result.json",
    "plugins/filter/__pycache__/guest.cpython-311.pyc",
    "plugins/module_utils/common/__pycache__/errors.cpython-311.pyc",
    "roles/guest/molecule/default/__pycache__/x.pyc",
    "changelogs/.plugin-cache.yaml",
    "lcfg-xen-0.0.1.tar.gz",
]


def header_of(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    if lines and (lines[0].startswith("#!") or lines[0] == "---"):  # a shebang or a YAML document start
        lines = lines[1:]
    return lines[:3]


def shipped_sources() -> list[str]:
    """The Python files under plugins/ and the YAML files under plugins/, roles/, playbooks/, meta/."""
    paths = list((ROOT / "plugins").rglob("*.py"))
    paths += [p for top in ("plugins", "roles", "playbooks", "meta") for p in (ROOT / top).rglob("*.yml")]
    return sorted(p.relative_to(ROOT).as_posix() for p in paths)


@pytest.mark.parametrize("path", shipped_sources(), ids=str)
def test_plugin_file_carries_the_licence_header(path):
    first = header_of(ROOT / path)
    assert first[0].startswith("# Copyright (c) "), first
    assert first[1:] == HEADER


def test_licence_file_the_header_names():
    text = (ROOT / "LICENSES" / "GPL-3.0-or-later.txt").read_text(encoding="utf-8")
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 3, 29 June 2007" in text


def gitignore_samples() -> list[str]:
    """One path per .gitignore pattern, so new ignored state is checked as soon as it is named."""
    samples = []
    for raw in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith(("#", "!")):
            continue
        pattern = pattern.lstrip("/")
        if pattern.startswith("*."):
            samples += [f"stray{pattern[1:]}", f"plugins/filter/stray{pattern[1:]}"]
        elif pattern.endswith("/"):
            samples.append(f"{pattern}planted")
        else:
            samples.append(pattern)
    return samples


def copy_checkout(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if not src.is_symlink() and not src.exists():  # deleted in the work tree
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("package")
    tree = base / "tree"
    copy_checkout(tree)
    for rel in PLANTED + gitignore_samples():
        target = tree / rel
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("local state\n")
    (tree / ".collections/ansible_collections/lcfg").mkdir(parents=True)
    (tree / ".collections/ansible_collections/lcfg/xen").symlink_to(tree)
    out = base / "out"
    subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", str(tree), "--output-path", str(out)],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    (path,) = out.glob("lcfg-xen-*.tar.gz")
    return path


@pytest.fixture(scope="module")
def names(tarball) -> list[str]:
    with tarfile.open(tarball) as tar:
        return [m.name.rstrip("/") for m in tar.getmembers()]


def test_tarball_carries_no_local_state(names):
    leaked = [n for n in names if STATE_PARTS & set(n.split("/")) or n.endswith((".pyc", ".tar.gz"))]
    assert leaked == []
    assert not [n for n in names if "planted" in n or "stray" in n]
    assert "changelogs/.plugin-cache.yaml" not in names


def test_tarball_leaves_out_the_checkouts_development_side(names):
    assert sorted({n.split("/")[0] for n in names} & DEV_TOP) == []


def test_tarball_carries_the_collection(names):
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "plugins/modules").glob("*.py"))
    roles = sorted(f"roles/{p.name}/tasks/main.yml" for p in (ROOT / "roles").iterdir() if p.is_dir())
    playbooks = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "playbooks").glob("*.yml"))
    docs = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
    wanted = [
        "MANIFEST.json",
        "FILES.json",
        "README.md",
        "COPYING",
        "LICENSES/GPL-3.0-or-later.txt",
        "requirements.txt",
        "meta/runtime.yml",
        "meta/execution-environment.yml",
        "meta/ee-requirements.txt",
        "meta/ee-bindep.txt",
        "plugins/inventory/lcfg.py",
        "plugins/filter/guest.py",
        "plugins/module_utils/common/errors.py",
        "changelogs/changelog.yaml",
        "inventory/site.lcfg.yml",
        *modules,
        *roles,
        *playbooks,
        *docs,
    ]
    assert len(modules) >= 8 and len(roles) >= 3 and len(playbooks) >= 4 and docs
    assert [w for w in wanted if w not in names] == []


def test_tarball_installs_into_a_fresh_path(tarball, tmp_path):
    # Only the fresh path: neither this checkout (PYTHONPATH, .collections) nor ~/.ansible.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["ANSIBLE_COLLECTIONS_PATH"] = str(tmp_path)
    proc = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "--force", str(tarball), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    installed = tmp_path / "ansible_collections/lcfg/xen"
    assert "Version 3, 29 June 2007" in (installed / "LICENSES/GPL-3.0-or-later.txt").read_text()
    assert (installed / "plugins/modules/xen_domain.py").read_text() == (
        ROOT / "plugins/modules/xen_domain.py"
    ).read_text()
    assert not (installed / "scripts").exists() and not (installed / "tests").exists()
