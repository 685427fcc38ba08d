"""Unit tests of the lcfg.xen.lcfg inventory plugin.

``_populate`` runs on a real ``InventoryData`` with ``get_option`` stubbed by a dict and
site data built from hand-made profiles; ``parse`` runs in-process on config files
written to tmp_path (real readers, real cache plugin).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from ansible.errors import AnsibleError, AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader, inventory_loader
from ansible.template import is_trusted_as_template
from ansible.template import trust_as_template as T

# Load the collection through Ansible's collection loader (as ansible-inventory does). Other
# test modules may already have imported ``ansible_collections`` as a plain namespace package
# from sys.path; drop those entries so that the loader's finder takes over.
for _name in [n for n in sys.modules if n == "ansible_collections" or n.startswith("ansible_collections.")]:
    del sys.modules[_name]
init_plugin_loader([str(Path(__file__).resolve().parents[4] / ".collections")])

from ansible_collections.lcfg.xen.plugins.inventory import lcfg as plugin_mod
from ansible_collections.lcfg.xen.plugins.module_utils.common.confinement import DEFAULT_STORAGE_DIRS
from ansible_collections.lcfg.xen.plugins.plugin_utils import model as model_mod
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.profile import Profile, Resource
from ansible_collections.lcfg.xen.plugins.plugin_utils.model import build_site

OPTIONS = {
    "only_limited_profiles": False,
    "strict": False,
    "strict_profiles": None,
    "compose": {},
    "groups": {},
    "keyed_groups": [],
    "leading_separator": True,
    "use_extra_vars": False,
}


def make(name: str, xen: dict[str, str] | None, path: str | None = None) -> Profile:
    path = path or f"/site/{name}"
    prof = Profile(name=name, path=path)
    prof.resources["profile"] = {"components": Resource("client xen" if xen is not None else "client", f"{path}:1")}
    prof.resources["inv"] = {"location": Resource("JCMB-2422", f"{path}:2")}
    if xen is not None:
        prof.resources["xen"] = {
            res: Resource(value, f"{path}:{n}") for n, (res, value) in enumerate(xen.items(), start=3)
        }
    return prof


def site_data(profiles: list[Profile]) -> dict:
    site = build_site(profiles)
    return {
        "hosts": [h.to_data() for h in site.hosts.values()],
        "rejected": {k: [str(e) for e in v] for k, v in site.rejected.items()},
        "warnings": site.warnings,
    }


class Display:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, msg: str) -> None:
        self.warnings.append(msg)

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


@pytest.fixture
def plugin():
    def build(**options):
        mod = inventory_loader.get("lcfg.xen.lcfg")
        opts = dict(OPTIONS, **options)
        mod.get_option = opts.__getitem__
        mod.inventory = InventoryData()
        mod._vars = {}
        mod.loader = DataLoader()
        mod.display = Display()
        return mod

    return build


XEN1 = {
    "virtualmachines": "vm1 vm2",
    "name_vm1": "web",
    "memory_vm1": "256",
    "vifs_vm1": "v",
    "mac_vm1_v": "00:16:3e:00:00:01",
    "virtualgroup": "cl",
    "members_cl": "vm1 vm2",
    "groupvcpus_cl": "2",
}


def test_populate_hosts_groups_and_vars(plugin):
    mod = plugin()
    mod._populate(site_data([make("xen1", XEN1), make("desk", None)]))
    inv = mod.inventory
    assert set(inv.hosts) == {"xen1", "desk", "web", "vm2"}
    assert sorted(h.name for h in inv.groups["xen_hypervisors"].get_hosts()) == ["xen1"]
    assert sorted(h.name for h in inv.groups["xen_guests"].get_hosts()) == ["vm2", "web"]
    assert sorted(h.name for h in inv.groups["cl"].get_hosts()) == ["vm2", "web"]
    xen1 = inv.get_host("xen1").vars
    assert xen1["lcfg_resources"]["inv"] == {"location": "JCMB-2422"}
    assert xen1["xen_host"]["guests"] == ["web", "vm2"]
    assert xen1["xen_host"]["groups"]["cl"]["members"] == ["web", "vm2"]
    web = inv.get_host("web").vars
    assert web["xen_hypervisor"] == "xen1"
    assert web["xen_domain"]["memory"] == 256 and web["xen_domain"]["vcpus"] == 2
    assert web["xen_domain"]["vifs"][0]["mac"] == "00:16:3e:00:00:01"
    assert "lcfg_resources" not in web
    desk = inv.get_host("desk").vars
    assert "lcfg_resources" in desk and not {"xen_host", "xen_domain", "xen_hypervisor"} & set(desk)
    assert "desk" not in [h.name for h in inv.groups["xen_hypervisors"].get_hosts()]
    assert mod.display.warnings == []


def _with_limit(monkeypatch, subset):
    from ansible import context
    from ansible.utils.context_objects import CLIArgs

    monkeypatch.setattr(context, "CLIARGS", CLIArgs({"subset": subset}))


XEN2 = {"virtualmachines": "db", "virtualgroup": "dbs", "members_dbs": "db"}


@pytest.mark.parametrize(
    ("subset", "only", "hosts"),
    [
        ("xen2", True, {"xen2", "db"}),  # the profile whole: its guests come with it
        ("web", True, {"xen1", "web", "vm2"}),
        ("db,desk", True, {"xen2", "db", "desk"}),
        ("dbs", True, {"xen1", "web", "vm2", "xen2", "db", "desk"}),  # a group: every profile
        ("xen2", False, {"xen1", "web", "vm2", "xen2", "db", "desk"}),  # the default: every profile
        ("elsewhere", True, {"xen1", "web", "vm2", "xen2", "db", "desk"}),  # unknown term: every profile
        (None, True, {"xen1", "web", "vm2", "xen2", "db", "desk"}),
    ],
)
def test_only_limited_profiles_adds_the_profiles_the_limit_can_select(plugin, monkeypatch, subset, only, hosts):
    _with_limit(monkeypatch, subset)
    mod = plugin(only_limited_profiles=only)
    mod._populate(site_data([make("xen1", XEN1), make("xen2", XEN2), make("desk", None)]))
    assert set(mod.inventory.hosts) == hosts
    if "db" in hosts:
        assert [h.name for h in mod.inventory.groups["dbs"].get_hosts()] == ["db"]
        assert mod.inventory.get_host("db").vars["xen_hypervisor"] == "xen2"


def test_a_retry_file_that_is_not_a_regular_file_is_not_read(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        plugin_mod._read_lines(str(fifo))  # opening a FIFO would block the inventory


def test_profile_values_stay_plain_strings(plugin):
    mod = plugin()
    evil = dict(XEN1, note_vm2="{{ lookup('pipe', 'id') }}")  # any resource: lcfg_resources
    mod._populate(site_data([make("xen1", evil)]))
    value = mod.inventory.get_host("xen1").vars["lcfg_resources"]["xen"]["note_vm2"]
    assert value == "{{ lookup('pipe', 'id') }}"
    assert isinstance(value, str) and not is_trusted_as_template(value)


def test_broken_profile_left_out_with_warning_when_not_strict(plugin):
    mod = plugin(strict=False)
    bad = dict(XEN1, uuid_vm2="26d1876a-85fc-49a4-9a5b-929570e18bb65")
    mod._populate(site_data([make("xen1", bad), make("xen2", {"virtualmachines": "other"})]))
    assert set(mod.inventory.hosts) == {"xen2", "other"}
    assert "cl" not in mod.inventory.groups
    [warning] = mod.display.warnings
    assert warning.startswith("/site/xen1:11: xen.uuid_vm2: invalid UUID")


def test_broken_profile_fails_the_source_when_strict(plugin):
    mod = plugin(strict=True)
    bad = dict(XEN1, uuid_vm2="26d1876a-85fc-49a4-9a5b-929570e18bb65")
    with pytest.raises(AnsibleParserError, match=r"/site/xen1:11: xen\.uuid_vm2: invalid UUID"):
        mod._populate(site_data([make("xen1", bad)]))


def _with_another_source(mod) -> None:
    """What an earlier inventory source (a static inventory, another LCFG source) added."""
    mod.inventory.add_host("db1")
    mod.inventory.add_group("dbservers")
    mod.inventory.set_variable("dbservers", "db_password", "secret")


def test_a_profile_cannot_take_or_join_another_sources_hosts_and_groups(plugin):
    mod = plugin(strict=False)
    _with_another_source(mod)
    takes_a_host = {"virtualmachines": "vm1", "name_vm1": "db1"}
    joins_a_group = {"virtualmachines": "vm9", "virtualgroup": "dbservers", "members_dbservers": "vm9"}
    clean = {"virtualmachines": "vm5"}
    mod._populate(site_data([make("xen1", takes_a_host), make("xen2", joins_a_group), make("xen3", clean)]))
    inv = mod.inventory
    assert set(inv.hosts) == {"db1", "xen3", "vm5"}
    assert "xen_domain" not in inv.get_host("db1").vars
    assert [h.name for h in inv.groups["dbservers"].get_hosts()] == []
    assert len(mod.display.warnings) == 2
    assert mod.display.warnings[0].startswith("/site/xen1: db1 already named by another inventory source")
    assert mod.display.warnings[1].startswith("/site/xen2: dbservers already named by another inventory source")


def test_another_sources_names_fail_the_source_when_strict(plugin):
    mod = plugin(strict=True)
    _with_another_source(mod)
    with pytest.raises(AnsibleParserError, match=r"/site/xen1: db1 already named by another inventory source"):
        mod._populate(site_data([make("xen1", {"virtualmachines": "vm1", "name_vm1": "db1"})]))
    assert "xen1" not in mod.inventory.hosts


def test_model_warnings_are_displayed(plugin):
    mod = plugin()
    xen = dict(XEN1, vcpus_vm2="4")
    mod._populate(site_data([make("xen1", xen)]))
    [warning] = mod.display.warnings
    assert warning.startswith("/site/xen1:11: xen.vcpus_vm2: vcpus 4 (/site/xen1:11) overrides")
    assert "/site/xen1:10" in warning


def test_compose_groups_and_keyed_groups(plugin):
    mod = plugin(
        compose={"guest_memory": T("xen_domain.memory")},
        groups={"small": T("xen_domain is defined and xen_domain.memory < 300")},
        keyed_groups=[{"key": T("xen_hypervisor"), "prefix": "on", "separator": "_"}],
    )
    mod._populate(site_data([make("xen1", XEN1)]))
    inv = mod.inventory
    assert inv.get_host("web").vars["guest_memory"] == 256
    assert [h.name for h in inv.groups["small"].get_hosts()] == ["web"]
    assert sorted(h.name for h in inv.groups["on_xen1"].get_hosts()) == ["vm2", "web"]


def test_bad_compose_template_fails_only_when_strict(plugin):
    data = site_data([make("xen1", XEN1)])
    lenient = plugin(compose={"x": T("undefined_thing.attr")})
    lenient._populate(data)
    assert "x" not in lenient.inventory.get_host("web").vars
    strict = plugin(strict=True, compose={"x": T("undefined_thing.attr")})
    with pytest.raises(AnsibleParserError, match="Could not set x"):
        strict._populate(data)


def test_strict_profiles_apart_from_template_strictness(plugin):
    """strict_profiles fails the source on a bad profile; strict (templates) stays lenient,
    so a keyed group with default(omit) skips the hosts without the key."""
    bad = dict(XEN1, uuid_vm2="26d1876a-85fc-49a4-9a5b-929570e18bb65")
    keyed = [{"key": T("xen_hypervisor | default(omit)"), "prefix": "guests_of", "separator": "_"}]
    with pytest.raises(AnsibleParserError, match=r"strict_profiles: true.*\n/site/xen1:11: xen\.uuid_vm2"):
        plugin(strict_profiles=True)._populate(site_data([make("xen1", bad)]))
    mod = plugin(strict_profiles=True, keyed_groups=keyed)
    mod._populate(site_data([make("xen1", XEN1)]))
    assert sorted(h.name for h in mod.inventory.groups["guests_of_xen1"].get_hosts()) == ["vm2", "web"]
    assert not mod.display.warnings
    # template strictness without profile strictness: the bad profile is only left out
    lenient = plugin(strict=True, strict_profiles=False, compose={"x": T("inventory_hostname")})
    lenient._populate(site_data([make("xen1", bad), make("xen2", None)]))
    assert "xen1" not in lenient.inventory.hosts
    assert lenient.inventory.get_host("xen2").vars["x"] == "xen2"
    assert lenient.display.warnings[0].endswith("(profile left out)")


def test_strict_alone_still_fails_on_bad_profiles(plugin):
    """Configurations older than strict_profiles keep their meaning: strict unset-or-true."""
    bad = dict(XEN1, uuid_vm2="26d1876a-85fc-49a4-9a5b-929570e18bb65")
    with pytest.raises(AnsibleParserError, match="strict_profiles: true"):
        plugin(strict=True)._populate(site_data([make("xen1", bad)]))
    keyed = [{"key": T("xen_hypervisor | default(omit)"), "prefix": "guests_of", "separator": "_"}]
    with pytest.raises(AnsibleParserError, match="Omit"):
        plugin(strict=True, keyed_groups=keyed)._populate(site_data([make("xen1", XEN1)]))


@pytest.mark.parametrize(
    "name, ok",
    [
        ("site.lcfg.yml", True),
        ("site.lcfg.yaml", True),
        ("lcfg.yml", True),
        ("site.yml", False),
        ("site.lcfg.json", False),
        ("site.lcfg.yml.bak", False),
        ("lcfg", False),
    ],
)
def test_verify_file(tmp_path, name, ok):
    path = tmp_path / name
    path.write_text("plugin: lcfg.xen.lcfg\n")
    assert inventory_loader.get("lcfg.xen.lcfg").verify_file(str(path)) is ok


def test_verify_file_missing(tmp_path):
    assert not inventory_loader.get("lcfg.xen.lcfg").verify_file(str(tmp_path / "x.lcfg.yml"))


# ---------------------------------------------------------------- parse() in-process

XML_HYPERVISOR = (
    b'<?xml version="1.0"?>\n<profile><lcfg><components>'
    b"<profile><node>hvx</node><components>xen</components></profile>"
    b"<xen><virtualmachines>vmx</virtualmachines><memory_vmx>MEMORY</memory_vmx><maxmem_vmx>512</maxmem_vmx></xen>"
    b"</components></lcfg></profile>\n"
)

PROFILE = """#define MEM 128
!profile.components mADD(xen)
!xen.virtualmachines mADD(vm1)
!xen.memory_vm1 mSET(MEM)
#include <site.h>
"""


def write_site(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "include").mkdir()
    (tmp_path / "profiles" / "hv1").write_text(PROFILE)
    (tmp_path / "include" / "site.h").write_text("!xen.maxmem_vm1 mSET(256)\n")
    config = tmp_path / "site.lcfg.yml"
    config.write_text("plugin: lcfg.xen.lcfg\nsources: [profiles]\ninclude_path: [include]\n" + extra)
    return config


def parse(config: Path) -> InventoryData:
    inv = InventoryData()
    mod = inventory_loader.get("lcfg.xen.lcfg")
    mod.parse(inv, DataLoader(), str(config), cache=True)
    try:  # what InventoryManager does after parse()
        mod.update_cache_if_changed()
    except AttributeError:
        pass
    return inv


def test_parse_reads_relative_sources_and_include_path(tmp_path):
    inv = parse(write_site(tmp_path, "defines: {UNUSED: 1}\n"))
    dom = inv.get_host("vm1").vars["xen_domain"]
    assert (dom["memory"], dom["maxmem"]) == (128, 256)
    assert inv.get_host("hv1").vars["xen_host"]["guests"] == ["vm1"]


def test_parse_without_sources_is_a_parser_error(tmp_path):
    config = tmp_path / "x.lcfg.yml"
    config.write_text("plugin: lcfg.xen.lcfg\nsources: []\n")
    with pytest.raises(AnsibleParserError, match="sources"):
        parse(config)


def test_cache_is_used_and_never_stale(tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    config = write_site(
        tmp_path, f"cache: true\ncache_plugin: ansible.builtin.jsonfile\ncache_connection: {cache_dir}\n"
    )
    calls = []
    real = plugin_mod.load_site
    monkeypatch.setattr(plugin_mod, "load_site", lambda *a, **k: calls.append(1) or real(*a, **k))

    assert parse(config).get_host("vm1").vars["xen_domain"]["maxmem"] == 256
    assert len(calls) == 1 and any(cache_dir.iterdir())
    assert parse(config).get_host("vm1").vars["xen_domain"]["maxmem"] == 256
    assert len(calls) == 1  # warm cache: nothing re-read

    # a change to an included header (not a source) invalidates the cache
    header = tmp_path / "include" / "site.h"
    header.write_text("!xen.maxmem_vm1 mSET(384)\n")
    assert parse(config).get_host("vm1").vars["xen_domain"]["maxmem"] == 384
    assert len(calls) == 2

    # a new profile in a source directory invalidates it too
    (tmp_path / "profiles" / "hv2").write_text("!profile.components mADD(xen)\n")
    assert "hv2" in parse(config).hosts
    assert len(calls) == 3


def test_cache_off_by_default_reads_every_time(tmp_path, monkeypatch):
    config = write_site(tmp_path)
    calls = []
    real = plugin_mod.load_site
    monkeypatch.setattr(plugin_mod, "load_site", lambda *a, **k: calls.append(1) or real(*a, **k))
    parse(config)
    parse(config)
    assert len(calls) == 2


def test_cache_covers_every_file_read_even_outside_the_sources(tmp_path, monkeypatch):
    # a file source: its sibling header is read but is not under any source or include path
    cache_dir = tmp_path / "cache"
    config = write_site(
        tmp_path, f"cache: true\ncache_plugin: ansible.builtin.jsonfile\ncache_connection: {cache_dir}\n"
    )
    config.write_text(config.read_text().replace("sources: [profiles]", "sources: [profiles/hv1]"))
    (tmp_path / "profiles" / "hv1").write_text(PROFILE + '#include "local.h"\n')
    (tmp_path / "profiles" / "local.h").write_text("!xen.vcpus_vm1 mSET(2)\n")
    calls = []
    real = plugin_mod.load_site
    monkeypatch.setattr(plugin_mod, "load_site", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert parse(config).get_host("vm1").vars["xen_domain"]["vcpus"] == 2
    assert parse(config).get_host("vm1").vars["xen_domain"]["vcpus"] == 2
    assert len(calls) == 1
    (tmp_path / "profiles" / "local.h").write_text("!xen.vcpus_vm1 mSET(3)\n")
    assert parse(config).get_host("vm1").vars["xen_domain"]["vcpus"] == 3
    assert len(calls) == 2


@pytest.mark.parametrize("url", ["http://h/p.xml", "HTTP://h/p.xml", "Https://h/p.xml"])
def test_url_sources_in_any_case_are_keyed_by_their_content(tmp_path, url):
    assert plugin_mod._fingerprint(str(tmp_path), [url], [], {}) is None  # not fetched
    assert plugin_mod._fingerprint(str(tmp_path), [url], [], {}, None, {url: None}) is None  # fetch failed
    keyed = plugin_mod._fingerprint(str(tmp_path), [f" {url} "], [], {}, None, {url: "sha-1"})
    assert keyed is not None
    assert keyed != plugin_mod._fingerprint(str(tmp_path), [f" {url} "], [], {}, None, {url: "sha-2"})


def test_an_unchanged_url_site_is_read_from_the_cached_model(tmp_path, monkeypatch):
    from http_serving import serving  # noqa: PLC0415

    memory = {"value": "128"}
    asked = []

    def answer(handler):
        tag = f'"{memory["value"]}"'
        asked.append(handler.headers.get("If-None-Match"))
        if handler.headers.get("If-None-Match") == tag:
            return 304, {"ETag": tag}, b""
        body = XML_HYPERVISOR.replace(b"MEMORY", memory["value"].encode())
        return 200, {"ETag": tag}, body

    calls = []
    real = plugin_mod.load_site
    monkeypatch.setattr(plugin_mod, "load_site", lambda *a, **k: calls.append(1) or real(*a, **k))
    with serving(answer) as base:
        config = tmp_path / "site.lcfg.yml"
        config.write_text(
            "plugin: lcfg.xen.lcfg\n"
            f"sources: [{base}/hvx/XML/profile.xml]\n"
            f"http_store: {tmp_path / 'store'}\n"
            f"cache: true\ncache_plugin: ansible.builtin.jsonfile\ncache_connection: {tmp_path / 'cache'}\n"
        )
        assert parse(config).get_host("vmx").vars["xen_domain"]["memory"] == 128
        assert parse(config).get_host("vmx").vars["xen_domain"]["memory"] == 128
        assert len(calls) == 1 and asked == [None, '"128"']  # one 304, the model from the cache
        memory["value"] = "192"
        assert parse(config).get_host("vmx").vars["xen_domain"]["memory"] == 192
        assert len(calls) == 2


def test_after_one_url_changed_only_that_profile_is_read_again(tmp_path, monkeypatch):
    from http_serving import serving  # noqa: PLC0415

    memory = {"hva": "128", "hvb": "128"}

    def answer(handler):
        node = handler.path.split("/")[1]
        tag = f'"{node}-{memory[node]}"'
        if handler.headers.get("If-None-Match") == tag:
            return 304, {"ETag": tag}, b""
        body = XML_HYPERVISOR.replace(b"MEMORY", memory[node].encode())
        return 200, {"ETag": tag}, body.replace(b"hvx", node.encode()).replace(b"vmx", f"vm{node}".encode())

    read = []
    from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg import xml as xml_reader  # noqa: PLC0415

    real = xml_reader.read_xml_profile
    monkeypatch.setattr(xml_reader, "read_xml_profile", lambda source, **k: read.append(source) or real(source, **k))
    with serving(answer) as base:
        config = tmp_path / "site.lcfg.yml"
        config.write_text(
            "plugin: lcfg.xen.lcfg\n"
            f"sources: [{base}/hva/XML/profile.xml, {base}/hvb/XML/profile.xml]\n"
            f"http_store: {tmp_path / 'store'}\n"  # no model cache: the store alone
        )
        first = parse(config)
        assert [first.get_host(g).vars["xen_domain"]["memory"] for g in ("vmhva", "vmhvb")] == [128, 128]
        assert len(read) == 2
        memory["hvb"] = "192"
        again = parse(config)
        assert [again.get_host(g).vars["xen_domain"]["memory"] for g in ("vmhva", "vmhvb")] == [128, 192]
        assert read[2:] == [f"{base}/hvb/XML/profile.xml"]  # hva came from the store as built
        # the same hosts, variables and order as a read without the store
        (tmp_path / "store").rename(tmp_path / "old-store")
        fresh = parse(config)
        assert list(fresh.hosts) == list(again.hosts)
        assert all(fresh.get_host(h).vars == again.get_host(h).vars for h in fresh.hosts)


def test_a_damaged_built_entry_is_built_again(tmp_path):
    from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.http_store import HttpStore  # noqa: PLC0415

    store = HttpStore(str(tmp_path))
    store.remember_built("http://h/a.xml", "k", {"name": "h"})
    assert store.built("http://h/a.xml", "k") == {"name": "h"}
    assert store.built("http://h/a.xml", "other") is None and store.built("http://h/b.xml", "k") is None
    store.remember_built("http://h/a.xml", "k2", {"name": "h2"})  # one entry per URL: replaced
    assert len(list((tmp_path / "built").iterdir())) == 1 and store.built("http://h/a.xml", "k") is None
    next((tmp_path / "built").iterdir()).write_text('{"key": "k2", "built": [1]}')
    assert store.built("http://h/a.xml", "k2") is None


def test_a_kept_entry_must_agree_with_what_the_site_checks_judged():
    from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.xml import read_xml_profile  # noqa: PLC0415

    body = XML_HYPERVISOR.replace(b"MEMORY", b"128").replace(b"hvx", b"hvk").replace(b"vmx", b"vmk")
    kept = model_mod.build_profile(read_xml_profile("http://h/hvk/XML/profile.xml", data=body)).to_data()
    assert model_mod.BuiltProfile.from_data(kept).data["guests"].keys() == {"vmk"}
    smuggled = {**kept, "data": {**kept["data"], "guests": {**kept["data"]["guests"], "all": {}}}}
    renamed = {**kept, "data": {**kept["data"], "name": "other"}}
    grouped = {**kept, "data": {**kept["data"], "groups": {"xen_hypervisors": ["vmk"]}}}
    shapeless = {**kept, "files": [["a"]]}
    for bad in (smuggled, renamed, grouped, shapeless, {**kept, "data": ["oops"]}, {**kept, "errors": [[1, 2, 3, 4]]}):
        with pytest.raises((KeyError, TypeError, ValueError)):
            model_mod.BuiltProfile.from_data(bad)


@pytest.mark.parametrize("timeout", ["0", "-1", ".nan", ".inf", "100000"])
def test_timeout_must_be_a_positive_finite_number(tmp_path, timeout):
    with pytest.raises(AnsibleParserError, match="option 'timeout'"):
        parse(write_site(tmp_path, f"timeout: {timeout}\n"))


def test_cache_notices_a_header_added_beside_a_single_file_source(tmp_path, monkeypatch):
    # '#include "site.h"' looks beside the profile first: a new profiles/site.h shadows include/
    cache_dir = tmp_path / "cache"
    config = write_site(
        tmp_path, f"cache: true\ncache_plugin: ansible.builtin.jsonfile\ncache_connection: {cache_dir}\n"
    )
    config.write_text(config.read_text().replace("sources: [profiles]", "sources: [profiles/hv1]"))
    (tmp_path / "profiles" / "hv1").write_text(PROFILE.replace("<site.h>", '"site.h"'))
    assert parse(config).get_host("vm1").vars["xen_domain"]["maxmem"] == 256
    time.sleep(0.01)  # a distinct directory mtime
    (tmp_path / "profiles" / "site.h").write_text("!xen.maxmem_vm1 mSET(512)\n")
    assert parse(config).get_host("vm1").vars["xen_domain"]["maxmem"] == 512


# --------------------------------------------------------------------------- host_access

MYGRUB_PROFILE = (
    "!profile.components mADD(xen)\n!xen.virtualmachines mADD(vm1)\n!xen.bootloader_vm1 mSET(/usr/local/bin/mygrub)\n"
)
ALLOW_MYGRUB = "host_access:\n  allowed_boot_paths: [/usr/local/bin/mygrub]\n"


def test_host_access_lets_the_site_bootloader_in_and_sets_xen_host_access(tmp_path, capsys):
    config = write_site(tmp_path)
    (tmp_path / "profiles" / "hv1").write_text(MYGRUB_PROFILE)
    assert "vm1" not in parse(config).hosts  # default rules: the whole hypervisor profile is left out
    assert "hv1:3: xen.bootloader_vm1" in capsys.readouterr().err.replace("\n", " ").replace(
        f"{tmp_path}/profiles/", ""
    )
    config.write_text(config.read_text() + ALLOW_MYGRUB)
    inv = parse(config)
    assert inv.get_host("vm1").vars["xen_domain"]["bootloader"] == "/usr/local/bin/mygrub"
    access = inv.get_host("hv1").vars["xen_host_access"]
    assert access == {
        "storage_dirs": list(DEFAULT_STORAGE_DIRS),
        "allow_host_resources": False,
        "allow_containers": False,
        "trusted_extra_xml": False,
        "allowed_boot_paths": ["/usr/local/bin/mygrub"],
        "allowed_block_devices": [],
    }
    assert "xen_host_access" not in inv.get_host("vm1").vars


def test_without_host_access_no_hypervisor_gets_xen_host_access(tmp_path):
    assert "xen_host_access" not in parse(write_site(tmp_path)).get_host("hv1").vars


@pytest.mark.parametrize(
    "option, words",
    [
        ("host_access:\n  allowed_boot_path: [/usr]\n", "option host_access: unknown key allowed_boot_path"),
        (
            "host_access:\n  allowed_boot_paths: [usr/local]\n",
            "option host_access.allowed_boot_paths: 'usr/local' is not an absolute path",
        ),
        (
            "host_access:\n  allowed_block_devices: ['~/dev']\n",
            "option host_access.allowed_block_devices: '~/dev' is not an absolute",
        ),
        ("host_access:\n  storage_dirs: []\n", "option host_access.storage_dirs: must name at least one directory"),
        ("host_access:\n  trusted_extra_xml: maybe\n", "'trusted_extra_xml'"),
        ("host_access:\n  allow_host_resources: {a: 1}\n", "'allow_host_resources'"),
    ],
)
def test_host_access_errors_name_the_option(tmp_path, option, words):
    config = write_site(tmp_path, option)
    with pytest.raises(AnsibleParserError) as info:
        parse(config)
    assert str(info.value).startswith(f"{config}: option host_access")
    assert words in str(info.value)


def test_host_access_that_is_not_a_mapping_names_the_option(tmp_path):
    with pytest.raises(AnsibleError) as info:  # Ansible's own check of a dict option
        parse(write_site(tmp_path, "host_access: [/usr]\n"))
    assert "'host_access'" in str(info.value)
    with pytest.raises(ValueError, match="option host_access must be a mapping"):
        plugin_mod.host_access_option(["/usr"])


def test_host_access_is_validated_like_the_module_options():
    """The argument spec of the modules: strings convert as they do for a module option."""
    access = plugin_mod.host_access_option(
        {"allowed_boot_paths": "/a,/b", "trusted_extra_xml": "yes", "storage_dirs": ["/srv/vm/"]}
    )
    assert access.allowed_boot_paths == ("/a", "/b") and access.trusted_extra_xml
    assert access.storage_dirs == ("/srv/vm",)
    assert plugin_mod.host_access_option(None) is None
    assert plugin_mod.host_access_option({}).storage_dirs == tuple(DEFAULT_STORAGE_DIRS)


def test_cache_key_changes_with_host_access(tmp_path, monkeypatch):
    base = [str(tmp_path), ["profiles"], [], {}]
    (tmp_path / "profiles").mkdir()
    keys = {
        plugin_mod._fingerprint(*base, access)
        for access in (
            None,
            {"allowed_boot_paths": ["/usr/local/bin/mygrub"]},
            {"allowed_boot_paths": ["/usr/local/bin"]},
            {"allow_host_resources": True},
        )
    }
    assert len(keys) == 4 and None not in keys
    assert plugin_mod._fingerprint(*base, None) == plugin_mod._fingerprint(*base)

    # end to end: a warm cache built without the option is not used once it is set
    cache_dir = tmp_path / "site" / "cache"
    (tmp_path / "site").mkdir()
    config = write_site(
        tmp_path / "site", f"cache: true\ncache_plugin: ansible.builtin.jsonfile\ncache_connection: {cache_dir}\n"
    )
    (tmp_path / "site" / "profiles" / "hv1").write_text(MYGRUB_PROFILE)
    calls = []
    real = plugin_mod.load_site
    monkeypatch.setattr(plugin_mod, "load_site", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert "vm1" not in parse(config).hosts and "vm1" not in parse(config).hosts
    assert len(calls) == 1
    config.write_text(config.read_text() + ALLOW_MYGRUB)
    assert "vm1" in parse(config).hosts and len(calls) == 2
    assert "vm1" in parse(config).hosts and len(calls) == 2


def test_a_guest_cannot_take_the_name_of_a_profile_that_cannot_be_read(tmp_path):
    # a guest named like a hypervisor whose profile has a syntax error would become that host
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "xen9").write_text("just words here\n")
    (tmp_path / "profiles" / "xen9b.xml").write_text("<profile>")
    (tmp_path / "profiles" / "evil").write_text(
        "!profile.components mADD(xen)\n!xen.virtualmachines mADD(g h)\n"
        "!xen.name_g mSET(xen9)\n!xen.name_h mSET(xen9b)\n"
    )
    (tmp_path / "profiles" / "good").write_text("!profile.components mADD(xen)\n!xen.virtualmachines mADD(vm)\n")
    data = plugin_mod.load_site(str(tmp_path), ["profiles"], [], {}, 5.0, True)
    assert [host["name"] for host in data["hosts"]] == ["good"]
    evil = " ".join(data["rejected"]["evil"])
    assert (
        f"evil:3: xen.name_g: guest name 'xen9' at {tmp_path}/profiles/evil:3 is the host name of "
        f"profile {tmp_path}/profiles/xen9" in evil
    )
    assert (
        f"guest name 'xen9b' at {tmp_path}/profiles/evil:4 is the host name of profile "
        f"{tmp_path}/profiles/xen9b.xml" in evil
    )
    assert "bad syntax" in data["rejected"][f"{tmp_path}/profiles/xen9"][0]


# -- reaching the guests (guest_connection; plugins/plugin_utils/connection.py) ------------

NET = {
    "virtualmachines": "nat1 br1 bare",
    "vifs_nat1": "v",
    "nettype_nat1_v": "nat",
    "ip_nat1_v": "10.0.0.5",
    "vifs_br1": "v",
    "ip_br1_v": "192.0.2.50",
    "vifs_bare": "v",
}


def connection_vars(mod, host: str) -> dict:
    return {k: v for k, v in mod.inventory.get_host(host).vars.items() if k.startswith("ansible_")}


def site_dir(tmp_path: Path, files: dict[str, str]) -> str:
    """A configuration path whose directory holds ``files`` (host_vars/, group_vars/)."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return str(tmp_path / "site.lcfg.yml")


