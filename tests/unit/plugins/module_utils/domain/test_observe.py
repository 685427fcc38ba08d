"""What a running guest shows of itself (domain/observe.py) and the console log the renderer
adds (render.py): pure parts with files and fake domains; the libvirt parts against the real
libvirtd are in tests/integration/test_domain_info_live.py."""

from __future__ import annotations

import time

import pytest
from lxml import etree

from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import libvirt
from ansible_collections.lcfg.xen.plugins.module_utils.domain import calls, observe
from ansible_collections.lcfg.xen.plugins.module_utils.domain.render import (
    console_log_missing,
    console_log_path,
    update_domain_xml,
)

QEMU_XML = """<domain type='kvm'><name>g1</name><devices>
<interface type='network'><mac address='52:54:00:AA:00:01'/><source network='lcfg-nat'/>
<target dev='vnet3'/></interface>
<interface type='bridge'><mac address='52:54:00:aa:00:02'/><source bridge='br0'/></interface>
<console type='pty'/></devices></domain>"""


def test_console_log_path_comes_from_the_name_and_driver():
    assert console_log_path("web1", "qemu") == "/var/log/libvirt/qemu/web1.console"
    assert console_log_path("web1", "xen") == "/var/log/xen/console/guest-web1.log"
    assert console_log_path("web1", "test") is None


def test_console_log_added_once_and_kept():
    assert console_log_missing(QEMU_XML, "g1", "qemu")
    assert not console_log_missing(QEMU_XML, "g1", "xen")  # xenconsoled logs Xen consoles
    spec = {"name": "g1", "type": "hvm"}
    once = update_domain_xml(QEMU_XML, spec, ["console_log"], {"driver": "qemu"})
    root = etree.fromstring(once.encode())
    serials = root.findall("devices/serial")
    assert len(serials) == 1 and serials[0].get("type") == "pty"
    log = serials[0].find("log")
    assert log.get("file") == "/var/log/libvirt/qemu/g1.console" and log.get("append") == "off"
    # before the console, which QEMU then shows on that serial
    children = [c.tag for c in root.find("devices")]
    assert children.index("serial") == children.index("console") - 1
    assert not console_log_missing(once, "g1", "qemu")
    twice = update_domain_xml(once, spec, [], {"driver": "qemu"})
    assert len(etree.fromstring(twice.encode()).findall("devices/serial/log")) == 1


def test_console_log_goes_into_an_existing_pty_serial():
    xml = QEMU_XML.replace(
        "<console type='pty'/>", "<serial type='pty'><log file='/tmp/elsewhere'/><target port='0'/></serial>"
    )
    out = etree.fromstring(update_domain_xml(xml, {"name": "g1", "type": "hvm"}, [], {"driver": "kvm"}).encode())
    assert [s.find("log").get("file") for s in out.findall("devices/serial")] == [console_log_path("g1", "qemu")]
    assert out.find("devices/serial")[0].tag == "log"  # before <target>, as libvirt writes it


def test_tail_lines_strips_control_characters_and_bounds(tmp_path):
    log = tmp_path / "console.log"
    log.write_bytes(b"old\n" * 100000 + b"one\r\n\x1b[1;32mgreen\x1b[0m\x07\r\nlast\x00\n\n")
    assert observe.tail_lines(str(log), 3) == ["one", "green", "last"]
    assert observe.tail_lines(str(log), 0) == []
    assert len(observe.tail_lines(str(log), 10**6)) < 100000  # at most TAIL_BYTES are read


def test_tail_lines_refuses_a_symbolic_link(tmp_path):
    target = tmp_path / "secret"
    target.write_text("x\n")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(OSError):
        observe.tail_lines(str(tmp_path / "link"), 5)


def test_console_log_reports_missing_and_not_configured(tmp_path, monkeypatch):
    assert observe.console_log("g1", "test", None, True, 5) is None
    assert observe.console_log("g1", "qemu", QEMU_XML, True, 5) is None  # its definition does not log
    logged = update_domain_xml(QEMU_XML, {"name": "g1", "type": "hvm"}, [], {"driver": "qemu"})
    path = tmp_path / "g1.console"
    monkeypatch.setattr(observe, "console_log_path", lambda name, driver: str(path))
    logged = logged.replace(console_log_path("g1", "qemu"), str(path))
    assert observe.console_log("g1", "qemu", logged, True, 5) == {"path": str(path), "exists": False, "lines": []}
    path.write_text("Booting\nmarker\n")
    assert observe.console_log("g1", "qemu", logged, True, 1)["lines"] == ["marker"]
    assert observe.console_log("g1", "qemu", logged, False, 1) == {"path": str(path), "exists": None, "lines": []}


def test_host_arp_matches_the_vifs_macs(tmp_path):
    arp = tmp_path / "arp"
    arp.write_text(
        "IP address       HW type     Flags       HW address            Mask     Device\n"
        "10.0.0.5         0x1         0x2         52:54:00:aa:00:02     *        br0\n"
        "10.0.0.6         0x1         0x0         52:54:00:aa:00:02     *        br0\n"
        "10.0.0.7         0x1         0x2         52:54:00:ff:ff:ff     *        br0\n"
    )
    vifs = observe._vifs_of(QEMU_XML)
    assert observe._from_host_arp(vifs, str(arp)) == [("52:54:00:aa:00:02", "10.0.0.5", None, "ipv4")]


