"""Two runs at once (issue 10 item 2): the per-hypervisor lock (_lock) and apply steps that
find what they wanted already done (another run did it between plan and apply).

The lock tests use a private directory under tmp_path; the apply tests libvirt's
test:///default driver and a fake iproute2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, ValidationError, XenError
from ansible_collections.lcfg.xen.plugins.module_utils.common.lock import hypervisor_lock, lock_keys
from ansible_collections.lcfg.xen.plugins.module_utils.domain import engine as dom_mod
from ansible_collections.lcfg.xen.plugins.module_utils.network import bridge as br
from ansible_collections.lcfg.xen.plugins.module_utils.network import libvirt_network as lvn
from ansible_collections.lcfg.xen.plugins.module_utils.network.iproute import IpCommandError
from ansible_collections.lcfg.xen.plugins.module_utils.network.request import normalise_request
from support import remove_named

libvirt = pytest.importorskip("libvirt")


# --------------------------------------------------------------------------- the lock


@pytest.mark.parametrize(
    "uri, local, keys",
    [
        (None, False, ["localhost"]),
        ("qemu:///system", False, ["localhost"]),
        ("xen:///system", True, ["localhost"]),
        ("qemu+ssh://root@hv1.example.org:2222/system", False, ["hv1.example.org"]),
        ("xen+ssh://root@hv1.example.org/system", True, ["hv1.example.org", "localhost"]),
        ("qemu+tcp://localhost/system", False, ["localhost"]),
        ("test:///default", False, ["test"]),
        ("test:///default", True, ["localhost", "test"]),
        ("qemu+ssh://a/../../x/system", False, ["a"]),
    ],
)
def test_lock_keys(uri, local, keys):
    assert lock_keys(uri, local) == keys


HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.lcfg.xen.plugins.module_utils.common.lock import hypervisor_lock
with hypervisor_lock(["localhost"], "lcfg.xen.xen_guests", 5, sys.argv[2]):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def hold_in_another_process(directory, seconds):
    """A process that holds the lock for ``seconds``; returns once it holds it."""
    collections = os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] or "."
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, collections, str(directory), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_lock_is_waited_for_then_fails_naming_the_holder(tmp_path):
    directory = tmp_path / "locks"
    holder = hold_in_another_process(directory, 10)
    try:
        start = time.monotonic()
        with pytest.raises(Conflict) as err, hypervisor_lock(["localhost"], "lcfg.xen.xen_domain", 1.0, str(directory)):
            pass
        waited = time.monotonic() - start
    finally:
        holder.kill()
        holder.wait()
    assert 1.0 <= waited < 3
    message = str(err.value)
    assert f"pid {holder.pid} (lcfg.xen.xen_guests, started " in message
    assert "hypervisor localhost for more than 1 s" in message and "lock_timeout" in message
    assert str(directory / "hypervisor-localhost.lock") in message
    # the kernel released the killed holder's lock: the next call gets it at once
    with hypervisor_lock(["localhost"], "lcfg.xen.xen_domain", 1.0, str(directory)) as lock:
        assert lock["waited"] < 0.5
        data = json.loads((directory / "hypervisor-localhost.lock").read_text())
        assert data["pid"] == os.getpid() and data["module"] == "lcfg.xen.xen_domain"
    assert (directory / "hypervisor-localhost.lock").read_text() == ""  # no stale holder
    assert (directory.stat().st_mode & 0o777) == 0o700


def test_the_second_call_waits_for_the_first(tmp_path):
    directory = str(tmp_path / "locks")
    order = []

    def first():
        with hypervisor_lock(["localhost"], "first", 5, directory):
            order.append("first in")
            time.sleep(1.0)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    while not order:
        time.sleep(0.01)
    with hypervisor_lock(["localhost"], "second", 5, directory) as lock:
        order.append("second in")
    thread.join()
    assert order == ["first in", "first out", "second in"]
    assert 0.5 < lock["waited"] < 2


def test_a_planted_lock_file_or_directory_is_refused(tmp_path):
    directory = tmp_path / "locks"
    directory.mkdir(mode=0o700)
    target = tmp_path / "victim"
    target.write_text("keep")
    (directory / "hypervisor-localhost.lock").symlink_to(target)
    with pytest.raises(XenError) as err, hypervisor_lock(["localhost"], "m", 1, str(directory)):
        pass
    assert "symbolic link" in str(err.value)
    assert target.read_text() == "keep"
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o777)
    open_dir.chmod(0o777)
    with pytest.raises(XenError) as err, hypervisor_lock(["localhost"], "m", 1, str(open_dir)):
        pass
    assert "not a private directory" in str(err.value)
    assert list(open_dir.iterdir()) == []


@pytest.mark.parametrize("timeout", [-1, 86401, float("nan"), True])
def test_lock_timeout_bounds(tmp_path, timeout):
    with pytest.raises(ValidationError) as err, hypervisor_lock(["localhost"], "m", timeout, str(tmp_path / "locks")):
        pass
    assert err.value.parameter == "lock_timeout"


# --------------------------------------------------------------------------- guests: start / resume


def remove_own(connection):
    """test:///default is shared by the connections of one process: start clean."""
    remove_named(connection.listAllDomains(0), "lcfgt-conc-")
    remove_named(connection.listAllNetworks(0), "lcfgt-conc-")


