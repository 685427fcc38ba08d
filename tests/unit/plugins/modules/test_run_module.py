# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""run_module cleans a result the same way on success and on failure (common/result.py)."""

from __future__ import annotations

import pytest

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import XenError
from ansible_collections.lcfg.xen.plugins.module_utils.common.module import run_module
from ansible_collections.lcfg.xen.plugins.module_utils.common.result import list_result, object_result


class Ended(Exception):
    pass


class FakeModule:
    def __init__(self, diff: bool):
        self._diff = diff
        self.check_mode = True
        self.params: dict = {}
        self.warnings: list[str] = []
        self.ended: dict = {}

    def warn(self, warning: str) -> None:
        self.warnings.append(warning)

    def exit_json(self, **result) -> None:
        self.ended = result
        raise Ended

    def fail_json(self, **result) -> None:
        self.ended = dict(result, failed=True)
        raise Ended


def multi() -> dict:
    entries = [
        object_result(name, ["define"], warnings=[f"{name} warned"], diff={"before": {}, "after": {}})
        for name in ("g1", "g2")
    ]
    return list_result(entries, diff={"before": {}, "after": {}}, warnings=["top warned"])


@pytest.mark.parametrize("diff", [False, True])
@pytest.mark.parametrize("fail", [False, True])
def test_warnings_and_diff_are_cleaned_on_both_paths(diff, fail):
    module = FakeModule(diff)

    def func() -> dict:
        if fail:
            raise XenError("broken", **multi())
        return multi()

    with pytest.raises(Ended):
        run_module(module, func, lock=True, local_commands=True)
    result = module.ended
    assert result.get("failed", False) is fail
    assert sorted(module.warnings) == ["g1 warned", "g2 warned", "top warned"]
    assert ("diff" in result) is diff
    assert "warnings" not in result
    assert all("diff" not in e and "warnings" not in e for e in result["results"])
    assert [e["name"] for e in result["results"]] == ["g1", "g2"]
    assert "lock_waited" not in result  # check mode takes no lock


def test_the_lock_gets_local_commands_and_lock_waited_is_returned(monkeypatch):
    import contextlib

    from ansible_collections.lcfg.xen.plugins.module_utils.common import module as module_utils

    seen = []

    def fake_lock(module, local_commands=False):
        seen.append(local_commands)
        return contextlib.nullcontext({"waited": 1.5})

    monkeypatch.setattr(module_utils, "module_lock", fake_lock)
    module = FakeModule(False)
    module.check_mode = False
    with pytest.raises(Ended):
        run_module(module, multi, lock=True, local_commands=True)
    assert seen == [True] and module.ended["lock_waited"] == 1.5
