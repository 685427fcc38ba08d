# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Exception types shared by every module and plugin of lcfg.xen."""

from __future__ import annotations

__all__ = ["XenError", "ValidationError", "LibvirtFailure", "NotFound", "Conflict"]


class XenError(Exception):
    """Base error. ``result`` holds extra keys for ``fail_json``."""

    def __init__(self, message: str, **result: object) -> None:
        super().__init__(message)
        self.message = message
        self.result = result


class ValidationError(XenError):
    """A parameter or profile value is invalid; nothing has been changed."""

    def __init__(self, parameter: str, message: str, **result: object) -> None:
        super().__init__(f"{parameter}: {message}", **result)
        self.parameter = parameter
        self.problem = message  # without the parameter, for callers that name it their own way


class LibvirtFailure(XenError):
    """A libvirt call failed."""


class NotFound(XenError):
    """The named object does not exist."""


class Conflict(XenError):
    """The request conflicts with what exists and changing it needs an explicit option."""