@pytest.fixture
def conn():
    connection = libvirt.open("test:///default")
    remove_own(connection)
    yield connection
    remove_own(connection)
    connection.close()


GUEST = {"name": "lcfgt-conc-g1", "memory": 64, "vcpus": 1, "disks": [], "vifs": [], "kernel": None}


def plan_for(conn, state):
    spec = dom_mod.validate_guest(dict(GUEST))
    return dom_mod.plan_domain(conn, spec, state)


def test_start_planned_but_another_run_started_it(conn):
    dom_mod.apply_plan(conn, plan_for(conn, "present"))
    plan = plan_for(conn, "running")
    assert "start" in plan.actions
    conn.lookupByName("lcfgt-conc-g1").create()  # the other run, between plan and apply
    result = dom_mod.apply_plan(conn, plan)
    assert "start" not in result["actions"] and result["after"]["state"] == "running"
    assert conn.lookupByName("lcfgt-conc-g1").state()[0] == libvirt.VIR_DOMAIN_RUNNING


def test_resume_planned_but_another_run_resumed_it(conn):
    dom_mod.apply_plan(conn, plan_for(conn, "running"))
    guest = conn.lookupByName("lcfgt-conc-g1")
    guest.suspend()
    plan = plan_for(conn, "running")
    assert plan.actions == ["resume"]
    guest.resume()  # the other run
    result = dom_mod.apply_plan(conn, plan)
    assert result["actions"] == [] and not result["changed"]
    assert guest.state()[0] == libvirt.VIR_DOMAIN_RUNNING


def test_a_guest_paused_while_another_run_starts_it_is_waited_for_not_resumed(conn):
    """The issue's case: the plan saw the other run's guest paused (libvirt holds a guest
    paused while it starts up) and planned a resume; by the apply it is running."""
    dom_mod.apply_plan(conn, plan_for(conn, "running"))
    guest = conn.lookupByName("lcfgt-conc-g1")
    states = [(libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_STARTING_UP)] * 2

    class StartingUp:
        resumed = False

        def __getattr__(self, name):
            return getattr(guest, name)

        def state(self):
            return states.pop(0) if states else guest.state()

        def resume(self):
            StartingUp.resumed = True
            raise libvirt.libvirtError("Requested operation is not valid: domain is already running")

    plan = plan_for(conn, "running")
    plan.actions.append("resume")  # what the plan made of the paused guest
    plan.power = "resume"
    plan.current.dom = StartingUp()
    result = dom_mod.apply_plan(conn, plan)
    assert not StartingUp.resumed and not states
    assert "resume" not in result["actions"] and result["after"]["state"] == "running"


def test_stop_planned_but_already_stopped(conn):
    dom_mod.apply_plan(conn, plan_for(conn, "running"))
    plan = plan_for(conn, "stopped")
    conn.lookupByName("lcfgt-conc-g1").destroy()
    result = dom_mod.apply_plan(conn, plan)
    assert result["actions"] == [] and result["after"]["state"] == "stopped"


def test_a_start_that_fails_for_real_still_fails(conn):
    dom_mod.apply_plan(conn, plan_for(conn, "present"))
    plan = plan_for(conn, "running")

    class Refusing:
        def __init__(self, dom):
            self.dom = dom

        def __getattr__(self, name):
            return getattr(self.dom, name)

        def create(self):
            raise libvirt.libvirtError("no memory")

    plan.current.dom = Refusing(plan.current.dom)
    with pytest.raises(XenError) as err:
        dom_mod.apply_plan(conn, plan)
    assert "start guest lcfgt-conc-g1" in str(err.value)