def test_local_hypervisor_gives_guests_their_address_only(plugin, tmp_path):
    mod = plugin()
    mod.inventory.current_source = site_dir(tmp_path, {"group_vars/xen_hypervisors.yml": "ansible_connection: local\n"})
    mod._populate(site_data([make("xen1", NET)]))
    assert connection_vars(mod, "nat1") == {"ansible_host": "10.0.0.5"}
    assert connection_vars(mod, "br1") == {"ansible_host": "192.0.2.50"}
    assert connection_vars(mod, "bare") == {}
    assert connection_vars(mod, "xen1") == {}
    assert mod.display.warnings == []


def test_remote_hypervisor_nat_guests_jump_through_it_bridged_guests_do_not(plugin, tmp_path):
    mod = plugin()
    mod._guest_connection = plugin_mod._connection.guest_connection_option(
        {"user": "ansible", "private_key_file": "keys/guests"}, str(tmp_path)
    )
    mod.inventory.current_source = site_dir(
        tmp_path, {"host_vars/xen1.yml": "ansible_host: 198.51.100.7\nansible_user: admin\n"}
    )
    mod._populate(site_data([make("xen1", NET)]))
    key = str(tmp_path / "keys/guests")
    assert connection_vars(mod, "nat1") == {
        "ansible_host": "10.0.0.5",
        "ansible_user": "ansible",
        "ansible_ssh_private_key_file": key,
        "ansible_ssh_common_args": "-o ProxyJump=admin@198.51.100.7",
    }
    assert connection_vars(mod, "br1") == {
        "ansible_host": "192.0.2.50",
        "ansible_user": "ansible",
        "ansible_ssh_private_key_file": key,
    }
    # no address: Ansible connects to the name; the (bridged) first vif needs no jump
    assert connection_vars(mod, "bare") == {"ansible_user": "ansible", "ansible_ssh_private_key_file": key}


