"""Every documented inventory configuration, run by the real ``ansible-inventory``.

The EXAMPLES of plugins/inventory/lcfg.py, the configuration blocks of docs/inventory.md
and the example inventories (inventory/, inventory-seed/) must load and give hosts and
groups. Example paths that exist only on an LCFG server are mapped to copies of
tests/fixtures/profiles; the https profile URLs of the server example are served over
plain http on the loopback (the config is otherwise unchanged).
Also: ``-i inventory/`` (the directory) loads without a warning, and a project source is
read the way AWX/AAP reads it (``--list --export``, unparsed sources fatal).
"""

from __future__ import annotations

import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from support import PROFILES, ROOT, ansible_env, own_uuids, untrusted

pytestmark = pytest.mark.integration

PLUGIN = ROOT / "plugins" / "inventory" / "lcfg.py"


def _examples() -> list[str]:
    text = PLUGIN.read_text()
    block = text.split('EXAMPLES = r"""', 1)[1].split('"""', 1)[0]
    return [chunk.strip() + "\n" for chunk in re.split(r"\n\s*\n", block) if "plugin: lcfg.xen.lcfg" in chunk]


def _doc_configs() -> list[str]:
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "inventory.md").read_text(), re.S)
    return [b for b in blocks if "plugin: lcfg.xen.lcfg" in b]


def _doc_fragments() -> list[str]:
    """docs/inventory.md blocks that are option fragments to add to a configuration."""
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "inventory.md").read_text(), re.S)
    return [
        b
        for b in blocks
        if not re.search(r"^plugin:", b, re.M)
        and isinstance(data := yaml.safe_load(b), dict)  # (a playbook is a list)
        and data.keys() & {"host_access", "cache"}
    ]


def run(args: list[str], env_extra: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = ansible_env()
    env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] = "true"
    env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "true"
    env.update(env_extra or {})
    cmd = [str(Path(sys.executable).with_name("ansible-inventory")), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300, check=False)


def listing(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Failed to parse" not in proc.stderr, proc.stderr
    return untrusted(json.loads(proc.stdout))


def hosts_of(data: dict, group: str) -> list[str]:
    return data.get(group, {}).get("hosts", [])


class _XmlProfiles(http.server.BaseHTTPRequestHandler):
    """.../<host>/XML/profile.xml: the fixture XML profile renamed to <host> (own guest, UUIDs)."""

    def do_GET(self):  # noqa: N802 - http.server API
        match = re.fullmatch(r"/profiles/[^/]+/([a-z0-9-]+)/XML/profile\.xml", self.path)
        if not match:
            self.send_error(404)
            return
        host = match.group(1)
        text = (PROFILES / "xml" / "xen-single.xml").read_text()
        text = text.replace("xen-single", host).replace("profiledev", f"{host}vm")
        body = own_uuids(text, f"{int(host[-1]):08x}").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def profile_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _XmlProfiles)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _site(tmp_path: Path, storage: str = "/guests") -> None:
    """tmp_path/profiles and tmp_path/include: the fixture source profiles and headers."""
    for name, source in (("include", PROFILES / "include"), ("profiles", PROFILES / "source")):
        for path in source.rglob("*"):
            if path.is_file():
                dest = tmp_path / name / path.relative_to(source)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(re.sub(r"(/data)?/guests\b", storage, path.read_text()))


def _beside(config: str, tmp_path: Path) -> str:
    """The example's profiles beside its inventory directory (../lcfg/) mapped to this test's copies."""
    return config.replace("../lcfg/profiles", str(tmp_path / "profiles")).replace(
        "../lcfg/include", str(tmp_path / "include")
    )


def _localise(config: str, tmp_path: Path, server: str) -> str:
    """The example with server-only locations mapped to this test's copies."""
    config = config.replace("https://lcfg.example.org", server)
    config = _beside(config, tmp_path)
    config = config.replace("/var/lib/lcfg/conf/server/source", str(tmp_path / "profiles"))
    config = config.replace("/var/lib/lcfg/conf/server/include", str(tmp_path / "include"))
    return config.replace("~/.cache/lcfg-xen-inventory", str(tmp_path / "cache"))


def _check_fixture_site(data: dict) -> None:
    assert sorted(hosts_of(data, "xen_hypervisors")) == ["xen-cluster", "xen-groups", "xen-networks", "xen-single"]
    guests = hosts_of(data, "xen_guests")
    assert "profiledev" in guests and len(guests) >= 10
    assert data["_meta"]["hostvars"]["profiledev"]["xen_hypervisor"] == "xen-single"


@pytest.mark.parametrize("index", range(len(_examples())))
def test_plugin_examples_load(tmp_path, profile_server, index):
    config = _examples()[index]
    uses_host_access = "host_access:" in config
    _site(tmp_path, "/srv/guests" if uses_host_access else "/guests")
    path = tmp_path / "site.lcfg.yml"
    path.write_text(_localise(config, tmp_path, profile_server))
    data = listing(run(["-i", str(path), "--list"]))
    if "lcfg.example.org" in config:
        # strict_profiles with lenient templates: default(omit) skips the hypervisors
        assert sorted(hosts_of(data, "xen_hypervisors")) == ["xen1", "xen2"]
        assert hosts_of(data, "guests_of_xen1") == ["xen1vm"]
        assert hosts_of(data, "guests_of_xen2") == ["xen2vm"]
        assert sorted(hosts_of(data, "autostarted")) == ["xen1vm", "xen2vm"] or "autostarted" not in data
        assert not [g for g in data if g.startswith("guests_of_") and g[len("guests_of_") :] not in ("xen1", "xen2")]
    else:
        _check_fixture_site(data)
    if uses_host_access:
        hv = data["_meta"]["hostvars"]["xen-single"]
        assert hv["xen_host_access"]["storage_dirs"] == ["/var/lib/libvirt/images", "/srv/guests"]
    if "cache: true" in config:
        assert any((tmp_path / "cache").iterdir())  # the jsonfile cache was written
        _check_fixture_site(listing(run(["-i", str(path), "--list"])))  # and a warm run agrees


