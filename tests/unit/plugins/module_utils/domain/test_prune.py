"""Pruning: the pure plan of plugins/module_utils/domain/prune.py, and xen_guests' prune in
engine.converge_guests against libvirt's in-process test driver."""

from __future__ import annotations

import pytest
from lxml import etree

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, ValidationError, XenError
from ansible_collections.lcfg.xen.plugins.module_utils.common.host_access import HostAccess
from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import libvirt, open_connection
from ansible_collections.lcfg.xen.plugins.module_utils.domain import calls, prune
from ansible_collections.lcfg.xen.plugins.module_utils.domain import engine as _domain
from ansible_collections.lcfg.xen.plugins.module_utils.domain.desired import METADATA_NS
from ansible_collections.lcfg.xen.plugins.module_utils.domain.render import update_domain_xml
from support import remove_named

PREFIX = "lcfgtest-dom-prune"


def xml(name: str, marker: bool = True, owner: str | None = None) -> str:
    meta = ""
    if marker:
        attr = f' owner="{owner}"' if owner else ""
        meta = f'<metadata><lcfg:guest xmlns:lcfg="{METADATA_NS}" type="pv"{attr}/></metadata>'
    return f"<domain type='test'><name>{name}</name>{meta}<memory>131072</memory><os><type>hvm</type></os></domain>"


# --------------------------------------------------------------------------- the pure plan


def test_only_marked_unlisted_guests_of_the_same_owner_are_stale():
    definitions = {
        "kept": xml("kept"),
        "gone": xml("gone"),
        "byhand": xml("byhand", marker=False),
        "othersite": xml("othersite", owner="site-b"),
        "zgone": xml("zgone"),
    }
    plan = prune.plan_prune(definitions, ["kept", "notyet"], None)
    assert plan.stale == ["gone", "zgone"]
    assert plan.unmarked == ["byhand"]
    assert plan.other_owners == {"othersite": "site-b"}


def test_a_play_with_an_owner_prunes_only_its_own():
    definitions = {
        "mine": xml("mine", owner="site-a"),
        "theirs": xml("theirs", owner="site-b"),
        "unowned": xml("unowned"),
        "byhand": xml("byhand", marker=False),
    }
    plan = prune.plan_prune(definitions, [], "site-a")
    assert plan.stale == ["mine"]
    assert plan.other_owners == {"theirs": "site-b", "unowned": None}
    assert plan.unmarked == ["byhand"]


def test_nothing_listed_nothing_marked_nothing_stale():
    assert prune.plan_prune({"a": xml("a", marker=False)}, [], None).stale == []
    assert prune.plan_prune({}, ["a"], "x").stale == []


def test_owner_of_and_stamp_owner():
    assert prune.owner_of(xml("a", marker=False)) == (False, None)
    assert prune.owner_of(xml("a")) == (True, None)
    stamped = prune.stamp_owner(xml("a"), "site-a")
    assert prune.owner_of(stamped) == (True, "site-a")
    assert prune.owner_of(prune.stamp_owner(stamped, "site-b")) == (True, "site-b")
    with pytest.raises(ValueError):
        prune.stamp_owner(xml("a", marker=False), "site-a")


@pytest.mark.parametrize(
    ("recorded", "owner", "allowed"),
    [(None, None, True), (None, "a", True), ("a", "a", True), ("a", "b", False), ("a", None, True)],
)
def test_owner_conflict(recorded, owner, allowed):
    message = prune.owner_conflict("web1", recorded, owner)
    assert (message is None) == allowed
    if message:
        assert "web1" in message and "adopt" in message


@pytest.mark.parametrize("bad", ["", "-x", "a b", "a\nb", "x" * 129, "a;rm"])
def test_bad_owner_names(bad):
    assert prune.check_owner_name(bad)


def test_kept_paths():
    assert prune.kept_paths(["/s/a.img", "/s/b.img"], {"/s/b.img"}) == ["/s/b.img"]


