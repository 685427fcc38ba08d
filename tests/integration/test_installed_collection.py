"""The collection as a user gets it: built, installed, used from a directory of their own.

``ansible-galaxy collection build`` makes the tarball, ``ansible-galaxy collection install
-p`` puts it in a fresh path, and everything after runs in a project directory with no
checkout, with ANSIBLE_COLLECTIONS_PATH naming only the install path (no PYTHONPATH):
``ansible-doc`` for every plugin and role, ``ansible-inventory`` on a copy of the example
inventory, ``ansible-playbook lcfg.xen.site --check`` (changes nothing), a real run on the
local libvirtd (which builds the guests' missing template with xen_disk state=template),
then ``lcfg.xen.teardown``. Slow (minutes).

The copy renames the example's guests, networks, bridges, MACs, addresses, UUIDs and
template (``RENAMES``), so neither a user's ``make site`` nor another test is touched;
everything the test made (domains, networks, images, template, directories) is removed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import ROOT, example_site_copy, remove_domains, remove_networks, untrusted

pytestmark = [pytest.mark.integration, pytest.mark.slow]

libvirt = pytest.importorskip("libvirt")

URI = "qemu:///system"
PREFIX = "lcfgin-"
RENAMES = (
    ("demo-", PREFIX),
    ("lcfg-nat", "lcfgin-nat"),
    ("xenbr", "inbr"),
    ("52:54:00:6c:", "52:54:00:9d:"),
    ("10.0.", "10.83."),
    ("lcfg_template.img", "lcfgin_template.img"),
    ("container_busybox.img", "lcfgin_container.img"),
)
CONTAINER_URI = "lxc:///system"
BIN = Path(sys.executable).parent


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL, check=False
    )


def _user_env(collections: Path) -> dict[str, str]:
    """The environment of a user of the installed collection: no checkout anywhere on it."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ANSIBLE_", "PYTHONPATH"))}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(collections),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        ANSIBLE_HOME=str(collections.parent / "ansible-home"),
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    env.setdefault("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")
    return env


def _recap(stdout: str) -> dict[str, dict[str, int]]:
    return {
        host: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
        for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", stdout, re.M)
    }


def _own_objects() -> tuple[set[str], set[str]]:
    conn = libvirt.open(URI)
    try:
        domains = {d.name() for d in conn.listAllDomains(0) if d.name().startswith(PREFIX)}
        networks = {n.name() for n in conn.listAllNetworks(0) if n.name().startswith(PREFIX)}
        return domains, networks
    finally:
        conn.close()


def _installed_plugins(collection: Path) -> list[tuple[str, str]]:
    """(type, name) of every plugin and role the installed collection carries."""
    plugins = [("module", p.stem) for p in (collection / "plugins" / "modules").glob("*.py") if p.stem != "__init__"]
    plugins += [("inventory", p.stem) for p in (collection / "plugins" / "inventory").glob("*.py")]
    plugins += [("filter", p.stem) for p in (collection / "plugins" / "filter").glob("*.yml")]
    plugins += [("role", p.parent.parent.name) for p in (collection / "roles").glob("*/meta/argument_specs.yml")]
    return sorted(plugins)


