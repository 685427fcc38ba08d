# -*- coding: utf-8 -*-
# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Plan and apply one guest domain: the engine of xen_domain, xen_guests and xen_group.

API (everything takes an open libvirt connection from ``_libvirt.open_connection``)::

    spec = validate_guest(params, prefix="")      # pure; ValidationError names the parameter
    plan = plan_domain(conn, spec, state="present",      # present|running|stopped|absent
                       shutdown_timeout=120, force_stop=False, remove_disks=False,
                       dom=None, prefix="")        # reads libvirt, changes nothing
    result = apply_plan(conn, plan, check_mode=False)
    # result == {"name", "changed": bool, "actions": [str], "before": dict, "after": dict,
    #            "pending_restart": bool, "pending_restart_fields": [str], "warnings": [str],
    #            "diff": {"before": dict, "after": dict}}
    result = converge_domain(conn, params, check_mode=False)  # the three steps above
    result = converge_guests(conn, [params, ...], check_mode=False, default_bridge=None, parallel=8)
    # -> {"changed", "results": [result per guest], "pending_restart": [names], "diff"}
    guests = domain_info(conn, name=None)          # list of dicts, see xen_domain_info RETURN
    domains = list_domains(conn)                   # {name: virDomain}, one libvirt call

``before``/``after`` are normalised guest specs (architecture.md vocabulary) plus ``state``
(``running``, ``paused``, ``stopped`` or ``absent``); an absent guest is ``{"name", "state":
"absent"}``. In check mode ``after`` is the prediction; after a real run it is read back from
libvirt. Plans of several guests can be made first (all validation and reading) and applied
afterwards, so bad input for any guest fails before anything changes.

Semantics: the persistent definition (``XMLDesc(VIR_DOMAIN_XML_INACTIVE)``) is parsed back to
the spec vocabulary and compared with the desired spec completed from it (fields left out
are not touched; UUID and MACs already there are kept; new guests get a stable UUID and
MACs derived from the name, so check mode predicts them). Differences are written by
modifying the existing XML in place and redefining. On a running guest, memory (up to
maxmem), vcpus (up to maxvcpus) and CPU pinning change live as well; other changes wait
for the next restart and are listed in ``pending_restart_fields``; the guest is never
restarted for them.

Structure: ``plan_domain`` reads the guest once (``read_current``) and decides everything;
``apply_plan`` runs the steps ``ensure_defined``, ``ensure_live``, ``ensure_autostart`` and
``ensure_power_state`` (or ``ensure_absent``), each returning ``(changed, new_state)`` and
only simulating in check mode. libvirt calls sit in small ``@libvirt_errors`` wrappers, so
failures arrive as ``LibvirtFailure``/``NotFound`` naming the guest and the operation.
"""

from __future__ import annotations

import copy
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.domain import xml as dx
from ansible_collections.lcfg.xen.plugins.module_utils.domain.xml import HAS_LXML, LXML_IMPORT_ERROR, etree
from ansible_collections.lcfg.xen.plugins.module_utils.disk.engine import (
    DEFAULT_STORAGE_DIRS,
    qemu_img_info,
    real_inside,
    recorded_format,
)
from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, ValidationError, XenError
from ansible_collections.lcfg.xen.plugins.module_utils.spec.argspec import check_guest_item
from ansible_collections.lcfg.xen.plugins.module_utils.spec.schema import check_text
from ansible_collections.lcfg.xen.plugins.module_utils.disk.imagecheck import recorded_origin
from ansible_collections.lcfg.xen.plugins.module_utils.common.host_access import (
    HostAccess,
    check_guest_access,
    host_access_from_params,
)
from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import (
    driver_name,
    libvirt,
    libvirt_errors,
    missing_is_none,
)
from ansible_collections.lcfg.xen.plugins.module_utils.common.validate import cpuset_members

__all__ = [
    "HAS_LXML",
    "LXML_IMPORT_ERROR",
    "DomainPlan",
    "validate_guest",
    "plan_domain",
    "apply_plan",
    "converge_domain",
    "converge_guests",
    "domain_info",
    "list_domains",
    "connection_caps",
    "STATES",
]

STATES = ("present", "running", "stopped", "absent")
LIVE_FIELDS = ("memory", "vcpus", "cpus")
_POLL = 0.25


# --------------------------------------------------------------------------- libvirt calls

@libvirt_errors("list guests")
def list_domains(conn) -> dict:
    """``{name: virDomain}`` of every guest, defined or running, in one call."""
    return {dom.name(): dom for dom in conn.listAllDomains(0)}


@libvirt_errors("look up guest {name}")
@missing_is_none
def _lookup(conn, *, name: str):
    return conn.lookupByName(name)


@libvirt_errors("read the definition of guest {name}")
def _read(dom, *, name: str) -> tuple[str, bool, int]:
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    autostart = bool(dom.autostart()) if dom.isPersistent() else False
    power = dom.state()[0]
    return xml, autostart, power


@libvirt_errors("read the capabilities of the hypervisor")
def _capabilities(conn) -> str:
    return conn.getCapabilities()


@libvirt_errors("define guest {name}")
def _define(conn, xml: str, *, name: str):
    return conn.defineXML(xml)


@libvirt_errors("set autostart of guest {name}")
def _set_autostart(dom, value: bool, *, name: str) -> None:
    dom.setAutostart(1 if value else 0)


@libvirt_errors("start guest {name}")
def _start(dom, *, name: str) -> None:
    try:
        dom.create()
    except libvirt.libvirtError:
        if not dom.isActive():
            raise  # running anyway (another run started it meanwhile) is what was asked


@libvirt_errors("resume guest {name}")
def _resume(dom, *, name: str) -> None:
    try:
        dom.resume()
    except libvirt.libvirtError:
        if dom.state()[0] != libvirt.VIR_DOMAIN_RUNNING:
            raise


# How long a guest that libvirt holds paused while it starts up (another run's start) is
# waited for before its state counts.
_STARTUP_WAIT = 30


@libvirt_errors("read the power state of guest {name}")
def _power_now(dom, *, name: str) -> str:
    """running, paused or stopped, read now; a guest paused only because it is starting up
    (another run is starting it) is waited for, so it is not taken for a paused guest."""
    deadline = time.monotonic() + _STARTUP_WAIT
    while True:
        power, reason = dom.state()[:2]
        if power != libvirt.VIR_DOMAIN_PAUSED or reason != libvirt.VIR_DOMAIN_PAUSED_STARTING_UP \
                or time.monotonic() >= deadline:
            return _POWER.get(power, "running")
        time.sleep(_POLL)


@libvirt_errors("undefine guest {name}")
@missing_is_none  # gone already (another run removed it): what was asked
def _undefine(dom, *, name: str) -> None:
    full = (libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
            | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
            | getattr(libvirt, "VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA", 0))
    for flags in (full, libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA):
        try:
            dom.undefineFlags(flags)
            return
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG,
                                            libvirt.VIR_ERR_CONFIG_UNSUPPORTED):
                raise
    dom.undefine()


@libvirt_errors("stop guest {name}")
@missing_is_none
def _stop(dom, timeout: float, force: bool, *, name: str) -> str | None:
    """Graceful shutdown, waiting up to ``timeout`` seconds; destroy afterwards if ``force``.

    Returns ``shutdown`` or ``destroy`` (what stopped it), None when the guest is gone."""
    if not dom.isActive():
        return "shutdown"
    if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
        dom.resume()  # a paused guest cannot react to the shutdown request
    try:
        dom.shutdown()
    except libvirt.libvirtError:
        if dom.isActive():
            if not force:
                raise
    deadline = time.monotonic() + timeout
    while dom.isActive():
        if time.monotonic() >= deadline:
            if not force:
                raise Conflict(
                    f"guest {name} did not shut down within shutdown_timeout={timeout:g}s "
                    "(no ACPI/PV shutdown support in the guest?); set force_stop: true to power it "
                    "off after the timeout, or raise shutdown_timeout",
                )
            try:
                dom.destroy()
            except libvirt.libvirtError:
                if dom.isActive():
                    raise
            return "destroy"
        time.sleep(_POLL)
    return "shutdown"


def _live_call(func, *args: Any) -> str | None:
    """Run a live-change call; return libvirt's message on failure instead of raising."""
    try:
        func(*args)
    except libvirt.libvirtError as exc:
        return exc.get_error_message()
    return None


