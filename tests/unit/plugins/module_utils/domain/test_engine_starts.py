# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""xen_guests' watch of the guests it started (engine._apply_all, on libvirt's test driver)."""

from __future__ import annotations

import pytest

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import XenError
from ansible_collections.lcfg.xen.plugins.module_utils.domain import engine

libvirt = pytest.importorskip("libvirt")


def test_guests_that_stop_early_fail_in_plan_order_with_the_others_results(monkeypatch):
    watched: list = []

    def fake_start_failures(started, driver, local, wait, lines=20):
        watched.extend((name, at) for _dom, name, at in started)  # no domain objects kept
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
        for name in ("ws-a", "ws-b", "ws-c"):
            dom = conn.lookupByName(name)
            dom.destroy()
            dom.undefine()
        conn.close()
    # one watch over every started guest, each with its own start time
    assert sorted(name for name, _at in watched) == ["ws-a", "ws-b", "ws-c"]
    assert all(isinstance(at, float) for _name, at in watched)
    assert message.startswith("guest ws-a: guest ws-a stopped (1 more guests failed too)")
    assert result["failed_guests"] == ["ws-a", "ws-c"]
    assert [r["name"] for r in result["results"]] == ["ws-b"]
