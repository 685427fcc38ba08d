"""Execution environments: what ansible-builder takes from the built collection.

The collection is built (``ansible-galaxy collection build``) and installed into a fresh
collections path. ``ansible-builder introspect --sanitize`` on that path must give exactly the
controller-side needs of meta/execution-environment.yml. ``ansible-builder create`` (no
container engine needed) then writes the build context of an EE that installs the tarball;
its galaxy and builder stages are replayed here without a container: the context's
``ansible-galaxy collection install -r requirements.yml`` as the Containerfile runs it, then the
context's own ``introspect.py`` writing the requirements the image would install.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support import ROOT

BIN = Path(sys.executable).parent
# Development and test tools, and what the EE must not build: none may reach an EE.
NOT_IN_EE = {
    "hypothesis",
    "pytest",
    "pytest-xdist",
    "jmespath",
    "molecule",
    "ansible-lint",
    "ruff",
    "ansible-builder",
    "libvirt-python",
}


def clean_env(collections: Path | None = None) -> dict[str, str]:
    """No PYTHONPATH or ~/.ansible: only the path given counts as installed collections."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["ANSIBLE_COLLECTIONS_PATH"] = str(collections or "/nonexistent")
    return env


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("env", clean_env())
    proc = subprocess.run(
        cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300, check=False, **kwargs
    )
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc


def entries(path: Path) -> list[str]:
    lines = (raw.strip() for raw in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def name_of(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower()


# What the collection declares for an EE (meta/execution-environment.yml and its files).
META = yaml.safe_load((ROOT / "meta/execution-environment.yml").read_text(encoding="utf-8"))
EE_PYTHON = entries(ROOT / META["dependencies"]["python"])
EE_SYSTEM = entries(ROOT / META["dependencies"]["system"])


def from_collection(lines: list[str]) -> list[str]:
    return [f"{line}  # from collection lcfg.xen" for line in lines]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ee-build")
    run([str(BIN / "ansible-galaxy"), "collection", "build", str(ROOT), "--output-path", str(out)])
    (tarball,) = out.glob("lcfg-xen-*.tar.gz")
    return tarball


def install(tarball: Path, dest: Path, cwd: Path | None = None, requirements: str | None = None) -> None:
    source = ["-r", requirements] if requirements else [str(tarball)]
    run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "--force", *source, "--collections-path", str(dest)],
        env=clean_env(dest),
        cwd=cwd,
    )
    assert (dest / "ansible_collections/lcfg/xen/MANIFEST.json").is_file()


def test_the_declared_ee_needs_are_the_controllers_only():
    assert META["version"] == 1
    assert [name_of(r) for r in EE_PYTHON] == ["lxml", "orjson", "pyvmomi"]
    assert {name_of(r) for r in EE_PYTHON + EE_SYSTEM} & NOT_IN_EE == set()
    run([str(BIN / "bindep"), "--file", str(ROOT / META["dependencies"]["system"]), "--profiles"])


def test_introspect_on_the_installed_collection(built, tmp_path):
    install(built, tmp_path)
    proc = run([str(BIN / "ansible-builder"), "introspect", "--sanitize", str(tmp_path)])
    data = yaml.safe_load(proc.stdout[proc.stdout.index("---") :])
    assert data == {"python": from_collection(EE_PYTHON), "system": from_collection(EE_SYSTEM)}


def test_create_writes_a_context_whose_requirements_are_the_collections(built, tmp_path):
    shutil.copy(built, tmp_path / built.name)
    definition = {
        "version": 3,
        "dependencies": {
            "ansible_core": {"package_pip": "ansible-core>=2.19"},
            "ansible_runner": {"package_pip": "ansible-runner"},
            "galaxy": {"collections": [{"name": built.name, "type": "file"}]},
        },
        "additional_build_files": [{"src": built.name, "dest": "."}],
    }
    (tmp_path / "execution-environment.yml").write_text(yaml.safe_dump(definition))
    context = tmp_path / "context"
    run(
        [
            str(BIN / "ansible-builder"),
            "create",
            "--file",
            "execution-environment.yml",
            "--context",
            str(context),
            "--output-filename",
            "Containerfile",
        ],
        cwd=tmp_path,
    )
    containerfile = (context / "Containerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile
    assert "introspect.py introspect" in containerfile
    build = context / "_build"
    assert yaml.safe_load((build / "requirements.yml").read_text()) == definition["dependencies"]["galaxy"]
    assert (build / built.name).read_bytes() == built.read_bytes()

    # The galaxy stage (WORKDIR /build), then the builder stage's introspection, without a container.
    share = tmp_path / "share"
    install(built, share, cwd=build, requirements="requirements.yml")
    pip_out, bindep_out = tmp_path / "src/requirements.txt", tmp_path / "src/bindep.txt"
    pip_out.parent.mkdir()
    run(
        [
            sys.executable,
            str(build / "scripts/introspect.py"),
            "introspect",
            str(share),
            f"--write-pip={pip_out}",
            f"--write-bindep={bindep_out}",
        ]
    )
    assert entries(pip_out) == from_collection(EE_PYTHON)
    assert entries(bindep_out) == from_collection(EE_SYSTEM)
    assert {name_of(line) for line in entries(pip_out) + entries(bindep_out)} & NOT_IN_EE == set()