def test_without_host_vars_the_jump_goes_to_the_hypervisors_inventory_name(plugin):
    mod = plugin()
    mod._populate(site_data([make("xen1", NET)]))
    assert connection_vars(mod, "nat1")["ansible_ssh_common_args"] == "-o ProxyJump=xen1"


def test_user_set_variables_win(plugin, tmp_path):
    mod = plugin(compose={"ansible_user": T("'composed'")})
    mod._guest_connection = plugin_mod._connection.GuestConnection(user="ansible")
    mod.inventory.current_source = site_dir(
        tmp_path,
        {
            "host_vars/nat1.yml": "ansible_ssh_host: 10.9.9.9\n",  # an alias counts
            "group_vars/xen_guests.yml": "ansible_ssh_private_key_file: /mine\n",
        },
    )
    # an earlier inventory source's group variable counts too
    mod.inventory.add_group("xen_guests")
    mod.inventory.set_variable("xen_guests", "ansible_ssh_common_args", "-o ProxyJump=bastion")
    mod._populate(site_data([make("xen1", NET)]))
    # only what the user left unset is set; compose comes last and overrides
    assert connection_vars(mod, "nat1") == {"ansible_user": "composed"}
    assert connection_vars(mod, "br1") == {"ansible_host": "192.0.2.50", "ansible_user": "composed"}


