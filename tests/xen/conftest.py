"""The Xen lab for pytest: one session-scoped boot of Xen + dom0 for every test in tests/xen.

Tests marked ``xen`` run only when asked for: ``LCFG_XEN_LAB=1`` (set by tests/xen/run.sh),
``-m xen``, or ``tests/xen`` named on the pytest command line (scripts/test.sh does). A plain
``pytest`` (testpaths = tests) skips them and never boots the lab.

The ``xen_lab`` fixture builds the lab (cached, tests/xen/lab/build.sh), boots it
(tests/xen/lab/lab.py) and always stops it. Its ``play(tasks)`` runs one play on dom0 with
ansible-playbook over SSH (the collection from this checkout, Debian's /usr/bin/python3 in
dom0) and returns every task's result, read by the test-only callback in
tests/xen/callback_plugins. Stage timings go to tests/output/xen-lab-timings.json and the
end of the pytest report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(HERE / "lab")]

from lab import Lab, build  # noqa: E402  (tests/xen/lab/lab.py)
from xenlab import URI  # noqa: E402

OUTPUT = ROOT / "tests" / "output"
TIMINGS: dict[str, float] = {}


def _asked_for(config) -> bool:
    """LCFG_XEN_LAB=1, ``-m xen``, or tests/xen (or a file in it) named on the command line."""
    if os.environ.get("LCFG_XEN_LAB") == "1" or "xen" in (config.option.markexpr or ""):
        return True
    for arg in config.invocation_params.args:
        path = Path(config.invocation_params.dir, str(arg).split("::", maxsplit=1)[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_collection_modifyitems(config, items):
    if _asked_for(config):
        return
    skip = pytest.mark.skip(reason="Xen lab: run `make test-xen` or `pytest tests/xen`")
    for item in items:
        if item.get_closest_marker("xen"):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.section("Xen lab stage timings (seconds)")
        for stage, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{stage:>28}: {seconds:7.1f}")


class PlayResult:
    """The task results of one ansible-playbook run, by task name."""

    def __init__(self, proc: subprocess.CompletedProcess, results: list[dict]):
        self.proc = proc
        self.rc = proc.returncode
        self.results = results

    def __getitem__(self, task: str) -> dict:
        for entry in self.results:
            if entry["task"] == task:
                return entry["result"]
        raise KeyError(f"task {task!r} did not run; recap:\n{self.output}")

    def status(self, task: str) -> str:
        for entry in self.results:
            if entry["task"] == task:
                return entry["status"]
        raise KeyError(f"task {task!r} did not run; recap:\n{self.output}")

    @property
    def output(self) -> str:
        return (self.proc.stdout[-6000:] + "\n" + self.proc.stderr[-3000:]).strip()


class XenLab:
    """What a test sees: ssh into dom0 and ansible plays on dom0."""

    def __init__(self, lab: Lab, workdir: Path):
        self.lab = lab
        self.workdir = workdir
        self.inventory = lab.write_inventory(workdir / "inventory.json")
        self._count = 0

    def ssh(self, command, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        return self.lab.ssh(command, check=check, timeout=timeout)

    def play(
        self,
        tasks: list[dict],
        *,
        roles: list | None = None,
        check: bool = False,
        diff: bool = False,
        gather_facts: bool = False,
        timeout: float = 1800,
    ) -> PlayResult:
        self._count += 1
        play: dict = {"name": "xen lab", "hosts": "dom0", "gather_facts": gather_facts, "tasks": tasks}
        if roles:
            play["roles"] = roles
        path = self.workdir / f"play{self._count:02d}.json"
        results_file = self.workdir / f"play{self._count:02d}.results.json"
        # YAML is a superset of JSON: the playbook is written with json.
        path.write_text(json.dumps([play], indent=1))
        env = dict(os.environ)
        env.update(
            {
                "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
                "ANSIBLE_CALLBACK_PLUGINS": str(HERE / "callback_plugins"),
                "ANSIBLE_CALLBACKS_ENABLED": "lab_results",
                "LCFG_XEN_LAB_RESULTS": str(results_file),
                "ANSIBLE_PIPELINING": "1",
                "ANSIBLE_HOST_KEY_CHECKING": "0",
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_RETRY_FILES_ENABLED": "0",
                "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.workdir / "cp"),
                "ANSIBLE_TIMEOUT": "60",
            }
        )
        cmd = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(self.inventory), str(path)]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        # stdin of its own: ssh can leave an inherited stdin non-blocking, which
        # ansible-playbook refuses to start with.
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            cwd=str(ROOT),
            check=False,
            stdin=subprocess.DEVNULL,
        )
        results = json.loads(results_file.read_text()) if results_file.exists() else []
        return PlayResult(proc, results)

    def module(self, name: str, params: dict, *, check: bool = False, diff: bool = False) -> dict:
        """Run ``lcfg.xen.<name>`` once on dom0; return its result (``failed`` set on failure)."""
        result = self.play([{"name": name, f"lcfg.xen.{name}": params, "ignore_errors": True}], check=check, diff=diff)
        try:
            return result[name]
        except KeyError:
            raise AssertionError(result.output) from None

    # -- read-back helpers in dom0 -----------------------------------------
    def xl_list(self, name: str) -> dict | None:
        """``xl list NAME`` as a dict (id, mem MiB, vcpus, state), or None if not running."""
        proc = self.ssh(["xl", "list", name], check=False)
        if proc.returncode != 0:
            return None
        fields = proc.stdout.strip().splitlines()[-1].split()
        return {
            "name": fields[0],
            "id": int(fields[1]),
            "mem": int(fields[2]),
            "vcpus": int(fields[3]),
            "state": fields[4],
        }

    def xl_vcpus_online(self, name: str) -> int:
        """The guest's VCPUs that ``xl vcpu-list`` shows online (not state ``-p`` or ``---``)."""
        lines = self.ssh(["xl", "vcpu-list", name]).stdout.strip().splitlines()[1:]
        return sum(1 for line in lines if line.split()[4] not in ("-p", "---", "--p"))

    def destroy(self, name: str) -> None:
        """Remove a test guest whatever state it is in (fixture finalizers)."""
        self.ssh(f"virsh -c {URI} destroy {name}; virsh -c {URI} undefine {name}; xl destroy {name}", check=False)


@pytest.fixture(scope="session")
def xen_lab():
    OUTPUT.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="lcfg-xen-lab-"))
    lab_dir, build_seconds = build()
    TIMINGS["build (or cache check)"] = build_seconds
    lab = Lab(str(lab_dir), str(workdir / "state"))
    started = time.monotonic()
    lab.start()
    TIMINGS["boot to ssh+xl+libvirt"] = time.monotonic() - started
    tests_started = time.monotonic()
    try:
        yield XenLab(lab, workdir)
    finally:
        TIMINGS["tests"] = time.monotonic() - tests_started
        keep = OUTPUT / "xen-lab-console.log"
        TIMINGS["shutdown"] = lab.stop()
        try:
            keep.write_text(lab.console_log.read_text(errors="replace"))
        except OSError:
            pass
        (OUTPUT / "xen-lab-timings.json").write_text(json.dumps(TIMINGS, indent=1) + "\n")