def _live_and_config(func, value: int) -> str | None:
    """``func(value, AFFECT_LIVE | AFFECT_CONFIG)``; drivers that refuse the pair get two calls."""
    live, config = libvirt.VIR_DOMAIN_AFFECT_LIVE, libvirt.VIR_DOMAIN_AFFECT_CONFIG
    if _live_call(func, value, live | config) is None:
        return None
    _live_call(func, value, config)  # keep the persistent part even when live fails
    return _live_call(func, value, live)


def _pin(dom: Any, vcpu: int, cpumap: tuple) -> str | None:
    error = _live_call(dom.pinVcpuFlags, vcpu, cpumap, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    if error is not None and "unsupported flags" in error:
        error = _live_call(dom.pinVcpu, vcpu, cpumap)
    return error


@libvirt_errors("remove disk image {path}")
def _remove_image(conn, *, path: str, local: bool) -> bool:
    try:
        vol = conn.storageVolLookupByPath(path)
    except libvirt.libvirtError:
        vol = None
    if vol is not None:
        vol.delete(0)
        return True
    if local and os.path.isfile(path):
        os.unlink(path)
        return True
    return False


# --------------------------------------------------------------------------- reading

def _is_local(uri: str) -> bool:
    rest = uri.split("://", 1)[1] if "://" in uri else ""
    host = rest.split("/", 1)[0]
    scheme = uri.split(":", 1)[0]
    return host in ("", "localhost") and ("+" not in scheme or scheme.endswith("+unix"))


def connection_caps(conn) -> dict:
    """Driver facts the renderer needs; read once per connection.

    ``driver`` (xen, qemu, test, ...), ``local``, and lazily (``_full_caps``) ``domain_type``
    (QEMU: ``kvm`` only when offered and /dev/kvm opens), ``arch``, ``loader`` (Xen hvmloader).
    """
    caps = getattr(conn, "_lcfg_caps", None)
    if caps is None:
        uri = conn.getURI()
        caps = {"driver": driver_name(conn), "local": _is_local(uri), "uri": uri}
        conn._lcfg_caps = caps  # cached on the connection object itself
    return caps


def _full_caps(conn) -> dict:
    caps = connection_caps(conn)
    if "domain_type" in caps:
        return caps
    root = etree.fromstring(_capabilities(conn).encode())
    arch = root.findtext("host/cpu/arch")
    domain_types: set[str] = set()
    loader = None
    for guest in root.findall("guest"):
        guest_arch = guest.find("arch")
        if guest_arch is None or guest_arch.get("name") != arch:
            continue
        domain_types.update(d.get("type") for d in guest_arch.findall("domain"))
        if guest.findtext("os_type") == "hvm" and guest_arch.findtext("loader"):
            loader = guest_arch.findtext("loader")
    domain_type = caps["driver"]
    if caps["driver"] == "qemu":
        domain_type = "kvm" if "kvm" in domain_types and _kvm_usable(caps["local"]) else "qemu"
    caps.update(domain_type=domain_type, arch=arch if caps["driver"] != "test" else None,
                loader=loader if caps["driver"] == "xen" else None)
    return caps


def _kvm_usable(local: bool) -> bool:
    if not local:
        return True
    try:
        handle = os.open("/dev/kvm", os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    os.close(handle)
    return True


_POWER = {1: "running", 2: "running", 3: "paused", 4: "running", 5: "stopped", 6: "stopped",
          7: "paused", 0: "stopped"}


@dataclass
class Current:
    name: str
    dom: Any = None
    xml: str | None = None
    spec: dict | None = None
    power: str = "absent"
    domain_type: str | None = None

    @property
    def exists(self) -> bool:
        return self.dom is not None

    @property
    def active(self) -> bool:
        return self.power in ("running", "paused")

    def view(self, fragments: list[str] | None = None) -> dict:
        """The spec plus ``state``; ``extra.xml`` lists which of ``fragments`` are applied."""
        if not self.exists:
            return {"name": self.name, "state": "absent"}
        view = copy.deepcopy(self.spec)
        view["extra"]["xml"] = dx.present_fragments(self.xml, fragments) if fragments else []
        view["state"] = self.power
        return view


def read_current(conn, name: str, dom: Any = None, known_missing: bool = False) -> Current:
    if dom is None and not known_missing:
        dom = _lookup(conn, name=name)
    if dom is None:
        return Current(name=name)
    xml, autostart, power = _read(dom, name=name)
    spec = dx.parse_domain(xml)
    spec["autostart"] = autostart
    root_type = etree.fromstring(xml.encode()).get("type")
    return Current(name=name, dom=dom, xml=xml, spec=spec, power=_POWER.get(power, "running"),
                   domain_type=root_type)


# --------------------------------------------------------------------------- planning

@dataclass
class DomainPlan:
    name: str
    state: str
    current: Current
    before: dict
    after: dict
    actions: list[str] = field(default_factory=list)
    changed_fields: list[str] = field(default_factory=list)
    new_xml: str | None = None
    live: dict = field(default_factory=dict)
    pending_restart_fields: list[str] = field(default_factory=list)
    remove_paths: list[str] = field(default_factory=list)
    fragments: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    shutdown_timeout: float = 120
    force_stop: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.actions)


def validate_guest(params: dict, prefix: str = "") -> dict:
    """Validated spec from module parameters (``None`` = leave alone)."""
    return dx.validate_spec(params, prefix=prefix)


def _disk_formats(spec: dict, local: bool, storage_dirs: list | tuple, prefix: str = "") -> None:
    """Fill undeclared image formats from xen_disk's record; never probe the contents (a guest
    controls them: a qcow2 header in a raw disk would name a backing file of its choosing).

    A declared format that contradicts the record is refused (a profile declaring qcow2 on a
    raw disk would have the guest's data read as image metadata), and so is a qcow2 image
    whose backing file lies outside the storage directories (the host would open it).
    """
    if not local:
        return
    for index, disk in enumerate(spec.get("disks") or []):
        if disk["type"] != "image":
            continue
        where = f"{prefix}disks[{index}].format"
        recorded = recorded_format(disk["path"])
        if disk["format"] is None:
            disk["format"] = recorded
        elif recorded and disk["format"] != recorded:
            raise ValidationError(where, f"{disk['path']} was created as {recorded} by xen_disk; declaring it "
                                         f"{disk['format']} would read the guest's data as image metadata: "
                                         f"declare {recorded} or leave the format out")
        if disk["format"] == "qcow2" and os.path.isfile(disk["path"]):
            try:
                info = qemu_img_info(disk["path"], "qcow2")
            except XenError as exc:
                raise ValidationError(where, exc.message) from None
            backing = info["backing_file"] if info else None
            if backing and real_inside(backing, list(storage_dirs)) is None:
                raise ValidationError(where, f"{disk['path']} is a qcow2 image backed by {backing}, outside the "
                                             f"storage directories ({', '.join(storage_dirs)}): refused (the guest "
                                             "would read that host file)")


# --------------------------------------------------------------------------- shared files

# How many files of the storage directories are read for clone records (bounds the walk).
_MAX_SCANNED_FILES = 20000


class SharedFiles:
    """What other guests and clones already use, read once per run and only when needed:
    ``others(name)`` {path: [(guest, "disk"|"kernel"|"ramdisk")]} of every other defined or
    running guest, ``templates()`` {template path: [clone paths]} from the origins xen_disk
    records with its clones in the storage directories. Paths are resolved on a local host."""

    def __init__(self, conn, storage_dirs: list | tuple, local: bool):
        self.conn, self.storage_dirs, self.local = conn, list(storage_dirs), local
        self._users: dict | None = None
        self._templates: dict | None = None

    def key(self, path: str) -> str:
        return os.path.realpath(path) if self.local else os.path.normpath(path)

    def others(self, name: str) -> dict:
        if self._users is None:
            self._users = _files_of_domains(self.conn, self.key)
        return {path: [u for u in users if u[0] != name] for path, users in self._users.items()
                if any(u[0] != name for u in users)}

    def templates(self) -> dict:
        if self._templates is None:
            self._templates = _recorded_templates(self.storage_dirs) if self.local else {}
        return self._templates


@libvirt_errors("read the files the guests use")
def _files_of_domains(conn, key) -> dict:
    used: dict = {}
    for dom in conn.listAllDomains(0):
        try:  # the persistent definition and, when running, the live one
            xmls = [dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)] + ([dom.XMLDesc(0)] if dom.isActive() else [])
            name = dom.name()
        except libvirt.libvirtError:
            continue  # removed meanwhile
        for xml in xmls:
            root = etree.fromstring(xml.encode())
            found = [(s.get("file") or s.get("dev"), "disk") for s in root.iterfind("devices/disk/source")]
            found += [(root.findtext("os/kernel"), "kernel"), (root.findtext("os/initrd"), "ramdisk")]
            for path, role in found:
                if path and (name, role) not in used.setdefault(key(path), []):
                    used[key(path)].append((name, role))
    return used


