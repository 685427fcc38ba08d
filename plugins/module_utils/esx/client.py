# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The ESX side, through pyvmomi (the vSphere API): connect, read a VM and its host as the
plain dicts ``esx.plan`` compares, and carry out an ``EsxPlan``. Every vSphere fault becomes
a XenError naming the VM and the step."""

from __future__ import annotations

import contextlib
import http.client
import ssl
import time
from collections.abc import Iterator
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import NotFound, XenError
from ansible_collections.lcfg.xen.plugins.module_utils.common.imports import optional_import
from ansible_collections.lcfg.xen.plugins.module_utils.esx.plan import OWNER_KEY, EsxPlan, disk_kib

pyvmomi, PYVMOMI_ERROR = optional_import("pyVmomi")
connect_module = optional_import("pyVim.connect")[0]
# pyVmomi's vim and vmodl are lazy attributes of the package, not importable submodules
vim = getattr(pyvmomi, "vim", None)
vmodl = getattr(pyvmomi, "vmodl", None)

__all__ = ["PYVMOMI_ERROR", "connection", "host_facts", "read_vm", "apply_plan"]

_KIB_PER_GIB = 1024 * 1024
#: how long a vSphere task may take before the module gives up on it
TASK_TIMEOUT = 600


@contextlib.contextmanager
def connection(params: dict) -> Iterator[Any]:
    """The service instance's content for the module's connection options; logged out after."""
    context = None
    if params["protocol"] == "https" and not params["validate_certs"]:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        service = connect_module.SmartConnect(
            host=params["hostname"],
            port=params["port"],
            user=params["username"],
            pwd=params["password"],
            protocol=params["protocol"],
            sslContext=context,
        )
    # pyVim raises a plain Exception for an endpoint that is not vSphere
    except Exception as exc:  # pylint: disable=broad-except
        raise XenError(
            f"cannot connect to the ESX host {params['hostname']}:{params['port']} over {params['protocol']} "
            f"({_fault_text(exc)}); check hostname, port, protocol, credentials and validate_certs"
        ) from None
    try:
        yield service.RetrieveContent()
    except vmodl.MethodFault as exc:
        raise XenError(f"the ESX host {params['hostname']} refused a request ({_fault_text(exc)})") from None
    except (OSError, http.client.HTTPException) as exc:
        raise XenError(f"the connection to the ESX host {params['hostname']} broke ({_fault_text(exc)})") from None
    finally:
        with contextlib.suppress(Exception):
            connect_module.Disconnect(service)


def _fault_text(exc: BaseException) -> str:
    return str(getattr(exc, "msg", None) or exc).strip()[:300] or type(exc).__name__


def _objects(content: Any, kind: Any) -> list:
    view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
    try:
        return list(view.view)
    finally:
        view.Destroy()


def _host(content: Any, name: str | None) -> Any:
    hosts = _objects(content, vim.HostSystem)
    if name:
        hosts = [h for h in hosts if h.name == name]
    if not hosts:
        raise NotFound(f"ESX host {name!r} not found" if name else "the connection shows no ESX host")
    return hosts[0]


def host_facts(content: Any, esx_host: str | None) -> dict:
    """``{name, memory_mb, port_groups, datastores}`` of the ESX host the VMs run on. The port
    groups are the networks VMs can join in the host's datacenter (a VMkernel port group such
    as the host's Management Network is not one)."""
    host = _host(content, esx_host)
    return {
        "name": host.name,
        "memory_mb": int(host.hardware.memorySize) // (1024 * 1024),
        "port_groups": sorted({network.name for network in [*host.network, *_datacenter_of(host).network]}),
        "datastores": [ds.name for ds in host.datastore],
    }


def _datacenter_of(entity: Any) -> Any:
    while entity is not None and not isinstance(entity, vim.Datacenter):
        entity = entity.parent
    if entity is None:
        raise NotFound("the ESX host is in no datacenter")
    return entity


def _find_vm(content: Any, name: str) -> Any:
    return next((vm for vm in _objects(content, vim.VirtualMachine) if vm.name == name), None)


def _autostart(host: Any, vm: Any) -> bool:
    config = host.configManager.autoStartManager.config
    for info in getattr(config, "powerInfo", None) or []:
        if info.key == vm:
            return info.startAction == "powerOn"
    return False


