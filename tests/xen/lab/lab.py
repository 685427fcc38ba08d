"""Boot and stop the Xen lab: Xen + a Debian PV dom0 under QEMU.

The lab directory (made by ``build.sh``, cached) holds the hypervisor (``xen``),
the dom0 kernel and initrd, the dom0 disk image and the test SSH key. QEMU runs
the disk image with ``snapshot=on``: the cached image never changes, every boot
starts from the same state. SSH to dom0 is forwarded to a free port on
127.0.0.1.

Command line (also used by ``tests/xen/run.sh``)::

    lab.py start  STATE_DIR   build (cached), boot, wait for ssh, xl and libvirt
    lab.py stop   STATE_DIR   poweroff dom0, wait for QEMU; kill it if it hangs
    lab.py ssh    STATE_DIR -- COMMAND...
    lab.py smoke  STATE_DIR   start, check xl info / virsh -c xen:///system, stop

Environment: ``LCFG_XEN_LAB_ACCEL`` (``tcg``, default; ``kvm`` did not boot Xen
on the machine this was written on, see docs/testing.md), ``LCFG_XEN_LAB_CPU``
(default ``Westmere``: libvirt's libxl driver needs a CPU model it knows, and
``-cpu max`` crashes the PV dom0), ``LCFG_XEN_LAB_BOOT_TIMEOUT`` (seconds,
default 1200).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD = HERE / "build.sh"

# Speed under TCG matters more than side channels in a throw-away lab: without XPTI and the
# other speculation mitigations Xen does not flush TLBs on every PV kernel entry (TLB flushes
# are expensive in QEMU's software MMU). rodata=off skips dom0's boot-time W+X page table walk,
# which took minutes.
XEN_CMDLINE = "dom0_mem=1536M,max:1536M console=com1 noreboot spec-ctrl=no xpti=false pv-l1tf=false"
DOM0_CMDLINE = "root=/dev/vda rw console=hvc0 mitigations=off rodata=off quiet"


def log(message: str) -> None:
    print(f"[xen-lab] {message}", file=sys.stderr, flush=True)


def build() -> tuple[Path, float]:
    """Run build.sh (a no-op when the cache is current); return (lab dir, seconds)."""
    started = time.monotonic()
    proc = subprocess.run(["bash", str(BUILD)], stdout=subprocess.PIPE, text=True, check=True)
    return Path(proc.stdout.strip().splitlines()[-1]), time.monotonic() - started


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Lab:
    lab_dir: str
    state_dir: str
    port: int = 0
    pid: int = 0
    boot_seconds: float = 0.0

    # -- paths -------------------------------------------------------------
    @property
    def key(self) -> Path:
        # A copy in the state directory: a rebuild may replace the lab directory meanwhile.
        return Path(self.state_dir) / "id_ed25519"

    @property
    def console_log(self) -> Path:
        return Path(self.state_dir) / "console.log"

    @property
    def state_file(self) -> Path:
        return Path(self.state_dir) / "lab.json"

    def save(self) -> None:
        self.state_file.write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, state_dir: str | Path) -> Lab:
        return cls(**json.loads((Path(state_dir) / "lab.json").read_text()))

    # -- ssh ---------------------------------------------------------------
    def ssh_options(self) -> list[str]:
        return [
            "-i",
            str(self.key),
            "-p",
            str(self.port),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=60",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ServerAliveCountMax=8",
        ]

    def ssh(
        self, command: str | list[str], check: bool = True, timeout: float = 600, input: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run ``command`` as root in dom0 (a list is quoted for the remote shell)."""
        if not isinstance(command, str):
            command = shlex.join(command)
        for _attempt in range(3):
            proc = subprocess.run(
                ["ssh", *self.ssh_options(), "root@127.0.0.1", command],
                capture_output=True,
                text=True,
                timeout=timeout,
                input="" if input is None else input,  # never the caller's stdin
                check=False,
            )
            # 255: ssh itself failed (a busy dom0 under TCG can miss the banner timeout).
            if proc.returncode != 255 or "Connection" not in proc.stderr:
                break
            time.sleep(10)
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"dom0 command failed (rc={proc.returncode}): {command}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def running(self) -> bool:
        if not self.pid:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        # A zombie child counts as gone.
        try:
            return os.waitpid(self.pid, os.WNOHANG) == (0, 0)
        except ChildProcessError:
            return True

    def console_tail(self, lines: int = 40) -> str:
        try:
            text = self.console_log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- lifecycle ---------------------------------------------------------
    def qemu_command(self) -> list[str]:
        lab = Path(self.lab_dir)
        accel = os.environ.get("LCFG_XEN_LAB_ACCEL", "tcg")
        cpu = os.environ.get("LCFG_XEN_LAB_CPU", "Westmere")
        timing: list[str] = []
        if accel == "tcg":
            # Instruction counting: every clock the guest sees (TSC, HPET, APIC timer) follows
            # the instructions it has executed, so a busy host slows the lab down but cannot
            # skew Xen's timer calibration. Without it, on a loaded host, Xen's timers fired
            # ~50 times late and dom0's `sleep 20` never returned.
            timing = ["-icount", os.environ.get("LCFG_XEN_LAB_ICOUNT", "shift=auto")]
        return [
            "qemu-system-x86_64",
            "-machine",
            "q35",
            "-accel",
            accel,
            "-cpu",
            cpu,
            *timing,
            "-m",
            "3072",
            "-smp",
            "2",
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
            "-serial",
            f"file:{self.console_log}",
            "-kernel",
            str(lab / "xen"),
            "-append",
            XEN_CMDLINE,
            # Multiboot modules: the dom0 kernel (with its command line) and its initrd.
            "-initrd",
            f"{lab / 'vmlinuz'} {DOM0_CMDLINE},{lab / 'initrd.img'}",
            "-drive",
            f"file={lab / 'dom0.img'},if=virtio,format=raw,snapshot=on",
            "-netdev",
            f"user,id=net0,hostfwd=tcp:127.0.0.1:{self.port}-:22",
            "-device",
            "virtio-net-pci,netdev=net0",
        ]

    def start(self, timeout: float | None = None) -> None:
        if timeout is None:
            timeout = float(os.environ.get("LCFG_XEN_LAB_BOOT_TIMEOUT", "1200"))
        Path(self.state_dir).mkdir(parents=True, exist_ok=True)
        self.key.unlink(missing_ok=True)
        shutil.copyfile(Path(self.lab_dir) / "id_ed25519", self.key)
        self.key.chmod(0o600)
        self.port = free_port()
        with open(Path(self.state_dir) / "qemu.log", "w") as qemu_log:
            proc = subprocess.Popen(
                self.qemu_command(),
                stdin=subprocess.DEVNULL,
                stdout=qemu_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = proc.pid
        self.save()
        log(f"QEMU pid {self.pid}, dom0 ssh on 127.0.0.1:{self.port}, console {self.console_log}")
        started = time.monotonic()
        try:
            self._wait(started + timeout)
        except BaseException:
            log("boot failed; console tail:\n" + self.console_tail())
            self.stop()
            raise
        self.boot_seconds = time.monotonic() - started
        self.save()
        log(f"dom0 ready after {self.boot_seconds:.0f} s")

    def _wait(self, deadline: float) -> None:
        # 1. sshd answers; 2. xenstored is up (xl info); 3. libvirtd has its libxl driver.
        checks = [
            ("ssh", "true"),
            ("xl", "xl info >/dev/null"),
            ("libvirt", "virsh -c xen:///system version >/dev/null"),
        ]
        for name, command in checks:
            while True:
                if not self.running():
                    raise RuntimeError("QEMU exited during boot; see " + str(self.console_log))
                if time.monotonic() > deadline:
                    raise TimeoutError(f"lab not ready ({name}) before the boot timeout")
                try:
                    if self.ssh(command, check=False, timeout=60).returncode == 0:
                        break
                except subprocess.TimeoutExpired:
                    pass
                time.sleep(5)

    def stop(self, timeout: float = 180) -> float:
        """Power dom0 off (Xen then powers the machine off); kill QEMU if it hangs."""
        started = time.monotonic()
        if self.running():
            try:
                self.ssh("systemctl --no-block poweroff", check=False, timeout=30)
            except (subprocess.TimeoutExpired, OSError):
                pass
            deadline = started + timeout
            while self.running() and time.monotonic() < deadline:
                # Xen halts (rather than powers off) the machine when dom0 has gone: QEMU
                # keeps running, and is stopped here once Xen says so.
                if "halting machine" in self.console_tail(5):
                    break
                time.sleep(2)
            if self.running():
                if "halting machine" not in self.console_tail(5):
                    log("dom0 did not power off in time; terminating QEMU")
                os.killpg(self.pid, signal.SIGTERM)
                for _attempt in range(20):
                    if not self.running():
                        break
                    time.sleep(1)
                else:
                    os.killpg(self.pid, signal.SIGKILL)
        elapsed = time.monotonic() - started
        self.pid = 0
        if Path(self.state_dir).is_dir():
            self.save()
        return elapsed

    # -- ansible -----------------------------------------------------------
    def write_inventory(self, path: Path) -> Path:
        inventory = {
            "all": {
                "hosts": {
                    "dom0": {
                        "ansible_host": "127.0.0.1",
                        "ansible_port": self.port,
                        "ansible_user": "root",
                        "ansible_ssh_private_key_file": str(self.key),
                        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no "
                        "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
                        "ansible_python_interpreter": "/usr/bin/python3",
                    }
                }
            },
        }
        path.write_text(json.dumps(inventory, indent=1) + "\n")
        return path


def _main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in {"start", "stop", "ssh", "smoke"}:
        print(__doc__, file=sys.stderr)
        return 2
    action, state_dir = argv[0], str(Path(argv[1]).resolve())
    if action == "start":
        lab_dir, seconds = build()
        log(f"build/cache check: {seconds:.0f} s ({lab_dir})")
        Lab(str(lab_dir), state_dir).start()
        return 0
    if action == "stop":
        lab = Lab.load(state_dir)
        log(f"stopped in {lab.stop():.0f} s")
        return 0
    if action == "ssh":
        rest = argv[2:]
        if rest[:1] == ["--"]:
            rest = rest[1:]
        proc = Lab.load(state_dir).ssh(rest, check=False)
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        return proc.returncode
    # smoke
    lab_dir, seconds = build()
    log(f"build/cache check: {seconds:.0f} s ({lab_dir})")
    lab = Lab(str(lab_dir), state_dir)
    lab.start()
    try:
        info = lab.ssh("xl info").stdout
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        log(
            "xl info: xen_version={} nr_cpus={} total_memory={}".format(
                *tuple(fields.get(k, "?").strip() for k in ("xen_version", "nr_cpus", "total_memory"))
            )
        )
        log(
            "virsh: "
            + lab.ssh("virsh -c xen:///system uri && virsh -c xen:///system list --all")
            .stdout.strip()
            .replace("\n", " | ")
        )
        lab.ssh(
            'python3 -c \'import libvirt, lxml; c = libvirt.open("xen:///system"); '
            "print(c.getType(), c.getLibVersion())'"
        )
    finally:
        log(f"stopped in {lab.stop():.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