# --------------------------------------------------------------------------- libvirt networks


NAT = {
    "name": "lcfgt-conc-nat",
    "mode": "nat",
    "address": "10.99.0.1/24",
    "dhcp_hosts": [{"mac": "52:54:00:99:00:01", "ip": "10.99.0.5"}],
}


def test_network_defined_and_started_by_another_run_meanwhile(conn):
    req = normalise_request(dict(NAT))
    plan = lvn.plan_network(req, None)
    other = lvn.plan_network(req, None)
    lvn.apply_network(conn, other)  # the other run, between plan and apply
    assert lvn.apply_network(conn, plan) == []
    record = lvn.read_network(conn, "lcfgt-conc-nat")
    assert record["active"] and record["config"]["dhcp_hosts"][0]["ip"] == "10.99.0.5"


def test_a_different_network_defined_meanwhile_is_still_a_conflict(conn):
    req = normalise_request(dict(NAT))
    plan = lvn.plan_network(req, None)
    other = normalise_request(dict(NAT, address="10.98.0.1/24", dhcp_hosts=[]))
    lvn.apply_network(conn, lvn.plan_network(other, None))
    with pytest.raises(XenError) as err:
        lvn.apply_network(conn, plan)
    assert "already exists" in str(err.value)
    assert lvn.read_network(conn, "lcfgt-conc-nat")["config"]["address"] == "10.98.0.1/24"


def test_reservation_added_by_another_run_meanwhile(conn):
    base = normalise_request(dict(NAT, dhcp_hosts=[]))
    lvn.apply_network(conn, lvn.plan_network(base, None))
    req = normalise_request(dict(NAT))
    plan = lvn.plan_network(req, lvn.read_network(conn, "lcfgt-conc-nat"))
    assert plan.define_xml is None and [update.command for update in plan.dhcp_updates] == ["add-last"]
    lvn.apply_network(conn, lvn.plan_network(req, lvn.read_network(conn, "lcfgt-conc-nat")))
    assert lvn.apply_network(conn, plan) == []
    assert len(lvn.read_network(conn, "lcfgt-conc-nat")["config"]["dhcp_hosts"]) == 1


# --------------------------------------------------------------------------- bridges (fake iproute2)


class RacingIp:
    """iproute2 on a host where another run made ``made`` (links by name) meanwhile: a
    ``link add`` of one of them fails with "File exists", as the kernel says."""

    def __init__(self, made):
        self.made = made
        self.calls = []

    def __call__(self, argv):
        if argv[:4] == ["ip", "-j", "-d", "addr"]:
            name = argv[-1]
            if name in self.made:
                return 0, json.dumps([self.made[name]]), ""
            return 1, "", f'Device "{name}" does not exist.'
        self.calls.append(argv)
        if argv[1:3] == ["link", "add"]:
            name = argv[4] if argv[3] == "name" else argv[3]
            if name in self.made:
                return 2, "", "RTNETLINK answers: File exists"
        return 0, "", ""


BRIDGE_ADD = ["ip", "link", "add", "name", "xenbr0", "type", "bridge", "stp_state", "0", "forward_delay", "0"]


def test_bridge_created_by_another_run_meanwhile():
    plan = br.BridgePlan(commands=[BRIDGE_ADD, ["ip", "link", "set", "dev", "xenbr0", "up"]])
    fake = RacingIp({"xenbr0": {"ifname": "xenbr0", "linkinfo": {"info_kind": "bridge"}}})
    br.apply_bridge(plan, fake)
    assert fake.calls == plan.commands  # went on after "File exists"


def test_a_link_of_another_kind_in_the_way_still_fails():
    plan = br.BridgePlan(commands=[BRIDGE_ADD])
    fake = RacingIp({"xenbr0": {"ifname": "xenbr0", "linkinfo": {"info_kind": "veth"}}})
    with pytest.raises(IpCommandError) as err:
        br.apply_bridge(plan, fake)
    assert "File exists" in str(err.value)


