# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""xen_guests' watch of the guests it started (engine._apply_all, on libvirt's test driver)."""

from __future__ import annotations

import pytest

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import XenError
from ansible_collections.lcfg.xen.plugins.module_utils.domain import engine
from support import remove_named

libvirt = pytest.importorskip("libvirt")


def test_guests_that_stop_early_fail_in_plan_order_with_the_others_results(monkeypatch):
    watched: list = []
    waits: list = []

    def fake_start_failures(started, driver, local, wait, lines=20):
        watched.extend((name, at) for _dom, name, at in started)  # no domain objects kept
        waits.append(wait)
        return {"ws-c": "guest ws-c stopped (crashed) within 3s of its start; ...", "ws-a": "guest ws-a stopped"}

    monkeypatch.setattr(engine, "start_failures", fake_start_failures)
    conn = libvirt.open("test:///default")
    # the test driver's guests cannot stop by themselves, so the engine watches none of them
    assert not engine._starts_are_watched(3, engine.DriverCaps(conn))
    monkeypatch.setattr(engine, "_starts_are_watched", lambda wait, caps: wait > 0)
    try:
        guests = [{"name": f"ws-{x}", "memory": 64, "vcpus": 1, "state": "running"} for x in "abc"]
        with pytest.raises(XenError) as err:
            engine.converge_guests(conn, guests, start_wait=3)
        message, result = err.value.message, err.value.result
        del err  # its traceback holds the run's domain objects (and so the connection)
    finally:
        remove_named(conn.listAllDomains(0), "ws-")
        conn.close()
    # one watch over every started guest, each with its own start time
    assert sorted(name for name, _at in watched) == ["ws-a", "ws-b", "ws-c"]
    assert waits == [3.0]
    assert all(isinstance(at, float) for _name, at in watched)
    assert message.startswith("guest ws-a: guest ws-a stopped (1 more guests failed too)")
    assert result["failed_guests"] == ["ws-a", "ws-c"]
    assert [r["name"] for r in result["results"]] == ["ws-b"]


def test_start_wait_defaults_to_the_drivers_and_zero_does_not_watch(monkeypatch):
    assert engine.start_wait_default("xen") == 3.0 and engine.start_wait_default("lxc") == 3.0
    assert engine.start_wait_default("qemu") == 0.0
    waits: list = []

    def fake_start_failures(started, driver, local, wait, lines=20):
        waits.append((sorted(name for _dom, name, _at in started), wait))
        return {}

    monkeypatch.setattr(engine, "start_failures", fake_start_failures)
    # xen_domain's path watches its one guest through start_failure
    monkeypatch.setattr(engine, "start_failure", lambda dom, name, driver, local, wait: waits.append(([name], wait)))
    monkeypatch.setattr(engine, "_starts_are_watched", lambda wait, caps: wait > 0)
    # the plumbing: no start_wait given means the connection's driver's default
    monkeypatch.setattr(engine, "START_WAIT", {"test": 7.0})
    conn = libvirt.open("test:///default")
    try:
        engine.converge_guests(conn, [{"name": "wd-a", "memory": 64, "vcpus": 1, "state": "running"}])
        engine.converge_guests(conn, [{"name": "wd-b", "memory": 64, "vcpus": 1, "state": "running"}], start_wait=0)
        engine.converge_domain(conn, {"name": "wd-c", "memory": 64, "vcpus": 1, "state": "running"})
    finally:
        remove_named(conn.listAllDomains(0), "wd-")
        conn.close()
    assert waits == [(["wd-a"], 7.0), (["wd-c"], 7.0)]
    assert not engine._starts_are_watched(0, None)  # 0: off, whatever the driver