def _recorded_templates(storage_dirs: list) -> dict:
    """{resolved template path: [clone paths]} from the clones' ``trusted.lcfg-xen.origin``."""
    templates: dict = {}
    scanned = 0
    for directory in storage_dirs:
        for top, dirs, files in os.walk(directory):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for base in files:
                scanned += 1
                if scanned > _MAX_SCANNED_FILES:
                    return templates
                path = os.path.join(top, base)
                origin = recorded_origin(path) if not os.path.islink(path) else None
                if origin and origin.get("template"):
                    templates.setdefault(os.path.realpath(str(origin["template"])), []).append(path)
    return templates


def _describe_users(users: list) -> str:
    return ", ".join(f"{name} ({role})" for name, role in users)


def _removable_disks(plan: DomainPlan, disks: list[dict], storage_dirs: list | tuple, local: bool,
                     shared: SharedFiles | None = None) -> None:
    """Queue the image files of ``disks`` for removal, only inside ``storage_dirs`` (resolved
    paths on a local host); an image elsewhere, or a symbolic link, is kept and reported, and
    so is one that another guest uses or that is a clone's template (``shared``)."""
    for disk in disks:
        if disk["type"] != "image":
            continue
        path = disk["path"]
        if local:
            if not os.path.lexists(path):
                continue
            if not os.path.islink(path) and not os.path.isfile(path):
                kind = "a directory" if os.path.isdir(path) else "a device, socket or pipe"
                plan.notes.append(f"guest {plan.name}: disk image {path} kept: it is {kind}, not an image file; "
                                  "remove_disks deletes only image files")
                continue
            real = None if os.path.islink(path) else real_inside(path, list(storage_dirs))
        else:
            real = path if any(path.startswith(d.rstrip("/") + "/") for d in storage_dirs) else None
        if real is None:
            plan.notes.append(f"guest {plan.name}: disk image {path} kept: it is outside the storage directories "
                              f"({', '.join(storage_dirs)}) or a symbolic link; remove_disks deletes only there")
            continue
        if shared is not None:
            users = shared.others(plan.name).get(shared.key(real))
            clones = shared.templates().get(shared.key(real))
            if users or clones:
                why = (f"guest(s) {_describe_users(users)} use it" if users else
                       f"it is the template of {', '.join(sorted(clones))}")
                plan.notes.append(f"guest {plan.name}: disk image {path} kept: {why}; remove_disks never deletes "
                                  "an image another guest or clone still needs")
                continue
        plan.remove_paths.append(real)
        plan.actions.append(f"remove_disk {real}")


