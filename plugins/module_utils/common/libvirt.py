# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The one place that imports libvirt: connections and error translation."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import LibvirtFailure, NotFound
from ansible_collections.lcfg.xen.plugins.module_utils.common.imports import optional_import

libvirt = optional_import("libvirt")[0]
HAS_LIBVIRT = libvirt is not None

__all__ = [
    "HAS_LIBVIRT",
    "libvirt",
    "open_connection",
    "libvirt_errors",
    "missing_is_none",
    "driver_name",
]

F = TypeVar("F", bound=Callable[..., Any])

# Error codes that mean "the object is not there".
_MISSING_CODES = (
    "VIR_ERR_NO_DOMAIN",
    "VIR_ERR_NO_NETWORK",
    "VIR_ERR_NO_STORAGE_POOL",
    "VIR_ERR_NO_STORAGE_VOL",
)


def _silence(_ctx: object, _err: object) -> None:
    """libvirt prints every error on stderr by default; we report them ourselves."""


def open_connection(uri: str, retries: int = 5, delay: float = 0.5):
    """Open ``uri`` read-write; retry briefly so a libvirtd that is restarting is waited for."""
    if not HAS_LIBVIRT:
        raise LibvirtFailure(
            "the libvirt Python binding is missing on the managed host: install libvirt-python "
            "(pip) or python3-libvirt (apt), or run the lcfg.xen.hypervisor role"
        )
    libvirt.registerErrorHandler(_silence, None)
    last: Exception | None = None
    for attempt in range(retries):
        try:
            return libvirt.open(uri)
        except libvirt.libvirtError as exc:
            last = exc
            if attempt + 1 < retries:
                time.sleep(delay)
    raise LibvirtFailure(f"cannot connect to libvirt at {uri!r}: {last}. Is libvirtd running there?")


def is_missing(exc: Exception) -> bool:
    if not HAS_LIBVIRT or not isinstance(exc, libvirt.libvirtError):
        return False
    code = exc.get_error_code()
    return any(getattr(libvirt, name, None) == code for name in _MISSING_CODES)


def libvirt_errors(action: str) -> Callable[[F], F]:
    """Turn a libvirtError inside the wrapped call into LibvirtFailure naming ``action``.

    ``action`` may use ``{name}``-style fields filled from the call's keyword arguments.
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                if HAS_LIBVIRT and isinstance(exc, libvirt.libvirtError):
                    what = action.format(**kwargs) if kwargs else action
                    if is_missing(exc):
                        raise NotFound(f"{what}: {exc.get_error_message()}") from exc
                    raise LibvirtFailure(f"{what}: {exc.get_error_message()}") from exc
                raise

        return wrapper  # type: ignore[return-value]

    return decorate


def missing_is_none(func: F) -> F:
    """Return None instead of raising when libvirt says the object does not exist."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            if is_missing(exc):
                return None
            raise

    return wrapper  # type: ignore[return-value]


def driver_name(conn) -> str:
    """'xen', 'qemu', 'lxc', 'test', ... from the connection's URI scheme."""
    uri = conn.getURI()
    scheme = uri.split(":", 1)[0]
    return scheme.split("+", 1)[0].lower()