class FakeDom:
    """Answers per address source; a source given as an exception raises it."""

    def __init__(self, answers, stats=None, info_mem=0, vcpus=1, states=None):
        self.answers = answers
        self.stats = stats
        self.info_mem = info_mem
        self.vcpus = vcpus
        self.states = list(states or [])

    def interfaceAddresses(self, source, flags):  # noqa: N802 - libvirt's name
        answer = self.answers.get(source)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def memoryStats(self):  # noqa: N802
        if self.stats is None:
            raise libvirt.libvirtError("no stats")
        return self.stats

    def info(self):
        return [1, 262144, self.info_mem, self.vcpus, 0]

    def XMLDesc(self, flags=0):  # noqa: N802
        return QEMU_XML

    def state(self):
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


def _error(message):
    return libvirt.libvirtError(message)


def test_interfaces_takes_every_source_and_survives_a_failing_one():
    lease = {"vnet3": {"hwaddr": "52:54:00:aa:00:01", "addrs": [{"type": 0, "addr": "10.0.0.9", "prefix": 24}]}}
    agent = {
        "eth0": {
            "hwaddr": "52:54:00:aa:00:01",
            "addrs": [
                {"type": 0, "addr": "10.0.0.9", "prefix": 24},
                {"type": 1, "addr": "fe80::1", "prefix": 64},
                {"type": 1, "addr": "2001:db8::9", "prefix": 64},
            ],
        },
        "lo": {"hwaddr": "00:00:00:00:00:00", "addrs": [{"type": 0, "addr": "127.0.0.1", "prefix": 8}]},
    }
    dom = FakeDom({0: lease, 1: agent, 2: _error("wrong nlmsg len")})
    xml = QEMU_XML.replace(
        "</devices>",
        "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>"
        "</channel></devices>",
    )
    vifs, problems = observe.interfaces(None, dom, xml, "qemu", False, True)
    assert vifs[0]["name"] == "vnet3" and vifs[0]["mac"] == "52:54:00:aa:00:01" and vifs[0]["network"] == "lcfg-nat"
    assert vifs[0]["addresses"] == [
        {"address": "10.0.0.9", "prefix": 24, "family": "ipv4", "source": "lease"},
        {"address": "2001:db8::9", "prefix": 64, "family": "ipv6", "source": "agent"},
    ]
    assert vifs[1]["bridge"] == "br0" and vifs[1]["addresses"] == []
    assert problems == ["arp: wrong nlmsg len"]  # not local: no host table to fall back on
    assert observe.flat_addresses(vifs) == ["10.0.0.9", "2001:db8::9"]


def test_interfaces_skips_an_agent_that_is_not_connected_and_stopped_guests():
    dom = FakeDom({0: {}, 1: _error("must not be asked"), 2: {}})
    vifs, problems = observe.interfaces(None, dom, QEMU_XML, "qemu", False, True)
    assert problems == [] and all(v["addresses"] == [] for v in vifs)
    vifs, problems = observe.interfaces(None, FakeDom({}), QEMU_XML, "qemu", False, False)
    assert len(vifs) == 2 and problems == []


def test_memory_actual_prefers_the_balloon_statistics():
    assert calls.memory_actual(FakeDom({}, stats={"actual": 262144}, info_mem=196608)) == 256
    assert calls.memory_actual(FakeDom({}, stats=None, info_mem=196608)) == 192


@pytest.mark.parametrize(("online", "count"), [("0-3", 4), ("0,2", 2), ("0-1,3", 3), (None, None)])
def test_guest_vcpus_online_counts_the_agents_cpuset(online, count):
    class Agent:
        def guestVcpus(self, flags):  # noqa: N802
            return {"vcpus": "0-3", "online": online} if online else {}

    assert calls.guest_vcpus_online(Agent()) == count


def test_follow_live_says_what_the_guest_did_not_follow(monkeypatch):
    monkeypatch.setattr(observe, "POLL", 0.01)
    stuck = FakeDom({}, stats={"actual": 262144}, vcpus=2)
    followed = FakeDom({}, stats={"actual": 196608 + 1024}, vcpus=2)
    out = observe.follow_live([(stuck, "a", {"memory": 192, "vcpus": 2}), (followed, "b", {"memory": 192})], 0.05)
    assert out["a"] == {
        "memory_actual": 256,
        "vcpus_online": None,
        "live_not_followed": ["memory: target 192 MiB, guest still at 256 MiB"],
    }
    assert out["b"]["live_not_followed"] == [] and out["b"]["memory_actual"] == 193
    vcpus = observe.follow_live([(FakeDom({}, stats={"actual": 1}, vcpus=1), "c", {"vcpus": 2})], 0)
    assert vcpus["c"]["live_not_followed"] == ["vcpus: target 2, hypervisor reports 1"]


