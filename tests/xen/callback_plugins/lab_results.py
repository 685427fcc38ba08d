# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback: write every task result of a playbook run to a JSON file.

Enabled by tests/xen/conftest.py (ANSIBLE_CALLBACKS_ENABLED=lab_results); the file is
named by the environment variable LCFG_XEN_LAB_RESULTS. Each entry: task name, host,
status (ok, changed, failed, skipped, unreachable) and the module's result dict.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: lab_results
type: aggregate
short_description: write task results to a JSON file (lcfg.xen Xen lab tests)
description: Test helper of tests/xen; not part of the collection.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "lab_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._results = []

    def _record(self, result, status):
        data = dict(result._result)
        if status == "ok" and data.get("changed"):
            status = "changed"
        if status == "failed":
            # newer ansible-core leaves the key out of an ignored failure's result
            data["failed"] = True
        self._results.append(
            {"task": result._task.get_name(), "host": result._host.get_name(), "status": status, "result": data}
        )

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("LCFG_XEN_LAB_RESULTS")
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(self._results, handle, default=str)