def _cosmetic_only(field_name: str, target: dict, current: dict, driver: str) -> bool:
    """True when a disks/vifs difference is in labels kept in metadata only (no restart)."""
    if field_name == "disks":
        strip = ("tag", "name")
    elif field_name == "vifs":
        strip = ("tag",) if driver == "xen" else ("tag", "ip", "script")
    else:
        return False

    def clean(items: list[dict]) -> list[dict]:
        return [{k: v for k, v in item.items() if k not in strip} for item in items or []]

    return clean(target.get(field_name)) == clean(current.get(field_name))


def carries_marker(xml: str) -> bool:
    """Whether a domain definition carries the metadata element lcfg.xen writes on every define."""
    return etree.fromstring(xml.encode()).find(f"metadata/{{{dx.METADATA_NS}}}guest") is not None


def _check_owned(current: Current, state: str, adopt: bool, prefix: str) -> None:
    """Refuse any plan for an existing domain lcfg.xen did not define (an admin's VM, another
    tool's), unless the play adopts it: a profile naming its guest after such a domain would
    otherwise redefine it (dropping its disks and vifs) or undefine it and delete its images.
    A foreign domain that already matches is refused too: the answer does not depend on it."""
    if not current.exists or adopt or carries_marker(current.xml):
        return
    would = "be stopped, undefined (and its disks removed with remove_disks)" if state == "absent" else \
        "be redefined from the spec"
    raise Conflict(
        f"{prefix}name: guest {current.name} exists on the hypervisor but was not defined by lcfg.xen "
        f"(its definition has no <metadata> element of namespace {dx.METADATA_NS}); it would {would}. "
        "It is left alone: give the guest a name of its own (the profile's xen.name_<vm>), or, if "
        "lcfg.xen should manage this domain from now on, adopt it once (xen_domain adopt: true; "
        f"xen_guests adopt: [{current.name}]; role lcfg.xen.guest guest_adopt: [{current.name}]; "
        f"playbooks/teardown.yml teardown_adopt: [{current.name}])")