def test_hypervisor_template_variables_leave_guests_without_a_jump_with_a_warning(plugin, tmp_path):
    mod = plugin()
    mod.inventory.current_source = site_dir(
        tmp_path, {"host_vars/xen1.yml": 'ansible_host: \'{{ lookup("env", "HV") }}\'\n'}
    )
    mod._populate(site_data([make("xen1", NET)]))
    assert connection_vars(mod, "nat1") == {"ansible_host": "10.0.0.5"}
    [warning] = mod.display.warnings
    assert warning.startswith("guests nat1 of hypervisor xen1 get no ssh jump: its ansible_host is a template")


@pytest.mark.parametrize(
    ("resource", "value", "problem"),
    [
        ("ip_nat1_v", "10.0.0.5 -oProxyCommand=touch/tmp/x", "invalid IP address"),
        ("ip_nat1_v", "fe80::1%-oProxyCommand=x", "zone index"),
        ("ip_nat1_v", "fe80::1%a b", "zone index"),
        ("name_nat1", "-oProxyCommand=x", "invalid guest name"),
        ("name_nat1", "web -o x", "invalid guest name"),
    ],
)
def test_hostile_profile_values_are_refused_with_file_and_line(plugin, resource, value, problem):
    mod = plugin(strict=True)
    xen = dict(NET, **{resource: value})
    line = list(xen).index(resource) + 3
    with pytest.raises(AnsibleParserError, match=rf"/site/xen1:{line}: xen\.{resource}: .*{problem}"):
        mod._populate(site_data([make("xen1", xen)]))