def test_address_added_and_link_deleted_meanwhile():
    class Done(RacingIp):
        def __call__(self, argv):
            if argv[1:3] in (["address", "add"], ["link", "del"]):
                self.calls.append(argv)
                return 2, "", "RTNETLINK answers: File exists"
            return super().__call__(argv)

    addressed = {
        "ifname": "xenbr0",
        "linkinfo": {"info_kind": "bridge"},
        "addr_info": [{"family": "inet", "local": "10.9.0.1", "prefixlen": 24, "scope": "global"}],
    }
    br.apply_bridge(
        br.BridgePlan(
            commands=[["ip", "address", "add", "10.9.0.1/24", "dev", "xenbr0"], ["ip", "link", "del", "dev", "gone0"]]
        ),
        Done({"xenbr0": addressed}),
    )
    with pytest.raises(IpCommandError):
        br.apply_bridge(
            br.BridgePlan(commands=[["ip", "address", "add", "10.9.0.2/24", "dev", "xenbr0"]]),
            Done({"xenbr0": addressed}),
        )


# --------------------------------------------------------------------------- stand-ins go with their bridge


def link(name, kind=None, master=None, **extra):
    item = {"ifname": name, "flags": ["UP"], "addr_info": [], **extra}
    if kind:
        item["linkinfo"] = {"info_kind": kind}
    if master:
        item["master"] = master
    return item


class ReadOnlyIp:
    def __init__(self, links):
        self.links = {item["ifname"]: item for item in links}

    def __call__(self, argv):
        if argv == ["ip", "-j", "-d", "addr", "show"]:
            return 0, json.dumps(list(self.links.values())), ""
        raise AssertionError(f"planning ran {argv}")


def test_a_created_netdev_is_marked():
    plan = br.plan_bridge(
        normalise_request({"name": "xenbr0", "netdev": "lcfg-eth0", "create_netdev": "veth", "persist": "none"}),
        ReadOnlyIp([]),
    )
    assert ["ip", "link", "set", "dev", "lcfg-eth0", "alias", br.standin_alias("xenbr0")] in plan.commands


def test_removing_a_bridge_removes_what_was_created_for_it_and_nothing_else():
    links = [
        link("xenbr0", "bridge", ifalias=br.BRIDGE_MARK),
        link("lcfg-eth0", "veth", "xenbr0", link="lcfg-eth0-p", ifalias=br.standin_alias("xenbr0")),
        link("lcfg-eth0-p", "veth", link="lcfg-eth0"),
        link("old-eth9", "veth", "xenbr0", link="old-eth9-p"),  # made before the alias existed
        link("old-eth9-p", "veth", link="old-eth9"),
        link("eth0", master="xenbr0"),  # the uplink
        link("mine0", "veth", "xenbr0", link="other0"),  # an admin's own veth pair
        link("other0", "veth", link="mine0"),
        link("lcfg-eth1", "veth", "xenbr1", link="lcfg-eth1-p", ifalias=br.standin_alias("xenbr1")),
        link("lcfg-eth1-p", "veth", link="lcfg-eth1"),
        link("gone-eth5", "dummy", ifalias=br.standin_alias("xenbr0")),  # its bridge went before
        link("admin-d", "dummy", "xenbr0", ifalias="uplink to rack 4"),
    ]
    plan = br.plan_bridge(
        normalise_request({"name": "xenbr0", "state": "absent", "persist": "none"}), ReadOnlyIp(links)
    )
    assert plan.commands == [
        ["ip", "link", "del", "dev", "xenbr0"],
        ["ip", "link", "del", "dev", "gone-eth5"],
        ["ip", "link", "del", "dev", "lcfg-eth0"],
        ["ip", "link", "del", "dev", "old-eth9"],
    ]
    # a netdev named in the request with create_netdev is not deleted for its kind alone
    plan = br.plan_bridge(
        normalise_request(
            {"name": "xenbr0", "state": "absent", "netdev": "mine0", "create_netdev": "veth", "persist": "none"}
        ),
        ReadOnlyIp([link("xenbr0", "bridge", ifalias=br.BRIDGE_MARK), link("mine0", "veth", "xenbr0", link="other0")]),
    )
    assert plan.commands == [["ip", "link", "del", "dev", "xenbr0"]]


def test_removal_planned_but_another_run_removed_it(conn):
    dom_mod.apply_plan(conn, plan_for(conn, "running"))
    plan = dom_mod.plan_domain(conn, dom_mod.validate_guest(dict(GUEST)), "absent", force_stop=True)
    assert plan.actions == ["stop", "undefine"]
    guest = conn.lookupByName("lcfgt-conc-g1")
    guest.destroy()
    guest.undefine()  # the other run
    result = dom_mod.apply_plan(conn, plan)
    assert result["after"] == {"name": "lcfgt-conc-g1", "state": "absent"}
    assert "lcfgt-conc-g1" not in {d.name() for d in conn.listAllDomains(0)}