def test_installed_collection_documents_itself_and_runs_the_site(tmp_path):
    collections = tmp_path / "collections"
    project = tmp_path / "project"
    project.mkdir()
    env = _user_env(collections)

    # Build and install, as a user would.
    build = _run(
        [str(BIN / "ansible-galaxy"), "collection", "build", str(ROOT), "--output-path", str(tmp_path / "dist")],
        env,
        tmp_path,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (tarball,) = (tmp_path / "dist").glob("lcfg-xen-*.tar.gz")
    install = _run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "-p", str(collections), str(tarball)], env, tmp_path
    )
    assert install.returncode == 0, install.stdout + install.stderr
    installed = collections / "ansible_collections" / "lcfg" / "xen"
    assert (installed / "MANIFEST.json").is_file()
    assert not (installed / ".collections").exists()

    # ansible-doc for every plugin and role, from the installed copy only.
    plugins = _installed_plugins(installed)
    assert {plugin[0] for plugin in plugins} >= {"module", "inventory", "filter", "role"}
    assert ("filter", "guest_templates") in plugins and ("role", "guest") in plugins
    for kind, name in plugins:
        doc = _run([str(BIN / "ansible-doc"), "-t", kind, "--json", f"lcfg.xen.{name}"], env, project)
        assert doc.returncode == 0, (kind, name, doc.stderr)
        data = json.loads(doc.stdout)
        assert f"lcfg.xen.{name}" in data, (kind, name, list(data))
        assert "[WARNING]" not in doc.stderr, (kind, name, doc.stderr)
    listing = _run([str(BIN / "ansible-doc"), "-t", "module", "-l", "lcfg.xen"], env, project)
    assert listing.returncode == 0 and "lcfg.xen.xen_disk" in listing.stdout, listing.stderr

    # The roles' molecule scenarios find the copy they lie in, with no collections path set
    # and an empty home (so no ~/.ansible/collections either).
    bare = {key: value for key, value in env.items() if key != "ANSIBLE_COLLECTIONS_PATH"}
    bare["HOME"] = str(tmp_path / "home")
    scenarios = sorted(installed.glob("roles/*/molecule/default/molecule.yml"))
    assert {s.parts[-4] for s in scenarios} == {"guest", "hypervisor", "network"}, scenarios
    for scenario in scenarios:
        syntax = _run([str(BIN / "molecule"), "syntax"], bare, scenario.parents[2])
        assert syntax.returncode == 0, (scenario, syntax.stdout[-2000:], syntax.stderr[-2000:])

    # A project directory with only a renamed copy of the example inventory.
    # the example as the tarball ships it, not the checkout's
    config = example_site_copy(project, RENAMES, "1a570001", PREFIX, source=installed)
    inv = _run([str(BIN / "ansible-inventory"), "-i", str(config), "--list"], env, project)
    assert inv.returncode == 0, inv.stderr
    hostvars = untrusted(json.loads(inv.stdout))["_meta"]["hostvars"]
    guests = {hv["xen_domain"]["name"]: hv["xen_domain"] for hv in hostvars.values() if "xen_domain" in hv}
    assert guests and all(name.startswith(PREFIX) for name in guests), sorted(guests)
    # a container's template is a root filesystem the play does not build: made here, as make site does
    rootfs = {spec["template"] for spec in guests.values() if spec.get("template") and spec["type"] == "container"}
    assert rootfs and all(Path(t).name == "lcfgin_container.img" for t in rootfs), rootfs
    templates = {spec["template"] for spec in guests.values() if spec.get("template")} - rootfs
    assert templates and all(Path(t).name == "lcfgin_template.img" for t in templates), templates
    images = {
        disk["path"] for spec in guests.values() for disk in spec["disks"] if disk.get("type", "image") == "image"
    }
    assert images and all(PREFIX in Path(path).name for path in images), images
    made = [p for p in templates | images if os.path.lexists(p)]
    assert not made, f"left over from an earlier run: {made}"
    template_dirs_before = {str(Path(t).parent): Path(t).parent.exists() for t in templates | rootfs}

    site = [str(BIN / "ansible-playbook"), "-i", str(config), "lcfg.xen.site"]
    try:
        for path in rootfs:
            subprocess.run(["bash", str(ROOT / "scripts" / "container-template.sh"), path, "32"], check=True)
        check = _run([*site, "--check"], env, project, timeout=1800)
        assert check.returncode == 0, check.stdout[-5000:] + check.stderr[-2000:]
        assert _own_objects() == (set(), set()), "the check run defined domains or networks"
        assert not [p for p in templates | images if os.path.lexists(p)], "the check run made images"
        assert "would" in check.stdout or "changed" in check.stdout

        real = _run(site, env, project, timeout=3600)
        assert real.returncode == 0, real.stdout[-5000:] + real.stderr[-2000:]
        recap = _recap(real.stdout)
        assert recap and all(c["failed"] == 0 for c in recap.values()), real.stdout[-3000:]
        # The summary prints as a table, one row per line, under the default callback.
        rows = re.findall(r'^\s+"(\S+)\s+(lcfgin-\S+)\s+(\w+)\s', real.stdout, re.M)
        assert {row[1] for row in rows} == set(guests), real.stdout[-3000:]
        assert "\\n" not in "".join(line for line in real.stdout.splitlines() if "HYPERVISOR" in line)
        for template in templates:
            assert Path(template).is_file(), template
            info = json.loads(_run(["qemu-img", "info", "-f", "raw", "--output=json", template], env, project).stdout)
            assert info["virtual-size"] == 1024**3
        conn, containers = libvirt.open(URI), libvirt.open(CONTAINER_URI)
        try:
            for name, spec in guests.items():
                dom = (containers if spec["type"] == "container" else conn).lookupByName(name)
                assert bool(dom.isActive()) == spec["autostart"], name
                assert bool(dom.autostart()) == spec["autostart"], name
        finally:
            conn.close()
            containers.close()
        assert any(spec["autostart"] for spec in guests.values())

        teardown = _run(
            [
                str(BIN / "ansible-playbook"),
                "-i",
                str(config),
                "lcfg.xen.teardown",
                "-e",
                json.dumps(
                    {"teardown_shutdown_timeout": 5, "teardown_remove_networks": True, "teardown_remove_disks": True}
                ),
            ],
            env,
            project,
            timeout=1800,
        )
        assert teardown.returncode == 0, teardown.stdout[-3000:] + teardown.stderr[-2000:]
        assert _own_objects() == (set(), set())
        assert not [p for p in images if os.path.lexists(p)]
    finally:
        remove_domains(URI, PREFIX)
        remove_domains(CONTAINER_URI, PREFIX)
        remove_networks(URI, PREFIX)
        for path in templates | rootfs | images:
            if os.path.lexists(path):
                os.unlink(path)
        for directory, existed in template_dirs_before.items():
            if not existed and os.path.isdir(directory) and not os.listdir(directory):
                os.rmdir(directory)
        shutil.rmtree(tmp_path / "ansible-home", ignore_errors=True)