def test_guest_connection_option_errors_name_the_configuration(tmp_path):
    config = tmp_path / "site.lcfg.yml"
    config.write_text("plugin: lcfg.xen.lcfg\nsources: [p]\nguest_connection: {jump: sometimes}\n")
    (tmp_path / "p").mkdir()
    mod = inventory_loader.get("lcfg.xen.lcfg")
    with pytest.raises(AnsibleParserError, match=r"site\.lcfg\.yml: option guest_connection\.jump: 'sometimes'"):
        mod.parse(InventoryData(), DataLoader(), str(config), cache=False)


def test_host_vars_names_are_what_host_group_vars_would_find(tmp_path, monkeypatch):
    (tmp_path / "host_vars" / "dir-host").mkdir(parents=True)
    for name in ("a.yml", "b.yaml", "c.json", "plain", "d.txt", "E.YML", "f.x.yml"):
        (tmp_path / "host_vars" / name).write_text("x: 1\n")
    config = tmp_path / "site.lcfg.yml"
    assert plugin_mod._only_host_group_vars()  # ansible's default
    names = plugin_mod._host_vars_names([str(config), "h1,h2"])  # a host list is no path
    # every part before a dot, lower-cased: more than host_group_vars finds is harmless
    assert {"a", "b", "c", "plain", "dir-host", "d", "d.txt", "e", "f", "f.x", "f.x.yml"} <= names
    assert plugin_mod._host_vars_names([str(tmp_path / "elsewhere" / "x.lcfg.yml")]) == set()
    # another vars plugin (enabled, or old-style from ANSIBLE_VARS_PLUGINS) could give any
    # host variables: ask per host
    monkeypatch.setattr(plugin_mod, "_only_host_group_vars", lambda: False)
    assert plugin_mod._host_vars_names([str(config)]) is True