def test_a_redefine_keeps_the_recorded_owner():
    root_xml = prune.stamp_owner(xml("a"), "site-a")
    spec = {"name": "a", "type": "pv", "disks": [], "vifs": []}
    again = update_domain_xml(root_xml, spec, [], {"driver": "test"})
    assert prune.owner_of(again) == (True, "site-a")


# --------------------------------------------------------------------------- converge_guests


@pytest.fixture
def conn():
    connection = open_connection("test:///default")
    remove_named(connection.listAllDomains(0), PREFIX)
    yield connection
    remove_named(connection.listAllDomains(0), PREFIX)
    connection.close()


def guest(index: int, **extra) -> dict:
    return dict({"name": f"{PREFIX}{index}", "memory": 64, "vcpus": 1}, **extra)


def ours(found: list) -> list:
    """The names (or results) of this file's guests: the test driver is shared by the process."""
    return [f for f in found if (f if isinstance(f, str) else f["name"]).startswith(PREFIX)]


def names(conn) -> set:
    return {d.name() for d in conn.listAllDomains(0) if d.name().startswith(PREFIX)}


def owner_on(conn, name):
    return prune.owner_of(conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


def test_stale_is_reported_and_pruned_only_when_asked(conn):
    _domain.converge_guests(conn, [guest(0), guest(1, state="running"), guest(2)])
    conn.defineXML(xml(f"{PREFIX}hand", marker=False))
    listed = [guest(0)]
    report = _domain.converge_guests(conn, listed)
    assert ours(report["stale"]) == [f"{PREFIX}1", f"{PREFIX}2"]
    assert ours(report["pruned"]) == [] and report["changed"] is False
    assert names(conn) == {f"{PREFIX}0", f"{PREFIX}1", f"{PREFIX}2", f"{PREFIX}hand"}

    check = _domain.converge_guests(conn, listed, check_mode=True, prune=True)
    assert check["changed"] is True
    assert [(p["name"], p["actions"]) for p in ours(check["pruned"])] == [
        (f"{PREFIX}1", ["stop", "undefine"]),
        (f"{PREFIX}2", ["undefine"]),
    ]
    assert ours(check["actions"]) == [f"{PREFIX}1: stop", f"{PREFIX}1: undefine", f"{PREFIX}2: undefine"]
    assert check["diff"]["after"][f"{PREFIX}1"] == {"name": f"{PREFIX}1", "state": "absent"}
    assert check["diff"]["before"][f"{PREFIX}1"]["state"] == "running"
    assert len(names(conn)) == 4  # check mode changed nothing

    real = _domain.converge_guests(conn, listed, prune=True)
    assert real["actions"] == check["actions"] and real["diff"] == check["diff"]
    assert names(conn) == {f"{PREFIX}0", f"{PREFIX}hand"}
    again = _domain.converge_guests(conn, listed, prune=True)
    assert again["changed"] is False and ours(again["stale"]) == [] and ours(again["pruned"]) == []


def test_prune_disks_removes_only_files_inside_the_storage_dirs(conn, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    inside, outside = store / "a.img", tmp_path / "outside.img"
    for path in (inside, outside):
        path.write_bytes(b"x")
    disks = [{"path": str(inside), "device": "xvda"}, {"path": str(outside), "device": "xvdb"}]
    _domain.converge_guests(conn, [guest(0), guest(1, disks=disks)], access=HostAccess(storage_dirs=[str(tmp_path)]))
    narrow = HostAccess(storage_dirs=[str(store)])
    check = _domain.converge_guests(conn, [guest(0)], check_mode=True, prune=True, prune_disks=True, access=narrow)
    assert ours(check["pruned"])[0]["actions"] == ["undefine", f"remove_disk {inside}"]
    assert any(str(outside) in w and "kept" in w for w in check["warnings"])
    real = _domain.converge_guests(conn, [guest(0)], prune=True, prune_disks=True, access=narrow)
    assert ours(real["pruned"])[0]["actions"] == ["undefine", f"remove_disk {inside}"]
    assert not inside.exists() and outside.exists()
    assert names(conn) == {f"{PREFIX}0"}


def test_prune_keeps_disks_without_prune_disks(conn, tmp_path):
    image = tmp_path / "a.img"
    image.write_bytes(b"x")
    access = HostAccess(storage_dirs=[str(tmp_path)])
    _domain.converge_guests(conn, [guest(1, disks=[{"path": str(image), "device": "xvda"}])], access=access)
    real = _domain.converge_guests(conn, [], prune=True, access=access)
    assert ours(real["pruned"])[0]["actions"] == ["undefine"] and image.exists()


def test_stop_timeout_fails_naming_the_guest_and_prune_force(conn, monkeypatch):
    _domain.converge_guests(conn, [guest(1, state="running")])
    monkeypatch.setattr(libvirt.virDomain, "shutdown", lambda self: 0)  # a guest ignoring ACPI
    with pytest.raises(XenError) as failed:
        _domain.converge_guests(conn, [], prune=True, prune_timeout=0.3)
    assert f"stale guest {PREFIX}1" in failed.value.message
    assert "prune_force" in failed.value.message and "guest_prune_force" in failed.value.message
    assert failed.value.result["failed_guests"] == [f"{PREFIX}1"]
    assert conn.lookupByName(f"{PREFIX}1").isActive()
    forced = _domain.converge_guests(conn, [], prune=True, prune_timeout=0.3, prune_force=True)
    assert ours(forced["pruned"])[0]["actions"] == ["stop", "undefine"]
    assert any("prune_force" in w for w in forced["warnings"])
    assert names(conn) == set()


def test_owner_recorded_claimed_and_guarded(conn):
    _domain.converge_guests(conn, [guest(0), guest(1)])  # unowned
    assert owner_on(conn, f"{PREFIX}0") == (True, None)
    claimed = _domain.converge_guests(conn, [guest(0)], owner="site-a")
    assert claimed["results"][0]["actions"] == ["redefine"]
    assert ours(claimed["stale"]) == []  # the unowned guest 1 is not site-a's
    assert owner_on(conn, f"{PREFIX}0") == (True, "site-a")
    assert _domain.converge_guests(conn, [guest(0)], owner="site-a")["changed"] is False
    # a change by another module keeps the owner
    _domain.converge_domain(conn, {"name": f"{PREFIX}0", "memory": 48})
    assert owner_on(conn, f"{PREFIX}0") == (True, "site-a")
    _domain.converge_guests(conn, [guest(2)], owner="site-b")
    assert owner_on(conn, f"{PREFIX}2") == (True, "site-b")
    # site-b neither converges nor prunes site-a's guest; the owner-less play does not prune it
    with pytest.raises(Conflict, match=f"guest {PREFIX}0 belongs to another site"):
        _domain.converge_guests(conn, [guest(0)], owner="site-b")
    # a call without an owner (an ad-hoc task) may change it and keeps its owner
    assert _domain.converge_guests(conn, [guest(0, memory=56)])["changed"] is True
    assert owner_on(conn, f"{PREFIX}0") == (True, "site-a")
    site_b = _domain.converge_guests(conn, [], owner="site-b", prune=True)
    assert ours(site_b["stale"]) == [f"{PREFIX}2"]
    assert names(conn) == {f"{PREFIX}0", f"{PREFIX}1"}
    unowned = _domain.converge_guests(conn, [], prune=True)
    assert ours(unowned["stale"]) == [f"{PREFIX}1"]
    assert names(conn) == {f"{PREFIX}0"}
    adopted = _domain.converge_guests(conn, [guest(0)], owner="site-b", adopt=[f"{PREFIX}0"])
    assert adopted["results"][0]["actions"] == ["redefine"]
    assert owner_on(conn, f"{PREFIX}0") == (True, "site-b")


def test_bad_prune_options_fail_before_any_change(conn):
    with pytest.raises(ValidationError, match="owner"):
        _domain.converge_guests(conn, [guest(0)], owner="a b")
    with pytest.raises(ValidationError, match="prune_timeout"):
        _domain.converge_guests(conn, [guest(0)], prune=True, prune_timeout=-1)
    assert names(conn) == set()


def test_a_failing_listed_guest_stops_before_pruning(conn, monkeypatch):
    _domain.converge_guests(conn, [guest(1)])
    real_define = _domain.apply_plan

    def failing(conn_, plan, check_mode=False):
        if plan.state != "absent":
            raise XenError("boom")
        return real_define(conn_, plan, check_mode)

    monkeypatch.setattr(_domain, "apply_plan", failing)
    with pytest.raises(XenError):
        _domain.converge_guests(conn, [guest(0)], prune=True)
    assert f"{PREFIX}1" in names(conn)


def test_new_guests_carry_the_marker_on_every_define(conn):
    _domain.converge_guests(conn, [guest(0)], owner="site-a")
    root = etree.fromstring(conn.lookupByName(f"{PREFIX}0").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
    marker = root.find(f"metadata/{{{METADATA_NS}}}guest")
    assert marker is not None and marker.get("owner") == "site-a"


def test_a_guest_undefined_while_it_is_read_is_skipped(conn, monkeypatch):
    _domain.converge_guests(conn, [guest(0), guest(1)])
    real_read = calls.metadata_element

    def vanishing(dom, namespace, *, name):
        if name == f"{PREFIX}1":
            dom.undefine()  # another run removes it between the listing and the read
        return real_read(dom, namespace, name=name)

    monkeypatch.setattr(calls, "metadata_element", vanishing)
    result = _domain.converge_guests(conn, [guest(0)], prune=True)
    assert ours(result["stale"]) == [] and names(conn) == {f"{PREFIX}0"}


def test_a_marker_element_alone_counts_like_the_definition_holding_it():
    marker = f'<lcfg:guest xmlns:lcfg="{METADATA_NS}" type="pv" owner="site-a"/>'
    assert prune.owner_of(marker) == (True, "site-a")
    assert prune.owner_of(None) == (False, None)
    plan = prune.plan_prune({"mine": marker, "byhand": None}, [], "site-a")
    assert (plan.stale, plan.unmarked) == (["mine"], ["byhand"])


def test_the_metadata_call_reads_the_marker_of_the_definition():
    conn = libvirt.open("test:///default")
    try:
        dom = conn.defineXML(xml("markerunit", owner="site-q"))
        plain = conn.defineXML(xml("plainunit", marker=False))
        assert prune.owner_of(calls.metadata_element(dom, METADATA_NS, name="markerunit")) == (True, "site-q")
        assert calls.metadata_element(plain, METADATA_NS, name="plainunit") is None
        assert {"markerunit", "plainunit"} <= calls.persistent_names(conn)
        dom.undefine()
        plain.undefine()
    finally:
        conn.close()


def test_a_running_guest_undefined_while_it_is_read_is_skipped(conn, monkeypatch):
    _domain.converge_guests(conn, [guest(0), dict(guest(1), state="running")])
    real_read = calls.metadata_element

    def undefined_meanwhile(dom, namespace, *, name):
        if name == f"{PREFIX}1":
            dom.undefine()  # it keeps running, transient now: its definition is gone
        return real_read(dom, namespace, name=name)

    monkeypatch.setattr(calls, "metadata_element", undefined_meanwhile)
    result = _domain.converge_guests(conn, [guest(0)], prune=True)
    assert ours(result["stale"]) == []
    still = conn.lookupByName(f"{PREFIX}1")
    assert still.isActive() and not still.isPersistent()
    still.destroy()


def test_a_domain_whose_metadata_cannot_be_read_is_judged_by_its_definition(conn, monkeypatch):
    # libxl refuses the metadata call for Domain-0 (seen in the Xen lab); the definition says the same
    _domain.converge_guests(conn, [guest(0), guest(1)])
    real_read = calls.metadata_element

    def refusing(dom, namespace, *, name):
        if name == f"{PREFIX}1":
            raise XenError(f"read the metadata of guest {name}: An error occurred, but the cause is unknown")
        return real_read(dom, namespace, name=name)

    monkeypatch.setattr(calls, "metadata_element", refusing)
    result = _domain.converge_guests(conn, [guest(0)], prune=True)
    assert ours(result["stale"]) == [f"{PREFIX}1"] and names(conn) == {f"{PREFIX}0"}
