"""Shared test helpers for lcfg.xen (imported as ``support``; tests/conftest.py adds fixtures).

``run_module`` executes a module's real entry point in a subprocess (the way
Ansible runs it on a managed host: an args file with ANSIBLE_MODULE_ARGS) and
returns its JSON result. ``run_playbook`` runs ansible-playbook with this
checkout on the collections path.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / ".collections"
# The example profiles the tests read: project data, copied into the repository.
PROFILES = ROOT / "tests" / "fixtures" / "profiles"

if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))


class SharedConnection:
    """A libvirt connection with close() left to the fixture that opened it (libvirt's test
    driver keeps its state per connection, so the modules run in-process share one)."""

    def __init__(self, conn):
        self._conn = conn

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def close(self):
        return 0


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(COLLECTIONS), env.get("PYTHONPATH")]))
    env["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS)
    env.setdefault("ANSIBLE_NOCOLOR", "1")
    env.setdefault("ANSIBLE_PYTHON_INTERPRETER", sys.executable)
    env.setdefault("ANSIBLE_LOCALHOST_WARNING", "false")
    env.setdefault("ANSIBLE_INVENTORY_UNPARSED_WARNING", "false")
    return env


def run_module(name: str, params: dict, check: bool = False, diff: bool = False, timeout: float = 600) -> dict:
    """Run ``lcfg.xen.<name>`` with ``params``; return the parsed result (with ``rc``)."""
    args = dict(params)
    args["_ansible_check_mode"] = check
    args["_ansible_diff"] = diff
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
        args_file = handle.name
    try:
        proc = subprocess.run(
            [sys.executable, "-m", f"ansible_collections.lcfg.xen.plugins.modules.{name}", args_file],
            capture_output=True,
            text=True,
            env=ansible_env(),
            timeout=timeout,
            check=False,
        )
    finally:
        os.unlink(args_file)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(
            f"module {name} printed no JSON (rc={proc.returncode}):\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
        ) from None
    result["rc"] = proc.returncode
    return result


def run_playbook(
    playbook: str | Path,
    *args: str,
    inventory: str | Path | None = None,
    extra_vars: dict | None = None,
    timeout: float = 1800,
) -> subprocess.CompletedProcess:
    cmd = [str(Path(sys.executable).with_name("ansible-playbook")), str(playbook)]
    if inventory is not None:
        cmd += ["-i", str(inventory)]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    cmd += list(args)
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env=ansible_env(),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
        cwd=str(ROOT),
    )


def untrusted(value):
    """Unwrap ``{"__ansible_unsafe": s}``: how ``ansible-inventory --list`` marks profile strings."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: untrusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [untrusted(v) for v in value]
    return value


