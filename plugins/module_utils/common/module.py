# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The end of every module's main(), written once.

``AnsibleModule``: ansible-core's AnsibleModule whose own argument parsing cannot end in a
traceback: values its type checks and logging do not handle (``Infinity`` for an int, a huge
integer for a float, a lone surrogate, a NUL character, a number where a dict with suboptions belongs) end in
a failure naming the parameter. Modules import it instead of ansible-core's.
``require_lxml(module)``: fail with ``missing_required_lib("lxml")`` when lxml does not import.
``with_libvirt(uri, func)``: open a libvirt connection, return ``func(conn)``, close it.
``module_lock(module, local_commands=False)``: the per-hypervisor lock (``_lock``) of
``module.params["uri"]`` for a changing call; nothing in check mode (it changes nothing).
``run_module(module, func, prefix="", lock=False, local_commands=False)``: call ``func()``
(inside ``module_lock(module, local_commands)`` when ``lock``; the result then has
``lock_waited``); a XenError becomes ``fail_json`` (message prefixed with ``prefix``, the
error's result fields kept), else the result goes to ``exit_json``. On both paths the result
is cleaned the same way (``common.result``): its ``warnings`` and those of each ``results[]``
entry become module warnings, the top-level ``diff`` is dropped unless diff mode is on, and
the entries' ``diff`` is always dropped (the top-level ``diff``, keyed by object name, is the
one diff of a multi-object module).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from ansible.module_utils import basic
from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import XenError
from ansible_collections.lcfg.xen.plugins.module_utils.common.imports import optional_import
from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import open_connection
from ansible_collections.lcfg.xen.plugins.module_utils.common.lock import LOCK_TIMEOUT, hypervisor_lock, lock_keys

__all__ = ["AnsibleModule", "misshapen", "require_lxml", "with_libvirt", "module_lock", "run_module"]


def _odd_values(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, problem) of the values ansible-core's parsing cannot take (module docstring)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _odd_values(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _odd_values(item, f"{path}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        yield path, f"{value} is not a finite number"
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1024:
        yield path, "the number is too large"
    elif isinstance(value, str) and any("\ud800" <= char <= "\udfff" for char in value):
        yield path, "contains a lone surrogate (not valid UTF-8)"
    elif isinstance(value, str) and "\x00" in value:
        yield path, "contains a NUL character"
    elif isinstance(value, str) and len(value) > 4000 and value.strip().lstrip("+-").isdigit():
        yield path, "the number has more digits than an integer may have"


def misshapen(params: Any, spec: dict, prefix: str = "") -> Iterator[str]:
    """Paths of ``params`` where ``spec`` wants a dict (with suboptions) and gets another
    type: ansible-core's own validation fails there with a TypeError naming nothing."""
    if not isinstance(params, dict):
        return
    for key, option in spec.items():
        value = params.get(key)
        path = f"{prefix}{key}"
        if value is None or not option.get("options"):
            continue
        items = (
            [(path, value)]
            if option.get("type") == "dict"
            else ([(f"{path}[{index}]", item) for index, item in enumerate(value)] if isinstance(value, list) else [])
        )
        for where, item in items:
            if isinstance(item, dict):
                yield from misshapen(item, option["options"], f"{where}.")
            elif not isinstance(item, str):  # a string may hold key=value pairs
                yield where


def _culprits(params: dict, spec: dict) -> list[str]:
    """The options whose value alone makes ansible-core's validation raise."""
    out = []
    for key, value in params.items() if isinstance(params, dict) else ():
        if key in spec:
            try:
                ArgumentSpecValidator({key: spec[key]}).validate({key: value})
            except Exception:  # pylint: disable=broad-except
                out.append(key)
    return out


class AnsibleModule(basic.AnsibleModule):  # pylint: disable=too-few-public-methods
    """See the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            raw = basic._load_params()  # pylint: disable=protected-access
        except Exception:  # pylint: disable=broad-except
            raw = {}  # ansible-core reports it
        # A lone surrogate can be neither logged nor returned in a result, and a NUL cannot
        # be logged (ansible-core 2.21 fails naming syslog, not the parameter): refuse them first.
        for path, problem in _odd_values(raw, ""):
            if "surrogate" in problem or "NUL" in problem:
                _fail_early(f"{path}: {problem}")
        try:
            super().__init__(*args, **kwargs)
        except (ValueError, TypeError, OverflowError, UnicodeError, RecursionError) as exc:
            spec = kwargs.get("argument_spec") or {}
            names = (
                [f"{path}: {problem}" for path, problem in _odd_values(raw, "")]
                or [f"{path}: must be a dict" for path in misshapen(raw, spec)]
                or [
                    f"{key}: a value the module cannot take ({type(exc).__name__}: {str(exc)[:200]})"
                    for key in _culprits(raw, spec)
                ]
            )
            _fail_early(names[0] if names else f"invalid module arguments ({type(exc).__name__}: {str(exc)[:200]})")


def _fail_early(msg: str) -> None:
    """fail_json without a usable module object (its own parsing broke): the same JSON."""
    print(json.dumps({"failed": True, "msg": msg}))  # pylint: disable=ansible-bad-function
    sys.exit(1)  # pylint: disable=ansible-bad-function


def require_lxml(module: Any) -> None:
    """Fail the module, naming the library, when lxml is missing on the managed host."""
    etree, error = optional_import("lxml.etree")
    if etree is None:
        module.fail_json(msg=missing_required_lib("lxml"), exception=str(error))


def with_libvirt(uri: str, func: Callable[[Any], Any]) -> Any:
    """Open a connection to ``uri``, return ``func(conn)`` and close the connection."""
    conn = open_connection(uri)
    try:
        return func(conn)
    finally:
        conn.close()


def module_lock(module: Any, local_commands: bool = False) -> Any:
    """The lock a changing call of ``module`` holds (see the module docstring)."""
    if module.check_mode:
        return contextlib.nullcontext({"waited": 0.0})
    params = module.params
    name = getattr(module, "_name", None) or ""
    if not name or name.endswith(".py"):  # not run by Ansible: it names the task's module
        main = getattr(sys.modules.get("__main__"), "__file__", None) or "module"
        name = "lcfg.xen." + os.path.splitext(os.path.basename(main))[0]
    return hypervisor_lock(lock_keys(params.get("uri"), local_commands), name, params.get("lock_timeout", LOCK_TIMEOUT))


def _locked(module: Any, func: Callable[[], dict], local_commands: bool = False) -> dict:
    with module_lock(module, local_commands) as lock:
        result = func()
    if not module.check_mode:
        result["lock_waited"] = lock["waited"]
    return result


def _cleaned(module: Any, result: dict) -> dict:
    """``result`` as the module returns it (see the module docstring); warnings are issued."""
    result = dict(result)
    for warning in result.pop("warnings", None) or []:
        module.warn(warning)
    if not module._diff:  # pylint: disable=protected-access
        result.pop("diff", None)
    if isinstance(result.get("results"), list):
        entries = []
        for entry in result["results"]:
            entry = dict(entry)
            for warning in entry.pop("warnings", None) or []:
                module.warn(warning)
            entry.pop("diff", None)
            entries.append(entry)
        result["results"] = entries
    return result


def run_module(
    module: Any, func: Callable[[], dict], prefix: str = "", lock: bool = False, local_commands: bool = False
) -> None:
    """Run ``func`` and end the module with its result (see the module docstring)."""
    try:
        result = _locked(module, func, local_commands) if lock else func()
    except XenError as exc:
        module.fail_json(msg=f"{prefix}{exc.message}", **_cleaned(module, exc.result))
    module.exit_json(**_cleaned(module, result))
