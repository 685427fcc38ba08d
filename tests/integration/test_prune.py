"""xen_guests prune against the real libvirtd (qemu:///system): a hypervisor holding a guest
defined by hand, stale guests lcfg.xen defined, a kept guest and another site's guest; only
the stale ones of this site go (docs/domains.md, "Pruning")."""

from __future__ import annotations

import json
import os

import pytest

from support import define_by_hand, remove_domains, run_module, run_playbook, storage_directory

libvirt = pytest.importorskip("libvirt")

pytestmark = pytest.mark.integration

URI = "qemu:///system"
PREFIX = "i13prune-"
KEEP, STALE, DISKED, RUNNER, HAND, OTHER = (
    f"{PREFIX}{n}" for n in ("keep", "stale", "disked", "runner", "hand", "other")
)
HAND_XML = f"""<domain type='qemu'>
  <name>{HAND}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
</domain>"""


def guest(name: str, **extra) -> dict:
    return dict({"name": name, "type": "hvm", "memory": 128, "vcpus": 1}, **extra)


@pytest.fixture
def conn():
    remove_domains(URI, PREFIX)
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    connection = libvirt.open(URI)
    yield connection
    connection.close()
    remove_domains(URI, PREFIX)


def ours(conn) -> set:
    return {d.name() for d in conn.listAllDomains(0) if d.name().startswith(PREFIX)}


def inactive_xml(conn, name: str) -> str:
    return conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


SITE_A, SITE_B = f"{PREFIX}site-a", f"{PREFIX}site-b"


def converge(guests: list, check: bool = False, **options) -> dict:
    """xen_guests as site A by default. Every call names an owner of this test's own: a prune
    without one would take every unowned lcfg.xen guest of this shared libvirtd as stale."""
    options.setdefault("owner", SITE_A)
    return run_module("xen_guests", dict({"uri": URI, "guests": guests}, **options), check=check, diff=True)


def test_prune_removes_only_the_stale_managed_guests(conn):
    with storage_directory(PREFIX) as store:
        kept_image, pruned_image = store / "stale.img", store / "disked.img"
        for image in (kept_image, pruned_image):
            with open(image, "wb") as handle:
                handle.truncate(1024 * 1024)
        define_by_hand(URI, HAND_XML)
        hand_before = inactive_xml(conn, HAND)
        defined = converge(
            [
                guest(KEEP),
                guest(STALE, disks=[{"path": str(kept_image), "device": "vda", "format": "raw"}]),
                guest(DISKED, disks=[{"path": str(pruned_image), "device": "vda", "format": "raw"}]),
                guest(RUNNER, state="running"),
            ]
        )
        assert defined["rc"] == 0, defined.get("msg")
        assert defined["stale"] == [] and defined["pruned"] == []
        listed = [guest(KEEP)]

        # reported without prune, nothing touched
        report = converge(listed)
        assert report["rc"] == 0 and report["changed"] is False
        assert report["stale"] == [DISKED, RUNNER, STALE]
        assert HAND not in report["stale"]

        # check mode predicts exactly what goes, diff shows it
        check = converge(listed, check=True, prune=True, prune_timeout=3)
        assert check["rc"] == 0, check.get("msg")
        assert [(p["name"], p["actions"]) for p in check["pruned"]] == [
            (DISKED, ["undefine"]),
            (RUNNER, ["stop", "undefine"]),
            (STALE, ["undefine"]),
        ]
        assert check["diff"]["after"][STALE] == {"name": STALE, "state": "absent"}
        assert check["diff"]["before"][RUNNER]["state"] == "running"
        assert HAND not in check["diff"]["before"]
        assert ours(conn) == {KEEP, STALE, DISKED, RUNNER, HAND}

        # the running guest has no OS, so it never answers the ACPI shutdown: refused without prune_force
        failed = converge(listed, prune=True, prune_timeout=3)
        assert failed["rc"] != 0
        assert f"stale guest {RUNNER}" in failed["msg"] and "prune_force" in failed["msg"]
        assert failed["failed_guests"] == [RUNNER]
        assert conn.lookupByName(RUNNER).isActive()
        # the stopped stale guests went, their disks kept
        assert ours(conn) == {KEEP, RUNNER, HAND}
        assert kept_image.exists() and pruned_image.exists()

        forced = converge(listed, prune=True, prune_timeout=3, prune_force=True)
        assert forced["rc"] == 0, forced.get("msg")
        assert [(p["name"], p["actions"]) for p in forced["pruned"]] == [(RUNNER, ["stop", "undefine"])]
        assert "was powered off (prune_force: true)" in json.dumps(forced.get("warnings", []))  # strings or dicts
        assert ours(conn) == {KEEP, HAND}

        # prune_disks: a stale guest's image inside a storage directory is deleted
        assert (
            converge(
                [guest(KEEP), guest(DISKED, disks=[{"path": str(pruned_image), "device": "vda", "format": "raw"}])]
            )["rc"]
            == 0
        )
        check = converge(listed, check=True, prune=True, prune_disks=True)
        real = converge(listed, prune=True, prune_disks=True)
        assert real["rc"] == 0, real.get("msg")
        expected = [(DISKED, ["undefine", f"remove_disk {os.path.realpath(pruned_image)}"])]
        assert [(p["name"], p["actions"]) for p in check["pruned"]] == expected
        assert [(p["name"], p["actions"]) for p in real["pruned"]] == expected
        assert not pruned_image.exists() and kept_image.exists()

        again = converge(listed, prune=True, prune_disks=True)
        assert again["rc"] == 0 and again["changed"] is False and again["stale"] == []
        assert ours(conn) == {KEEP, HAND}
        assert inactive_xml(conn, HAND) == hand_before  # the hand-made guest is untouched