def run_inventory(config: str | Path) -> subprocess.CompletedProcess:
    """``ansible-inventory -i config --list`` with this checkout (not checked)."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("ansible-inventory")), "-i", str(config), "--list"],
        capture_output=True,
        text=True,
        env=ansible_env(),
        timeout=300,
        check=False,
        cwd=str(ROOT),
    )


def inventory_list(config: str | Path) -> dict:
    """``ansible-inventory -i config --list`` with this checkout, as plain data."""
    proc = run_inventory(config)
    assert proc.returncode == 0, proc.stderr
    return untrusted(json.loads(proc.stdout))


def tree_snapshot(directory: str | Path) -> dict:
    """{relative path: (mode, uid, gid, content or None)} of everything under ``directory``
    (links not followed): what an attack test compares before and after."""
    out = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs + files + [""]:
            path = os.path.join(root, name) if name else root
            info = os.lstat(path)
            content = Path(path).read_bytes() if os.path.isfile(path) and not os.path.islink(path) else None
            out[os.path.relpath(path, directory)] = (info.st_mode, info.st_uid, info.st_gid, content)
    return out


def libvirt_domains(uri: str) -> dict:
    """{name: persistent definition XML} of every domain on ``uri``: what an attack test
    compares before and after."""
    import libvirt  # noqa: PLC0415 - only the libvirt tests need it

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open(uri)
    try:
        return {dom.name(): dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) for dom in conn.listAllDomains(0)}
    finally:
        conn.close()


def four_steps(module: str, params: dict, uri: str | None = "qemu:///system") -> dict:
    """Run ``module`` check -> apply -> check -> apply on ``uri`` (None: a module without one);
    each check predicts its run (changed, diff, actions) and the second pair changes nothing.
    Returns the first apply."""
    params = dict(params, uri=uri) if uri else dict(params)
    results = [run_module(module, params, check=check, diff=True) for check in (True, False, True, False)]
    for result in results:
        assert result["rc"] == 0, result.get("msg")
    first_check, first, second_check, second = results
    for check, real in ((first_check, first), (second_check, second)):
        assert check["changed"] == real["changed"]
        assert check["diff"] == real["diff"]
        assert check.get("actions") == real.get("actions")
    assert second_check["changed"] is False and second["changed"] is False
    return first


def example_site_copy(target: Path, renames, uuid_prefix: str, standin_prefix: str, source: Path = ROOT) -> Path:
    """A renamed copy (``renamed_copy``) of the example site of ``source`` (the checkout, or an
    installed collection) under ``target``: inventory/ and the profiles and headers beside it
    (lcfg/, not the seed's), the bridges' stand-in ports named with ``standin_prefix``.
    Returns the copy's inventory config."""
    renamed_copy(source / "inventory", target / "inventory", renames, uuid_prefix)
    renamed_copy(source / "lcfg", target / "lcfg", renames, uuid_prefix, keep=lambda rel: rel.parts[0] != "seed")
    with open(target / "inventory" / "group_vars" / "xen_hypervisors.yml", "a", encoding="utf-8") as group_vars:
        group_vars.write(f"network_standin_prefix: {standin_prefix}\n")
    return target / "inventory" / "site.lcfg.yml"


def remove_named(objects, prefix: str) -> None:
    """Destroy and undefine the libvirt domains or networks of ``objects`` whose name
    starts with ``prefix``."""
    for obj in objects:
        if obj.name().startswith(prefix):
            if obj.isActive():
                obj.destroy()
            if obj.isPersistent():
                if _has_snapshots(obj):
                    obj.undefineFlags(2)  # VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA: a plain undefine refuses
                else:
                    obj.undefine()


def _has_snapshots(obj) -> bool:
    """Whether a domain has snapshots (False for networks, and on drivers without snapshots: LXC)."""
    import libvirt  # noqa: PLC0415 - only the libvirt tests need it

    try:
        return bool(getattr(obj, "snapshotNum", None) and obj.snapshotNum(0))
    except libvirt.libvirtError:
        return False


def _remove_from(uri: str, prefix: str, listing: str) -> None:
    import libvirt  # noqa: PLC0415 - only the libvirt tests need it

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open(uri)
    try:
        remove_named(getattr(conn, listing)(0), prefix)
    finally:
        conn.close()


def remove_domains(uri: str, prefix: str) -> None:
    """Destroy and undefine every domain on ``uri`` whose name starts with ``prefix``."""
    _remove_from(uri, prefix, "listAllDomains")


def remove_networks(uri: str, prefix: str) -> None:
    """Destroy and undefine every libvirt network on ``uri`` whose name starts with ``prefix``."""
    _remove_from(uri, prefix, "listAllNetworks")


def wait_for(predicate: Callable[[], object], timeout: float = 90.0, what: str = "a condition", step: float = 0.5):
    """``predicate()``'s first truthy value, asked every ``step`` seconds for up to ``timeout``
    seconds (and once more at the end); an AssertionError naming ``what`` when none came.

    For state that settles in the guest's own time (a balloon driver, a console line): a
    test that reads it once races the guest.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


@contextmanager
def storage_directory(prefix: str) -> Iterator[Path]:
    """A fresh directory under /var/lib/lcfg-xen (a default storage directory libvirtd can
    reach), mode 0755, named ``prefix`` + random; removed afterwards."""
    os.makedirs("/var/lib/lcfg-xen", exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/lib/lcfg-xen"))
    os.chmod(directory, 0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def trickle_server(body: bytes, slow_headers: bool = False) -> Iterator[str]:
    """A loopback HTTP server answering every GET one byte a second; yields its base URL.

    ``slow_headers``: the status line and headers trickle too (else only the body).
    """

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            head = f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            data = head + body
            try:
                if not slow_headers:
                    self.wfile.write(head)
                    data = body
                for i in range(len(data)):
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    time.sleep(1)
            except OSError:
                pass  # the client gave up: what the tests expect

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


_UUID_RE = re.compile(r"\b[0-9a-fA-F]{8}((?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})\b")


def own_uuids(text: str, tag: str) -> str:
    """Every UUID of ``text`` with its first group replaced by ``tag`` (8 hex digits).

    A test's renamed copy of an example site must not reuse the example's UUIDs: libvirt
    refuses a second domain with the UUID of a user's ``make site`` guest.
    """
    return _UUID_RE.sub(lambda match: tag + match.group(1), text)


def renamed_copy(
    source: Path, target: Path, renames, uuid_tag: str, keep: Callable[[Path], bool] = lambda rel: True
) -> None:
    """Copy the example site ``source`` to ``target`` with names of a test's own.

    Every file's text gets each ``(old, new)`` of ``renames`` and UUIDs of its own
    (``own_uuids``), so the copy's guests, networks and bridges can live next to a user's
    ``make site``. ``keep(relative_path)`` leaves files out.
    """
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if not keep(rel):
            continue
        dest = target / rel
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text()
        for old, new in renames:
            text = text.replace(old, new)
        dest.write_text(own_uuids(text, uuid_tag))


def define_by_hand(uri: str, xml: str) -> None:
    """``virsh define`` ``xml`` on ``uri``: a domain lcfg.xen did not define (no marker)."""
    subprocess.run(["virsh", "-c", uri, "define", "/dev/stdin"], input=xml, capture_output=True, text=True, check=True)