def plan_domain(conn, desired: dict, state: str = "present", *, shutdown_timeout: float = 120,
                force_stop: bool = False, remove_disks: bool = False, dom: Any = None,
                known_missing: bool = False, prefix: str = "",
                storage_dirs: list | tuple | None = None, adopt: bool = False) -> DomainPlan:
    """Compare the validated ``desired`` spec with libvirt; return what ``apply_plan`` will do.

    ``dom`` (a virDomain) or ``known_missing`` skip the lookup when the caller listed the
    domains already (xen_guests). ``adopt``: the play lets lcfg.xen take over an existing
    domain it did not define (else refused, see ``_check_owned``); the adopted definition
    gets the marker, so later runs need no adopt. Raises XenError for requests that cannot be met.
    """
    if state not in STATES:
        raise ValidationError(f"{prefix}state", f"unknown state {state!r}: use one of {', '.join(STATES)}")
    name = desired["name"]
    caps = connection_caps(conn)
    current = read_current(conn, name, dom=dom, known_missing=known_missing)
    _check_owned(current, state, adopt, prefix)
    before = current.view()
    plan = DomainPlan(name=name, state=state, current=current, before=before, after=before,
                      shutdown_timeout=shutdown_timeout, force_stop=force_stop)
    if state == "absent":
        if current.exists:
            if current.active:
                plan.actions.append("stop")
            plan.actions.append("undefine")
            if remove_disks:
                dirs = storage_dirs or DEFAULT_STORAGE_DIRS
                _removable_disks(plan, current.spec["disks"], dirs, caps["local"],
                                 SharedFiles(conn, dirs, caps["local"]))
            plan.after = {"name": name, "state": "absent"}
        return plan
    if remove_disks:
        raise ValidationError(f"{prefix}remove_disks", "only valid with state: absent")
    dx.check_driver(desired, caps["driver"], prefix=prefix)
    desired = copy.deepcopy(desired)
    _disk_formats(desired, caps["local"], storage_dirs or DEFAULT_STORAGE_DIRS, prefix)
    if current.exists:
        if desired.get("uuid") and desired["uuid"] != current.spec["uuid"]:
            raise Conflict(f"guest {name} exists with UUID {current.spec['uuid']}, not {desired['uuid']}; "
                           "a UUID cannot be changed in place: remove the guest first (state: absent) "
                           "or drop the uuid option")
        render_caps = dict(caps, domain_type=current.domain_type)
        target = dx.complete_spec(desired, current.spec, caps["driver"], prefix=prefix,
                                  reserved=dx.reserved_targets(current.xml))
        plan.fragments = target["extra"]["xml"]
        compare = current.view(plan.fragments)
        plan.before = compare
        changed = dx.diff_specs(target, compare)
        config = [f for f in changed if f != "autostart"]
        plan.changed_fields = changed
        live_ok: list[str] = []
        if current.active and state != "stopped":
            if "memory" in config and "maxmem" not in config:
                live_ok.append("memory")
            if "vcpus" in config and "maxvcpus" not in config:
                live_ok.append("vcpus")
            if "cpus" in config:
                live_ok.append("cpus")
            plan.pending_restart_fields = [
                f for f in config
                if f not in live_ok and not _cosmetic_only(f, target, compare, caps["driver"])
            ]
            for f in live_ok:
                plan.live[f] = target[f]
        redefine = [f for f in config if f not in ("memory", "vcpus") or f not in live_ok]
        # An adopted domain is redefined once even when it matches, to carry the marker.
        if redefine or "cpus" in live_ok or not carries_marker(current.xml):
            plan.new_xml = dx.update_domain_xml(current.xml, target, config, render_caps)
            plan.actions.append("redefine")
        for f in ("memory", "vcpus", "cpus"):
            if f in plan.live:
                plan.actions.append(f"set_{f}_live")
    else:
        render_caps = _full_caps(conn)
        target = dx.complete_spec(desired, None, caps["driver"], prefix=prefix,
                                  domain_type=render_caps["domain_type"])
        plan.fragments = target["extra"]["xml"]
        plan.new_xml = dx.render_domain(target, render_caps)
        plan.actions.append("define")
    if target["autostart"] != (current.spec["autostart"] if current.exists else False):
        plan.actions.append("set_autostart")
    power = current.power if current.exists else "stopped"
    if state == "running" and power == "stopped":
        plan.actions.append("start")
        power = "running"
    elif state == "running" and power == "paused":
        plan.actions.append("resume")
        power = "running"
    elif state == "stopped" and power in ("running", "paused"):
        plan.actions.append("stop")
        power = "stopped"
    plan.after = dict(copy.deepcopy(target), state=power)
    if caps["driver"] != "xen" and ("define" in plan.actions or "vifs" in plan.changed_fields):
        scripts = sorted({v["script"] for v in target["vifs"] if v.get("script")})
        if scripts:
            plan.notes.append(f"guest {name}: vif scripts ({', '.join(scripts)}) are a Xen feature; "
                              f"on {caps['driver']} they are only recorded in the guest's metadata")
    return plan