def test_start_failure_names_why_and_shows_the_console(tmp_path, monkeypatch):
    monkeypatch.setattr(observe, "POLL", 0.01)
    log = tmp_path / "dies.log"
    log.write_text("Booting\nKernel panic - not syncing: Attempted to kill init!\n")
    monkeypatch.setattr(observe, "console_log_path", lambda name, driver: str(log))
    running = (libvirt.VIR_DOMAIN_RUNNING, 1)
    crashed = (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_CRASHED)
    message = observe.start_failure(FakeDom({}, states=[running, crashed]), "dies", "qemu", True, 5)
    assert message.startswith("guest dies stopped (crashed) within 5s of its start")
    assert message.endswith("Booting\nKernel panic - not syncing: Attempted to kill init!")
    assert observe.start_failure(FakeDom({}, states=[running]), "lives", "qemu", True, 0.05) is None
    # a wait of 0 reads each guest once
    up = FakeDom({}, states=[running, crashed])
    assert observe.start_failure(up, "up", "qemu", True, 0) is None
    assert up.states == [crashed]  # one read
    # a guest read only after its watch ended is not said to have stopped within it
    late = observe.start_failures([(FakeDom({}, states=[crashed]), "late", time.monotonic() - 4)], "qemu", True, 1)
    assert late["late"].startswith("guest late stopped (crashed) by 4.")
    assert "s after its start (watch: 1s);" in late["late"]


def test_guest_info_waits_only_for_a_named_guest_and_says_why_it_gave_up():
    from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError, XenError  # noqa: PLC0415
    from ansible_collections.lcfg.xen.plugins.module_utils.domain import engine  # noqa: PLC0415

    conn = libvirt.open("test:///default")
    try:
        with pytest.raises(ValidationError, match="wait_for_address"):
            engine.guest_info(conn, {"wait_for_address": 5})
        with pytest.raises(ValidationError, match="console_lines"):
            engine.guest_info(conn, {"console_lines": -1})
        engine.converge_domain(conn, {"name": "i13info-unit", "memory": 64, "state": "stopped"})
        with pytest.raises(XenError, match=r"guest i13info-unit \(stopped\) has no ipv6 address after 0s") as caught:
            engine.wait_for_address(conn, "i13info-unit", 0, "ipv6")
        assert caught.value.result["guests"][0]["name"] == "i13info-unit"
        guest = engine.guest_info(conn, {"name": "i13info-unit"})["guests"][0]
        assert guest["console_log"] is None and guest["memory_actual"] is None and guest["addresses"] == []
    finally:
        engine.converge_domain(conn, {"name": "i13info-unit", "state": "absent"})
        conn.close()


def test_the_logged_serial_is_port_0_beside_a_profiles_serial():
    xml = QEMU_XML.replace(
        "<console type='pty'/>", "<serial type='pty'><target port='1'/></serial><console type='pty'/>"
    )
    root = etree.fromstring(update_domain_xml(xml, {"name": "g1", "type": "hvm"}, [], {"driver": "qemu"}).encode())
    serials = root.findall("devices/serial")
    assert [(s.find("target").get("port"), s.find("log") is not None) for s in serials] == [("0", True), ("1", False)]


def test_start_failures_watches_every_started_guest_within_one_wait(monkeypatch):
    monkeypatch.setattr(observe, "POLL", 0.01)
    monkeypatch.setattr(observe, "console_log_path", lambda name, driver: None)
    running = (libvirt.VIR_DOMAIN_RUNNING, 1)
    destroyed = (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED)
    began = time.monotonic()
    started = [(FakeDom({}, states=[running]), f"lives{index}", began) for index in range(50)]
    started.append((FakeDom({}, states=[running, running, destroyed]), "dies", began))
    failures = observe.start_failures(started, "qemu", True, 0.3)
    # 51 guests, one wait: not 51 waits of 0.3 s one after the other
    assert time.monotonic() - began < 3
    assert list(failures) == ["dies"]
    assert failures["dies"].startswith("guest dies stopped (destroyed) within 0.3s of its start")


def test_start_failures_watch_each_guest_from_its_own_start_and_keep_read_errors_its_own(monkeypatch):
    monkeypatch.setattr(observe, "POLL", 0.01)
    monkeypatch.setattr(observe, "console_log_path", lambda name, driver: None)
    running = (libvirt.VIR_DOMAIN_RUNNING, 1)
    crashed = (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_CRASHED)

    class Unreadable:
        def state(self, flags=0):
            raise libvirt.libvirtError("connection reset")

    now = time.monotonic()
    failures = observe.start_failures(
        [
            # started long before its window: crashes later, which is not an early stop
            (FakeDom({}, states=[running, crashed]), "old", now - 60),
            (FakeDom({}, states=[running, crashed]), "new", now),
            (Unreadable(), "broken", now),
        ],
        "qemu",
        True,
        5,
    )
    assert sorted(failures) == ["broken", "new"]
    assert failures["new"].startswith("guest new stopped (crashed) within 5s of its start")
    assert failures["broken"].startswith("read the state of guest broken")