def read_vm(content: Any, name: str, esx_host: str | None) -> dict | None:
    """The VM ``name`` as ``esx.plan`` compares it, or None when there is none."""
    vm = _find_vm(content, name)
    if vm is None:
        return None
    hardware = vm.config.hardware
    disks, vifs = [], []
    for device in hardware.device:
        if isinstance(device, vim.vm.device.VirtualDisk):
            disks.append({"size_gb": device.capacityInKB / _KIB_PER_GIB})
        elif isinstance(device, vim.vm.device.VirtualEthernetCard):
            backing = device.backing
            group = getattr(backing, "deviceName", None) or getattr(getattr(backing, "network", None), "name", None)
            vifs.append({"mac": (device.macAddress or "").lower() or None, "port_group": group})
    extra = {opt.key: opt.value for opt in vm.config.extraConfig or []}
    return {
        "name": name,
        "memory": int(hardware.memoryMB),
        "vcpus": int(hardware.numCPU),
        "memory_hot_add": bool(vm.config.memoryHotAddEnabled),
        "vcpus_hot_add": bool(vm.config.cpuHotAddEnabled),
        "disks": disks,
        "vifs": vifs,
        "autostart": _autostart(_host(content, esx_host), vm),
        "state": "running" if vm.runtime.powerState == "poweredOn" else "stopped",
        "owned": extra.get(OWNER_KEY) == "true",
    }


# --------------------------------------------------------------------------- changes


def _wait(task: Any, what: str) -> Any:
    deadline = time.monotonic() + TASK_TIMEOUT
    while task.info.state in ("queued", "running"):
        if time.monotonic() > deadline:
            raise XenError(f"{what}: the ESX task did not finish within {TASK_TIMEOUT} s")
        time.sleep(0.1)
    if task.info.state != "success":
        raise XenError(f"{what}: {_fault_text(task.info.error)}")
    return task.info.result


def _nic_spec(operation: Any, port_group: str, mac: str | None, device: Any = None, key: int = -100) -> Any:
    """Add a vmxnet3 NIC on ``port_group`` (``key``: a new device's temporary key), or move
    ``device`` to it (edit)."""
    spec = vim.vm.device.VirtualDeviceSpec(operation=operation)
    nic = device or vim.vm.device.VirtualVmxnet3(key=key)
    nic.backing = vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=port_group)
    nic.connectable = vim.vm.device.VirtualDevice.ConnectInfo(startConnected=True, allowGuestControl=True)
    if mac and device is None:
        nic.addressType, nic.macAddress = "manual", mac
    spec.device = nic
    return spec


def _disk_specs(disks: list[dict], controller_key: int, first_unit: int) -> list:
    """New thin virtual disks of the sizes asked, on the SCSI controller from ``first_unit``."""
    specs = []
    unit = first_unit
    for disk in disks:
        if unit == 7:  # the SCSI controller's own unit
            unit += 1
        device = vim.vm.device.VirtualDisk(
            key=-200 - unit,
            controllerKey=controller_key,
            unitNumber=unit,
            capacityInKB=disk_kib(disk["size_gb"]),
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(diskMode="persistent", thinProvisioned=True),
        )
        specs.append(
            vim.vm.device.VirtualDeviceSpec(
                operation=vim.vm.device.VirtualDeviceSpec.Operation.add,
                fileOperation=vim.vm.device.VirtualDeviceSpec.FileOperation.create,
                device=device,
            )
        )
        unit += 1
    return specs


def _create(plan: EsxPlan, host: Any, params: dict) -> Any:
    datacenter = _datacenter_of(host)
    datastore = params.get("datastore") or host.datastore[0].name
    if datastore not in [ds.name for ds in host.datastore]:
        raise NotFound(f"VM {plan.name}: datastore {datastore!r} is not on the ESX host {host.name}")
    target = plan.after
    controller = vim.vm.device.VirtualDeviceSpec(
        operation=vim.vm.device.VirtualDeviceSpec.Operation.add,
        device=vim.vm.device.ParaVirtualSCSIController(key=-1, busNumber=0, sharedBus="noSharing"),
    )
    devices = [controller, *_disk_specs(target["disks"], -1, 0)]
    add = vim.vm.device.VirtualDeviceSpec.Operation.add
    devices += [_nic_spec(add, v["port_group"], v["mac"], key=-100 - i) for i, v in enumerate(target["vifs"])]
    spec = vim.vm.ConfigSpec(
        name=plan.name,
        memoryMB=target["memory"],
        numCPUs=target["vcpus"],
        memoryHotAddEnabled=True,
        cpuHotAddEnabled=True,
        guestId=params.get("guest_id") or "otherLinux64Guest",
        files=vim.vm.FileInfo(vmPathName=f"[{datastore}]"),
        deviceChange=devices,
        extraConfig=[vim.option.OptionValue(key=OWNER_KEY, value="true")],
    )
    resource_pool = host.parent.resourcePool
    task = datacenter.vmFolder.CreateVM_Task(config=spec, pool=resource_pool, host=host)
    return _wait(task, f"create VM {plan.name}")