# --------------------------------------------------------------------------- applying

@dataclass
class _Run:
    """What the ``ensure_*`` steps share while a plan is applied."""

    conn: Any
    plan: DomainPlan
    check_mode: bool
    dom: Any = None
    done: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)


# Each ensure_* step takes the state so far (a spec view with ``state``) and returns
# (changed, new_state). In check mode it changes nothing and returns the simulated state.

def ensure_defined(run: _Run, state: dict) -> tuple[bool, dict]:
    plan = run.plan
    if plan.new_xml is None:
        return False, state
    new_state = dict(copy.deepcopy(plan.after), state=state.get("state", "stopped"),
                     autostart=state.get("autostart", False))
    if state.get("state") == "absent":
        new_state["state"] = "stopped"
    if not run.check_mode:
        run.dom = _define(run.conn, plan.new_xml, name=plan.name)
        run.done.append("redefine" if plan.current.exists else "define")
    return True, new_state


def ensure_live(run: _Run, state: dict) -> tuple[bool, dict]:
    """memory, vcpus and pinning of a running guest (the saved values are in place already)."""
    plan = run.plan
    if not plan.live:
        return False, state
    new_state = dict(state, **plan.live)
    if run.check_mode:
        return True, new_state
    dom = run.dom
    failures: dict[str, str | None] = {}
    if "memory" in plan.live:
        failures["memory"] = _live_and_config(dom.setMemoryFlags, plan.live["memory"] * 1024)
    if "vcpus" in plan.live:
        failures["vcpus"] = _live_and_config(dom.setVcpusFlags, plan.live["vcpus"])
    if "cpus" in plan.live:
        ncpus = conn_cpu_count(dom)
        members = set(cpuset_members(plan.live["cpus"])) if plan.live["cpus"] else set(range(ncpus))
        cpumap = tuple(i in members for i in range(ncpus))
        errors = [e for e in (_pin(dom, vcpu, cpumap) for vcpu in range(dom.info()[3])) if e]
        failures["cpus"] = errors[0] if errors else None
    for field_name, error in failures.items():
        run.done.append(f"set_{field_name}_live")
        if error is None:
            continue
        run.pending.append(field_name)
        run.warnings.append(f"guest {plan.name}: {field_name} could not change live ({error}); "
                            "the new value is saved and applies at the next restart")
    return True, new_state


def conn_cpu_count(dom: Any) -> int:
    return int(dom.connect().getInfo()[2])


def ensure_autostart(run: _Run, state: dict) -> tuple[bool, dict]:
    plan = run.plan
    if "set_autostart" not in plan.actions:
        return False, state
    if not run.check_mode:
        _set_autostart(run.dom, plan.after["autostart"], name=plan.name)
        run.done.append("set_autostart")
    return True, dict(state, autostart=plan.after["autostart"])


def ensure_power_state(run: _Run, state: dict) -> tuple[bool, dict]:
    plan = run.plan
    step = next((a for a in plan.actions if a in ("start", "resume", "stop")), None)
    if step is None:
        return False, state
    if not run.check_mode:
        # Read again: what was planned may have happened meanwhile (another run, a guest
        # paused while it started up); do only what is still missing.
        now = _power_now(run.dom, name=plan.name)
        if now == plan.after["state"]:
            return False, dict(state, state=now)
        if now == "stopped" and plan.after["state"] == "running":
            _start(run.dom, name=plan.name)
            run.done.append("start")
        elif now == "paused" and plan.after["state"] == "running":
            _resume(run.dom, name=plan.name)
            run.done.append("resume")
        else:
            _stop_noted(run)
    return True, dict(state, state=plan.after["state"])


def _stop_noted(run: _Run) -> None:
    plan = run.plan
    how = _stop(run.dom, plan.shutdown_timeout, plan.force_stop, name=plan.name)
    run.done.append("stop")
    if how == "destroy":
        run.warnings.append(f"guest {plan.name} did not shut down within {plan.shutdown_timeout:g}s and "
                            "was powered off (force_stop: true)")


def ensure_absent(run: _Run, state: dict) -> tuple[bool, dict]:
    plan = run.plan
    if not plan.actions:
        return False, state
    if not run.check_mode:
        if "stop" in plan.actions:
            _stop_noted(run)
        _undefine(run.dom, name=plan.name)
        run.done.append("undefine")
        local = connection_caps(run.conn)["local"]
        for path in plan.remove_paths:
            if _remove_image(run.conn, path=path, local=local):
                run.done.append(f"remove_disk {path}")
            elif local and os.path.lexists(path):  # it changed since the plan
                run.warnings.append(f"guest {plan.name}: disk image {path} kept: it is no longer a regular file")
            else:
                run.warnings.append(f"guest {plan.name}: disk image {path} was not found; nothing removed")
    return True, {"name": plan.name, "state": "absent"}


