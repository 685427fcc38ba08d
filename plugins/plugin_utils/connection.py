# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""How a playbook reaches a guest: its connection variables (``ansible_host``, ``ansible_user``,
``ansible_ssh_private_key_file``, ``ansible_ssh_common_args``).

Pure: no Ansible. The inventory plugin passes the ``guest_connection`` option (only its
configuration file sets it), each hypervisor's own connection variables as the user set them
(host_vars, group_vars, other inventory sources) and each guest's ``xen_domain``. The address
comes from the profile (validated as an IP when the model was built, checked again here); every
other value from the play's side. No profile value reaches an ssh argument except the guest's
address and the hypervisor's inventory name, both checked against strict patterns.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CONNECTION_VARS",
    "JUMP_CHOICES",
    "GuestConnection",
    "Route",
    "guest_connection_option",
    "guest_vars",
    "hypervisor_route",
    "jump_args",
    "wants_jump",
]

JUMP_CHOICES = ("auto", "always", "never")
#: the variables this module sets on a guest, in the order they are set
CONNECTION_VARS = ("ansible_host", "ansible_user", "ansible_ssh_private_key_file", "ansible_ssh_common_args")
#: the keys of the guest_connection option
OPTION_KEYS = ("user", "private_key_file", "jump", "jump_user", "jump_private_key_file")
#: the variables that set the same as each of CONNECTION_VARS (one the user set wins)
ALIASES = {
    "ansible_host": ("ansible_host", "ansible_ssh_host"),
    "ansible_user": ("ansible_user", "ansible_ssh_user"),
    "ansible_ssh_private_key_file": ("ansible_ssh_private_key_file", "ansible_private_key_file"),
    "ansible_ssh_common_args": ("ansible_ssh_common_args",),
}
#: nettypes whose guests sit behind their hypervisor (a libvirt NAT or routed network)
BEHIND_HYPERVISOR = ("nat", "route")
LOCAL_CONNECTIONS = ("local", "ansible.builtin.local")

#: a login name (POSIX portable user names, as useradd takes them)
_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
#: a DNS name or inventory name an ssh target may be: dot-separated labels of letters, digits,
#: '_' and '-', each starting with a letter or digit (never an option: no leading '-')
_HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9][A-Za-z0-9_-]*)*\.?$")


@dataclass(frozen=True)
class GuestConnection:
    """The validated ``guest_connection`` option."""

    user: str | None = None
    private_key_file: str | None = None
    jump: str = "auto"
    jump_user: str | None = None
    jump_private_key_file: str | None = None


@dataclass(frozen=True)
class Route:
    """How the controller reaches one hypervisor: ``local`` (its connection is local, or its
    address a loopback one), else the ssh target of a jump (``host``, ``user``, ``port``,
    ``key``). ``problem``: why no jump can be made (then guests get none, with a warning)."""

    local: bool
    host: str | None = None
    user: str | None = None
    port: int | None = None
    key: str | None = None
    problem: str | None = None


def _user(value: Any, what: str) -> str:
    text = str(value)
    if not _USER_RE.match(text):
        raise ValueError(f"{what}: {text[:40]!r} is not a user name (letters, digits, '_', '.', '-')")
    return text


def _key_path(value: Any, what: str, base_dir: str) -> str:
    text = str(value)
    if not text or "\0" in text or "\n" in text:
        raise ValueError(f"{what}: not a file name")
    return os.path.join(base_dir, os.path.expanduser(text))


def guest_connection_option(value: Any, base_dir: str) -> GuestConnection:
    """The ``guest_connection`` option (a mapping of OPTION_KEYS, or None); ValueError naming
    ``guest_connection.<key>``. Key files relative to ``base_dir`` (the configuration's
    directory); ``~`` is the controller user's home."""
    if value is None:
        return GuestConnection()
    if not isinstance(value, dict):
        raise ValueError(f"option guest_connection must be a mapping of {', '.join(OPTION_KEYS)}")
    unknown = sorted(str(key) for key in value if key not in OPTION_KEYS)
    if unknown:
        raise ValueError(f"option guest_connection: unknown key {', '.join(unknown)} (known: {', '.join(OPTION_KEYS)})")
    settings: dict[str, Any] = {}
    for key in ("user", "jump_user"):
        if value.get(key) is not None:
            settings[key] = _user(value[key], f"option guest_connection.{key}")
    for key in ("private_key_file", "jump_private_key_file"):
        if value.get(key) is not None:
            settings[key] = _key_path(value[key], f"option guest_connection.{key}", base_dir)
    jump = value.get("jump", "auto")
    jump = "auto" if jump is None else str(jump)
    if jump not in JUMP_CHOICES:
        raise ValueError(f"option guest_connection.jump: {jump[:40]!r} is not one of {', '.join(JUMP_CHOICES)}")
    return GuestConnection(jump=jump, **settings)


def _plain(value: Any) -> bool:
    """Whether a variable can be used as it is at inventory time (not a template)."""
    return not (isinstance(value, str) and ("{{" in value or "{%" in value))


def _first(variables: dict[str, Any], *names: str) -> tuple[str | None, Any]:
    for name in names:
        if variables.get(name) is not None:
            return name, variables[name]
    return None, None