def _reconfigure(vm: Any, plan: EsxPlan) -> None:
    change = plan.reconfigure
    spec = vim.vm.ConfigSpec()
    if "memory" in change:
        spec.memoryMB = change["memory"]
    if "vcpus" in change:
        spec.numCPUs = change["vcpus"]
    devices = []
    edit = vim.vm.device.VirtualDeviceSpec.Operation.edit
    disks = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
    for grow in change.get("grow_disks", []):
        disk = disks[grow["index"]]
        disk.capacityInKB = disk_kib(grow["size_gb"])
        devices.append(vim.vm.device.VirtualDeviceSpec(operation=edit, device=disk))
    if change.get("add_disks"):
        controller = next(d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualSCSIController))
        used = [d.unitNumber for d in disks if d.controllerKey == controller.key]
        devices += _disk_specs(change["add_disks"], controller.key, max(used, default=-1) + 1)
    if "nics" in change:
        devices += _nic_changes(vm, change["nics"])
    spec.deviceChange = devices
    _wait(vm.ReconfigVM_Task(spec=spec), f"reconfigure VM {plan.name}")


def _nic_changes(vm: Any, wanted: list[dict]) -> list:
    nics = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard)]
    ops = vim.vm.device.VirtualDeviceSpec.Operation
    kept = {w["match"] for w in wanted if w["match"] is not None}
    changes = [
        vim.vm.device.VirtualDeviceSpec(operation=ops.remove, device=nic) for i, nic in enumerate(nics) if i not in kept
    ]
    for index, item in enumerate(wanted):
        if item["match"] is None:
            changes.append(_nic_spec(ops.add, item["port_group"], item["mac"], key=-100 - index))
        else:
            changes.append(_nic_spec(ops.edit, item["port_group"], None, device=nics[item["match"]]))
    return changes


def _power(vm: Any, on: bool, plan: EsxPlan, params: dict) -> None:
    if on:
        _wait(vm.PowerOnVM_Task(), f"power on VM {plan.name}")
        return
    if not params.get("force_stop"):
        with contextlib.suppress(vim.fault.ToolsUnavailable, vim.fault.InvalidState, vmodl.fault.NotSupported):
            vm.ShutdownGuest()
            deadline = time.monotonic() + params.get("shutdown_timeout", 120)
            while vm.runtime.powerState == "poweredOn" and time.monotonic() < deadline:
                time.sleep(0.5)
        if vm.runtime.powerState == "poweredOn":
            raise XenError(
                f"VM {plan.name} did not shut down within {params.get('shutdown_timeout', 120)} s "
                "(no VMware Tools answering?); set force_stop: true to power it off"
            )
        return
    _wait(vm.PowerOffVM_Task(), f"power off VM {plan.name}")


def _set_autostart(host: Any, vm: Any, on: bool) -> None:
    manager = host.configManager.autoStartManager
    info = vim.host.AutoStartManager.AutoPowerInfo(
        key=vm,
        startAction="powerOn" if on else "none",
        startDelay=-1,
        startOrder=-1,
        stopAction="systemDefault",
        stopDelay=-1,
        waitForHeartbeat="systemDefault",
    )
    config = vim.host.AutoStartManager.Config(powerInfo=[info])
    if on:
        config.defaults = vim.host.AutoStartManager.SystemDefaults(enabled=True)
    manager.ReconfigureAutostart(spec=config)


def apply_plan(content: Any, plan: EsxPlan, params: dict) -> None:
    """Carry out ``plan`` (see ``EsxPlan.actions`` for the order)."""
    host = _host(content, params.get("esx_host"))
    try:
        vm = _create(plan, host, params) if plan.create else _find_vm(content, plan.name)
        if plan.power == "off":  # removal powers off without asking the guest: it is going anyway
            _power(vm, False, plan, dict(params, force_stop=params.get("force_stop") or plan.remove))
        if plan.reconfigure:
            _reconfigure(vm, plan)
        if plan.remove:
            if params.get("remove_disks"):
                _wait(vm.Destroy_Task(), f"remove VM {plan.name}")
            else:
                vm.UnregisterVM()
            return
        if plan.power == "on":
            _power(vm, True, plan, params)
        if plan.autostart is not None:
            _set_autostart(host, vm, plan.autostart)
    except vmodl.MethodFault as exc:
        raise XenError(f"VM {plan.name}: the ESX host refused the change ({_fault_text(exc)})") from None
    except (OSError, http.client.HTTPException) as exc:
        raise XenError(
            f"VM {plan.name}: the connection to the ESX host broke during the change ({_fault_text(exc)}); "
            "run again to see what was done"
        ) from None