def apply_plan(conn, plan: DomainPlan, check_mode: bool = False) -> dict:
    """Carry out ``plan`` step by step (in check mode: simulate the steps)."""
    run = _Run(conn=conn, plan=plan, check_mode=check_mode, dom=plan.current.dom,
               pending=list(plan.pending_restart_fields), warnings=list(plan.notes))
    steps = (ensure_absent,) if plan.state == "absent" else (
        ensure_defined, ensure_live, ensure_autostart, ensure_power_state)
    state = copy.deepcopy(plan.before)
    changed = False
    for step in steps:
        step_changed, state = step(run, state)
        changed = changed or step_changed
    if changed and not check_mode and plan.state != "absent":
        state = read_current(conn, plan.name, dom=run.dom).view(plan.fragments)
    pending = sorted(set(run.pending))
    return {
        "name": plan.name,
        "changed": changed,
        "actions": list(plan.actions) if check_mode else run.done,
        "before": plan.before,
        "after": state,
        "pending_restart": bool(pending),
        "pending_restart_fields": pending,
        "warnings": run.warnings,
        "diff": {"before": plan.before, "after": state},
    }


def check_access(conn, spec: dict, access: HostAccess | None, prefix: str = "", state: str = "present",
                 shared: SharedFiles | None = None, template: str | None = None) -> None:
    """Refuse what ``spec`` would reach on the host beyond what the play allows (``access``;
    None: the defaults, the guest itself only). Paths are resolved on the managed host.
    Removing a guest gives it nothing, so ``state: absent`` is not checked. ``shared``
    (made here when not given) tells which files other guests and clones use; ``template``
    is the guest's own template (xen_guests items)."""
    if state == "absent":
        return
    if access is None:
        access = host_access_from_params({})
    local = connection_caps(conn)["local"]
    _check_image_paths(spec, local, prefix)
    check_guest_access(spec, access, prefix, realpath=os.path.realpath if local else None)
    if not access.allow_host_resources:
        _check_not_shared(spec, shared or SharedFiles(conn, access.storage_dirs, local), prefix, template)


def _check_image_paths(spec: dict, local: bool, prefix: str) -> None:
    """An image disk names a file, never a directory (as xen_disk requires)."""
    for index, disk in enumerate(spec.get("disks") or []):
        path = disk["path"]
        if disk["type"] == "image" and (path.endswith("/") or local and os.path.isdir(path)):
            raise ValidationError(f"{prefix}disks[{index}].path", f"{path!r} must name an image file, not a "
                                  "directory")


def _guest_files(spec: dict, prefix: str) -> list[tuple[str, str, str]]:
    """[(parameter, path, role)] of the files a guest opens: disks, kernel, ramdisk."""
    files = [(f"{prefix}disks[{i}].path", d["path"], "disk") for i, d in enumerate(spec.get("disks") or [])]
    files += [(f"{prefix}{k}", spec[k], "kernel" if k == "kernel" else "ramdisk")
              for k in ("kernel", "ramdisk") if spec.get(k)]
    return files


def _check_not_shared(spec: dict, shared: SharedFiles, prefix: str, template: str | None) -> None:
    """A guest never opens another guest's disk or a clone's template, and no other guest
    opens its disks; only boot files (kernel, ramdisk) may be shared, read-only, with other
    guests' boot files. Only the play shares more (allow_host_resources)."""
    files = _guest_files(spec, prefix)
    if not files:
        return
    others = shared.others(spec["name"])
    own_template = shared.key(template) if template else None
    for where, path, role in files:
        key = shared.key(path)
        users = [u for u in others.get(key, []) if role == "disk" or u[1] == "disk"]
        if users:
            raise ValidationError(where, f"{path} is already used by guest(s) {_describe_users(users)}: a guest "
                                  "never gets another guest's image (it would read or overwrite its data); only "
                                  "the play can share it (allow_host_resources)")
        clones = shared.templates().get(key)
        if key == own_template or clones:
            whose = "this guest's own template" if key == own_template else \
                f"the template of {', '.join(sorted(clones))}"
            raise ValidationError(where, f"{path} is {whose}: a template is never given to a guest (a write "
                                  "would change every later clone); only the play can (allow_host_resources)")


def converge_domain(conn, params: dict, check_mode: bool = False, access: HostAccess | None = None) -> dict:
    """validate_guest + plan_domain + apply_plan for one guest from module-style ``params``;
    ``access``: what the play lets the spec reach on the host (see ``check_access``)."""
    spec = validate_guest(params)
    check_access(conn, spec, access, state=params.get("state") or "present")
    plan = plan_domain(
        conn, spec, params.get("state") or "present",
        shutdown_timeout=params.get("shutdown_timeout") if params.get("shutdown_timeout") is not None else 120,
        force_stop=bool(params.get("force_stop")),
        remove_disks=bool(params.get("remove_disks")),
        storage_dirs=access.storage_dirs if access is not None else None,
        adopt=bool(params.get("adopt")),
    )
    return apply_plan(conn, plan, check_mode=check_mode)


# --------------------------------------------------------------------------- info