def test_guests_without_host_vars_files_skip_the_per_host_lookup(plugin, tmp_path, monkeypatch):
    mod = plugin()
    mod._guest_connection = plugin_mod._connection.GuestConnection(user="ansible")
    mod.inventory.current_source = site_dir(tmp_path, {"host_vars/nat1.yml": "ansible_user: mine\n"})
    asked = []
    real = plugin_mod.get_vars_from_inventory_sources
    monkeypatch.setattr(
        plugin_mod,
        "get_vars_from_inventory_sources",
        lambda loader, sources, entities, stage: (
            asked.extend(e.name for e in entities) or real(loader, sources, entities, stage)
        ),
    )
    mod._populate(site_data([make("xen1", NET)]))
    # per host: only nat1, which has a file; its user still wins over the plugin's
    assert [name for name in asked if name in ("nat1", "br1")] == ["nat1"]
    assert "ansible_user" not in connection_vars(mod, "nat1")
    assert connection_vars(mod, "br1")["ansible_user"] == "ansible"


@pytest.mark.parametrize(
    "entry",
    [
        None,
        "text",
        {"fingerprint": "other", "data_zlib": plugin_mod.cache_entry("other", {})["data_zlib"]},
        {"fingerprint": "f", "data_zlib": "not base64!"},
        {"fingerprint": "f", "data_zlib": plugin_mod.base64.b64encode(b"not zlib").decode()},
        {"fingerprint": "f", "data_zlib": plugin_mod.base64.b64encode(plugin_mod.zlib.compress(b"{not json")).decode()},
        {"fingerprint": "f", "data_zlib": plugin_mod.base64.b64encode(plugin_mod.zlib.compress(b"[1]")).decode()},
        {"fingerprint": "f", "data_json": "{}"},  # what an older collection kept
    ],
)
def test_a_cache_entry_for_another_site_or_unreadable_is_a_miss(entry):
    assert plugin_mod.cached_data(plugin_mod.unpacked_entry(entry), "f") is None