def test_prune_never_touches_another_sites_guests(conn):
    assert converge([guest(OTHER)], owner=SITE_B)["rc"] == 0
    assert converge([guest(KEEP)])["rc"] == 0
    other_before = inactive_xml(conn, OTHER)
    assert f'owner="{SITE_B}"' in other_before and f'owner="{SITE_A}"' in inactive_xml(conn, KEEP)
    result = converge([], prune=True, prune_force=True, prune_timeout=3)
    assert result["rc"] == 0, result.get("msg")
    assert result["stale"] == [KEEP] and [p["name"] for p in result["pruned"]] == [KEEP]
    assert ours(conn) == {OTHER}
    # nor converges it: site A naming site B's guest fails, naming it, and changes nothing
    taken = converge([guest(OTHER, memory=64)])
    assert taken["rc"] != 0 and f"guest {OTHER} belongs to another site" in taken["msg"]
    assert inactive_xml(conn, OTHER) == other_before
    # site B's own prune removes it
    own = converge([], owner=SITE_B, prune=True)
    assert own["rc"] == 0 and own["stale"] == [OTHER]
    assert ours(conn) == set()


REPORT = (
    "STALE={{ guest_result.stale | join(',') }} PRUNED={{ guest_result.pruned | map(attribute='name') | join(',') }}"
)


def role_play(tmp_path, names: list, **role_vars) -> str:
    """A play running the lcfg.xen.guest role on this host for diskless guests ``names``."""
    specs = [dict(guest(name), autostart=False, disks=[], vifs=[]) for name in names]
    play = [
        {
            "name": "Guests",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Converge",
                    "ansible.builtin.include_role": {"name": "lcfg.xen.guest"},
                    "vars": {
                        key: value
                        for key, value in dict(
                            {"guest_uri": URI, "guest_default_bridge": "", "guest_specs": specs, "guest_owner": SITE_A},
                            **role_vars,
                        ).items()
                        if value is not None
                    },
                },
                {
                    "name": "Show",
                    "ansible.builtin.debug": {"msg": REPORT},
                },
            ],
        }
    ]
    path = tmp_path / f"play{len(list(tmp_path.iterdir()))}.yml"
    path.write_text(json.dumps(play))
    return str(path)


def test_guest_role_prunes_with_guest_prune(conn, tmp_path):
    first = run_playbook(role_play(tmp_path, [KEEP, STALE]))
    assert first.returncode == 0, first.stdout + first.stderr
    assert ours(conn) == {KEEP, STALE}
    reported = run_playbook(role_play(tmp_path, [KEEP]))
    assert reported.returncode == 0, reported.stdout
    assert f"STALE={STALE} PRUNED=" in reported.stdout and f"PRUNED={STALE}" not in reported.stdout
    assert ours(conn) == {KEEP, STALE}
    checked = run_playbook(role_play(tmp_path, [KEEP], guest_prune=True), "--check", "--diff")
    assert checked.returncode == 0, checked.stdout
    assert f"STALE={STALE} PRUNED={STALE}" in checked.stdout
    assert ours(conn) == {KEEP, STALE}
    pruned = run_playbook(role_play(tmp_path, [KEEP], guest_prune=True))
    assert pruned.returncode == 0, pruned.stdout
    assert f"STALE={STALE} PRUNED={STALE}" in pruned.stdout
    assert ours(conn) == {KEEP}


def test_guest_role_records_the_hypervisor_as_owner(conn, tmp_path):
    """guest_owner defaults to the hypervisor's host name; a call without owner (molecule's
    clean-up, an ad-hoc task) may still remove the guest."""
    defined = run_playbook(role_play(tmp_path, [OTHER], guest_owner=None))
    assert defined.returncode == 0, defined.stdout
    assert 'owner="localhost"' in inactive_xml(conn, OTHER)
    removed = run_module("xen_guests", {"uri": URI, "guests": [{"name": OTHER, "state": "absent"}]})
    assert removed["rc"] == 0, removed.get("msg")
    assert ours(conn) == set()