@libvirt_errors("read live values of guest {name}")
def _live_values(dom, *, name: str) -> dict:
    state, maxmem, memory, vcpus, _cpu_time = dom.info()
    return {"memory": int(memory) // 1024, "maxmem": int(maxmem) // 1024, "vcpus": int(vcpus)}


def domain_info(conn, name: str | None = None) -> list[dict]:
    """Every guest (or the one called ``name``), defined or running, sorted by name."""
    if name is not None:
        try:
            check_text(name)  # libvirt cannot take a NUL; no name holds a control character
        except ValueError as exc:
            raise ValidationError("name", str(exc)) from None
        dom = _lookup(conn, name=name)
        doms = {name: dom} if dom is not None else {}
    else:
        doms = list_domains(conn)
    out = []
    for guest_name in sorted(doms):
        current = read_current(conn, guest_name, dom=doms[guest_name])
        out.append({
            "name": guest_name,
            "uuid": current.spec["uuid"],
            "state": current.power,
            "autostart": current.spec["autostart"],
            "persistent": bool(current.dom.isPersistent()),
            "live": _live_values(current.dom, name=guest_name) if current.active else None,
            "config": current.spec,
        })
    return out


# --------------------------------------------------------------------------- many guests

def _check_disks_not_claimed_twice(spec: dict, prefix: str, shared: SharedFiles, claimed: dict) -> None:
    """Two guests of one call may not open the same disk (neither is defined yet)."""
    for where, path, role in _guest_files(spec, prefix):
        owner = claimed.get(shared.key(path))
        if owner and owner[0] != spec["name"] and "disk" in (role, owner[1]):
            raise ValidationError(where, f"{path} is also {owner[2]} of guest {owner[0]}: a guest never gets "
                                  "another guest's image; only the play can share it (allow_host_resources)")
        claimed.setdefault(shared.key(path), (spec["name"], role, where))


def converge_guests(conn, guests: list, check_mode: bool = False,
                    default_bridge: str | None = None, parallel: int = 8,
                    access: HostAccess | None = None, adopt: list | None = None) -> dict:
    """Converge every guest of ``guests`` (dicts in xen_domain's options) on one connection.

    All guests are validated and planned (one ``listAllDomains`` plus a couple of reads per
    guest) before the first change, so bad input anywhere changes nothing. Then up to
    ``parallel`` guests are changed at the same time (guest starts wait on QEMU/Xen, not on
    us). A failing guest does not stop the others; the error names it and carries the
    results of the rest. ``adopt``: names of existing domains lcfg.xen did not define that
    the play lets it take over (see ``plan_domain``). Returns ``{changed, results: [apply_plan result per guest, in the
    order given], pending_restart: [names], diff}``.
    """
    if not isinstance(guests, list):
        raise ValidationError("guests", "must be a list of guest dicts")
    if parallel < 1:
        raise ValidationError("parallel", f"must be at least 1, got {parallel}")
    adopt = adopt or []
    if not isinstance(adopt, list) or not all(isinstance(n, str) for n in adopt):
        raise ValidationError("adopt", "must be a list of guest names")
    items = []
    seen: dict[str, int] = {}
    local = connection_caps(conn)["local"]
    shared = SharedFiles(conn, access.storage_dirs if access is not None else DEFAULT_STORAGE_DIRS, local)
    claimed: dict = {}
    for index, raw in enumerate(guests):
        prefix = f"guests[{index}]."
        item = check_guest_item(copy.deepcopy(raw), prefix)
        if default_bridge:
            for vif in item.get("vifs") or []:
                if isinstance(vif, dict) and (vif.get("nettype") or "bridge") == "bridge" and not vif.get("bridge"):
                    vif["bridge"] = default_bridge
        spec = validate_guest(item, prefix=prefix)
        template = raw.get("template") if isinstance(raw, dict) and isinstance(raw.get("template"), str) else None
        check_access(conn, spec, access, prefix, state=item["state"], shared=shared, template=template)
        if spec["name"] in seen:
            raise ValidationError(f"{prefix}name", f"guest {spec['name']} is also guests[{seen[spec['name']]}]")
        seen[spec["name"]] = index
        if item["state"] != "absent" and not (access and access.allow_host_resources):
            _check_disks_not_claimed_twice(spec, prefix, shared, claimed)
        items.append((prefix, item, spec))
    domains = list_domains(conn)
    plans = []
    for prefix, item, spec in items:
        plans.append(plan_domain(
            conn, spec, item["state"], shutdown_timeout=item["shutdown_timeout"],
            force_stop=item["force_stop"], remove_disks=item["remove_disks"],
            dom=domains.get(spec["name"]), known_missing=spec["name"] not in domains, prefix=prefix,
            storage_dirs=access.storage_dirs if access is not None else None,
            adopt=spec["name"] in adopt,
        ))

    def apply_one(plan: DomainPlan) -> dict | XenError:
        try:
            return apply_plan(conn, plan, check_mode=check_mode)
        except XenError as exc:
            return exc

    busy = [plan for plan in plans if plan.actions and not check_mode]
    if parallel > 1 and len(busy) > 1:
        with ThreadPoolExecutor(max_workers=min(parallel, len(busy))) as pool:
            outcomes = list(pool.map(apply_one, plans))
    else:
        outcomes = [apply_one(plan) for plan in plans]
    results = [o for o in outcomes if isinstance(o, dict)]
    failures = [(plan, o) for plan, o in zip(plans, outcomes) if isinstance(o, XenError)]
    if failures:
        plan, exc = failures[0]
        others = f" ({len(failures) - 1} more guests failed too)" if len(failures) > 1 else ""
        raise XenError(f"guest {plan.name}: {exc.message}{others}",
                       changed=any(r["changed"] for r in results), results=results,
                       failed_guests=[p.name for p, _e in failures])
    return {
        "changed": any(r["changed"] for r in results),
        "results": results,
        "pending_restart": [r["name"] for r in results if r["pending_restart"]],
        "diff": {"before": {r["name"]: r["before"] for r in results},
                 "after": {r["name"]: r["after"] for r in results}},
    }