def _address(text: str) -> str:
    """An ssh target: an IP address (IPv6 in brackets for ``host:port``) or a DNS name."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        if _HOST_RE.match(text):
            return text
        raise ValueError(f"{text[:40]!r} is neither an IP address nor a host name") from None
    if getattr(addr, "scope_id", None):
        raise ValueError(f"{text[:40]!r} has a zone index; give the address without '%'")
    return f"[{addr}]" if addr.version == 6 else str(addr)


def _is_loopback(text: str) -> bool:
    if text.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def hypervisor_route(name: str, variables: dict[str, Any], settings: GuestConnection) -> Route:
    """How to reach hypervisor ``name`` whose variables (as the user set them) are
    ``variables``: local (``ansible_connection: local`` or a loopback address), else the jump
    target ``[user@]ansible_host[:ansible_port]`` (``ansible_host`` defaults to ``name``, the
    user to ``guest_connection.jump_user``, then ``ansible_user``; the key to
    ``guest_connection.jump_private_key_file``, then ``ansible_ssh_private_key_file``)."""
    var, connection = _first(variables, "ansible_connection")
    if connection is not None and not _plain(connection):
        return Route(local=False, problem=f"its {var} is a template, unknown at inventory time")
    if connection in LOCAL_CONNECTIONS:
        return Route(local=True)
    var, host = _first(variables, "ansible_host", "ansible_ssh_host")
    if host is None:
        var, host = "inventory name", name
    if not _plain(host):
        return Route(local=False, problem=f"its {var} is a template, unknown at inventory time")
    host = str(host)
    if _is_loopback(host):
        return Route(local=True)
    try:
        target = _address(host)
    except ValueError as exc:
        return Route(local=False, problem=f"its {var} {exc}")
    user = settings.jump_user
    if user is None:
        var, user = _first(variables, "ansible_user", "ansible_ssh_user", "ansible_remote_user")
        if user is not None and not _plain(user):
            return Route(local=False, problem=f"its {var} is a template; set guest_connection.jump_user")
        if user is not None:
            try:
                user = _user(user, f"its {var}")
            except ValueError as exc:
                return Route(local=False, problem=str(exc))
    var, port = _first(variables, "ansible_port", "ansible_ssh_port")
    if port is not None:
        if not _plain(port):
            return Route(local=False, problem=f"its {var} is a template, unknown at inventory time")
        try:
            port = int(str(port))
        except ValueError:
            port = 0
        if not 0 < port < 65536:
            return Route(local=False, problem=f"its {var} is not a port number")
    key = settings.jump_private_key_file
    if key is None:
        var, key = _first(variables, "ansible_ssh_private_key_file", "ansible_private_key_file")
        if key is not None and not _plain(key):
            return Route(local=False, problem=f"its {var} is a template; set guest_connection.jump_private_key_file")
        if key is not None:
            key = os.path.expanduser(str(key))
    return Route(local=False, host=target, user=user, port=port, key=key)


def _contact_vif(domain: dict[str, Any]) -> dict[str, Any] | None:
    """The vif a playbook reaches the guest on: the first with an address, else the first."""
    vifs = [vif for vif in domain.get("vifs") or [] if isinstance(vif, dict)]
    return next((vif for vif in vifs if vif.get("ip")), vifs[0] if vifs else None)


def _guest_address(text: Any) -> str:
    addr = ipaddress.ip_address(str(text))  # validated by the model; again, as ssh gets it
    if getattr(addr, "scope_id", None):
        raise ValueError(f"guest address {str(text)[:40]!r} has a zone index")
    return str(addr)


def jump_args(route: Route) -> str:
    """``ansible_ssh_common_args`` for a jump through ``route``: ``-o ProxyJump=...`` (the
    hop uses the ssh agent and ssh configuration), or with a key ``-o ProxyCommand=ssh -i key
    ... -W [%h]:%p host``. Every part is quoted for Ansible's shlex split (and, inside
    ProxyCommand, for the shell that runs it, with ssh's '%' tokens escaped)."""
    if route.host is None:
        raise ValueError("a jump needs the hypervisor's host")
    if route.key is None:
        target = (f"{route.user}@" if route.user else "") + route.host + (f":{route.port}" if route.port else "")
        return "-o " + shlex.quote(f"ProxyJump={target}")
    command = ["ssh", "-i", route.key.replace("%", "%%")]
    if route.user:
        command += ["-l", route.user]
    if route.port:
        command += ["-p", str(route.port)]
    command += ["-W", "[%h]:%p", route.host.strip("[]")]
    return "-o " + shlex.quote("ProxyCommand=" + " ".join(shlex.quote(part) for part in command))


def wants_jump(domain: dict[str, Any], settings: GuestConnection) -> bool:
    """Whether the guest is reached through its hypervisor when that one is remote: ``jump``
    ``always``, or ``auto`` and its contact vif is on a NAT or routed network."""
    if settings.jump == "never":
        return False
    vif = _contact_vif(domain)
    return settings.jump == "always" or (vif is not None and vif.get("nettype") in BEHIND_HYPERVISOR)


def guest_vars(domain: dict[str, Any], route: Route | None, settings: GuestConnection) -> dict[str, str]:
    """The connection variables of a guest (``xen_domain``) on a hypervisor reached by
    ``route`` (None: unknown, no jump): ``ansible_host`` from the first vif with an address,
    ``ansible_user`` and ``ansible_ssh_private_key_file`` from the settings, and
    ``ansible_ssh_common_args`` with a jump through the hypervisor when it is remote and
    ``jump`` is ``always``, or ``auto`` and that vif is on a NAT or routed network."""
    result: dict[str, str] = {}
    vif = _contact_vif(domain)
    if vif is not None and vif.get("ip"):
        result["ansible_host"] = _guest_address(vif["ip"])
    if settings.user is not None:
        result["ansible_user"] = settings.user
    if settings.private_key_file is not None:
        result["ansible_ssh_private_key_file"] = settings.private_key_file
    if route is not None and not route.local and route.host is not None and wants_jump(domain, settings):
        result["ansible_ssh_common_args"] = jump_args(route)
    return result
