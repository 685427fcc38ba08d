"""requirements-newest.txt (the matrix venv) pins what the other requirements files pin.

Only ansible-core differs: it is the newest release there; meta/runtime.yml's
requires_ansible must admit both tested releases.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)")


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        m = PIN.match(line.strip())
        if m:
            found[m.group(1).lower()] = m.group(2)
    return found


def test_newest_pins_match_the_other_requirements():
    newest = pins(ROOT / "requirements-newest.txt")
    others: dict[str, str] = {}
    for path in sorted(ROOT.glob("requirements*.txt")):
        if path.name != "requirements-newest.txt":
            others.update(pins(path))
    assert "ansible-core" in newest and "ansible-core" in others
    assert newest["ansible-core"] != others["ansible-core"]
    differing = {name: (version, others.get(name)) for name, version in newest.items() if name != "ansible-core"}
    differing = {name: pair for name, pair in differing.items() if pair[0] != pair[1]}
    assert differing == {}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2])


def test_requires_ansible_admits_both_tested_cores():
    spec = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["requires_ansible"]
    bounds = dict(re.match(r"([<>=]+)([\d.]+)", part.strip()).groups() for part in spec.split(","))
    assert set(bounds) == {">=", "<"}
    low, high = _version(bounds[">="]), _version(bounds["<"])
    for path in (ROOT / "requirements-newest.txt", *sorted(ROOT.glob("requirements*.txt"))):
        core = pins(path).get("ansible-core")
        if core:
            assert low <= _version(core) < high, (path.name, core, spec)