def test_the_example_with_omit_would_fail_under_template_strictness(tmp_path, profile_server):
    """Why the example sets strict_profiles, not strict: Constructable's strict rejects omit."""
    [config] = [c for c in _examples() if "keyed_groups" in c]
    config = _localise(config, tmp_path, profile_server).replace("strict_profiles: true", "strict: true")
    path = tmp_path / "site.lcfg.yml"
    path.write_text(config)
    proc = run(["-i", str(path), "--list"])
    assert proc.returncode != 0
    assert "Omit" in proc.stderr


@pytest.mark.parametrize("index", range(len(_doc_configs())))
def test_docs_inventory_md_configs_load(tmp_path, index):
    _site(tmp_path)
    path = tmp_path / "site.lcfg.yml"
    path.write_text(_beside(_doc_configs()[index], tmp_path))
    _check_fixture_site(listing(run(["-i", str(path), "--list"])))


@pytest.mark.parametrize("index", range(len(_doc_fragments())))
def test_docs_inventory_md_fragments_load(tmp_path, index):
    fragment = _doc_fragments()[index]
    _site(tmp_path, "/srv/guests" if "host_access" in fragment else "/guests")
    base = "plugin: lcfg.xen.lcfg\nsources: [profiles]\ninclude_path: [include]\n"
    path = tmp_path / "site.lcfg.yml"
    path.write_text(base + _localise(fragment, tmp_path, ""))
    _check_fixture_site(listing(run(["-i", str(path), "--list"])))


@pytest.mark.parametrize(
    "source, hypervisors",
    [
        ("inventory", ["demo-cluster", "demo-groups", "demo-networks", "demo-single"]),
        ("inventory/site.lcfg.yml", ["demo-cluster", "demo-groups", "demo-networks", "demo-single"]),
        ("inventory-seed", ["seed-cluster", "seed-networks", "seed-single"]),
        ("inventory-seed/seed.lcfg.yml", ["seed-cluster", "seed-networks", "seed-single"]),
    ],
)
def test_example_inventories_load_without_warnings(source, hypervisors):
    """``-i inventory/`` as users type it: the directory is an inventory, no parser warnings."""
    proc = run(["-i", source, "--list"], cwd=ROOT)
    data = listing(proc)
    # no parser tried the profiles or headers; the demo site has no model warnings at all
    # (the seed's slides override group values, which the plugin warns about)
    assert not re.search(r"ini|yaml|Unable to parse|Failed to parse|Skipping", proc.stderr), proc.stderr
    if source.startswith("inventory/") or source == "inventory":
        assert proc.stderr.strip() == ""
    assert sorted(hosts_of(data, "xen_hypervisors")) == hypervisors
    assert len(hosts_of(data, "xen_guests")) >= 3
    hv = data["_meta"]["hostvars"][hypervisors[0]]
    assert hv["ansible_connection"] == "local"  # group_vars/ beside the config applies


def test_awx_project_source(tmp_path):
    """An AWX/AAP inventory source "Sourced from a Project" (docs/awx.md): the project is a
    copy of the example layout, the source file inventory/site.lcfg.yml; AWX runs
    ``ansible-inventory -i <source> --list --export`` in the project directory with unparsed
    sources fatal, and imports hosts, groups and their variables from the JSON."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "inventory", project / "inventory")
    shutil.copytree(ROOT / "lcfg", project / "lcfg")
    env = {
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_INVENTORY_ENABLED": "auto,lcfg.xen.lcfg",
        "ANSIBLE_TRANSFORM_INVALID_GROUP_CHARS": "never",
    }
    args = ["-i", "inventory/site.lcfg.yml", "--list", "--export", "--playbook-dir", str(project / "inventory")]
    proc = run(args, env, cwd=project)
    data = listing(proc)
    hypervisors = sorted(hosts_of(data, "xen_hypervisors"))
    assert hypervisors == ["demo-cluster", "demo-groups", "demo-networks", "demo-single"]
    guests = hosts_of(data, "xen_guests")
    assert "demo-profiledev" in guests and len(guests) >= 10
    assert data["all"]["children"] and "xen_hypervisors" in data["all"]["children"]
    hostvars = data["_meta"]["hostvars"]
    assert hostvars["demo-profiledev"]["xen_hypervisor"] == "demo-single"
    assert hostvars["demo-profiledev"]["xen_domain"]["memory"] >= 64
    assert "bridges" in hostvars["demo-networks"]["xen_host"]
    # --export keeps group_vars as group variables (AWX stores them on the group), not
    # merged into every host
    assert data["xen_hypervisors"]["vars"]["xen_uri"] == "qemu:///system"
    assert "xen_uri" not in hostvars["demo-single"]
    for group in ("cluster1", "cluster2", "cluster3"):
        assert hosts_of(data, group)