def test_a_cache_entry_is_compressed_json_read_back_whole(tmp_path):
    data = {"hosts": [{"name": "h", "guests": {"g": {"memory": 512}}}], "inputs": {}}
    entry = plugin_mod.cache_entry("f", data)
    assert set(entry) == {"fingerprint", "data_zlib"} and entry["data_zlib"].isascii()
    assert plugin_mod.cached_data(plugin_mod.unpacked_entry(entry), "f") == data
    assert plugin_mod.cached_data(plugin_mod.unpacked_entry(entry), "other") is None
    # an input file that changed since makes it a miss
    source = tmp_path / "p"
    source.write_text("x")
    stat = source.stat()
    data["inputs"] = {str(source): [stat.st_mtime_ns, stat.st_size + 1]}
    assert plugin_mod.cached_data(plugin_mod.unpacked_entry(plugin_mod.cache_entry("f", data)), "f") is None


def test_the_opener_sends_netrc_credentials_and_follows_redirects_itself(tmp_path, monkeypatch):
    from http_serving import serving  # noqa: PLC0415

    seen = []

    def answer(handler):
        seen.append((handler.path, handler.headers.get("Authorization"), handler.headers.get("User-Agent")))
        if handler.path == "/old":
            return 302, {"Location": "/new"}, b""
        return 200, {}, b"<profile/>"

    (tmp_path / "netrc").write_text("machine 127.0.0.1 login site password s3cret\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    opener = plugin_mod.make_opener({"X-Site": "a"}, True, None, None, None, False)
    with serving(answer) as base:
        assert opener(f"{base}/old", 5, {}).read() == b"<profile/>"
    auth = "Basic " + __import__("base64").b64encode(b"site:s3cret").decode()
    assert seen == [("/old", auth, "lcfg.xen-inventory"), ("/new", auth, "lcfg.xen-inventory")]


def test_a_netrc_file_that_cannot_be_parsed_fails_the_request(tmp_path, monkeypatch):
    import netrc  # noqa: PLC0415

    (tmp_path / "netrc").write_text("machine\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with pytest.raises(netrc.NetrcParseError):
        plugin_mod.make_opener({}, True, None, None, None, False)("http://127.0.0.1:9/p.xml", 5, {})
