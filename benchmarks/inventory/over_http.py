"""Benchmark: the lcfg.xen.lcfg inventory plugin reading an LCFG server's XML profiles over HTTP.

A loopback HTTP server (in this process) publishes N XML profiles shaped like an LCFG
server's: every machine has the usual components (a few hundred resources each), one in ten
is a hypervisor with the xen component and 10 guests. Every answer carries an ETag and a
Last-Modified, and the server answers conditional requests with 304; it keeps connections
alive (HTTP/1.1), as Apache httpd serving an LCFG server's profiles does by default. With
``--server apache``, Apache httpd itself serves the profiles as files. Each measurement is a
fresh Python process that runs the plugin's ``parse()`` on the site (what every
``ansible-playbook`` run pays for the inventory; the timer starts once ansible-core's own
inventory plugin base is imported), with ``http_store`` and the jsonfile model cache in a
scratch directory:

  1. first read: empty store and cache (every profile fetched and parsed);
  2. unchanged re-read: every profile answers 304, the model comes from the cache;
  3. re-read after one profile changed (its value is checked in the result).

Medians of --runs repetitions (each repetition starts from an empty store); peak resident
memory of the measuring process. Targets (issue 14): (2) <= 0.1 x (1), (3) <= 0.15 x (1).

    .venv/bin/python benchmarks/inventory/over_http.py              # 2,000 profiles
    .venv/bin/python benchmarks/inventory/over_http.py --hosts 100  # smoke run
    .venv/bin/python benchmarks/inventory/over_http.py --server apache  # needs apt-get install apache2
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (benchmarks/inventory/run.py: the measuring environment)

ROOT = run.ROOT
COLLECTIONS = run.COLLECTIONS
OUT = ROOT / "benchmarks" / "output" / "inventory-http"
APACHE_OUT = ROOT / "benchmarks" / "output" / "inventory-http-apache"  # docroot, configuration, logs

#: the usual components of an LCFG machine and how many resources each has (a few hundred in all)
COMPONENTS = {
    "auth": 40,
    "network": 45,
    "inv": 15,
    "boot": 25,
    "fstab": 30,
    "openssh": 35,
    "syslog": 20,
    "ntp": 10,
    "kerberos": 25,
    "hardware": 30,
    "sysinfo": 20,
    "updaterpms": 40,
}


def profile_xml(index: int, hypervisor: bool, guests: int, generation: int = 0) -> bytes:
    node = f"m{index:05d}"
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<profile xmlns:cfg="http://www.lcfg.org/namespace/profile-1.2">',
        "<lcfg><components>",
        f"<profile><node>{node}</node><domain>example.org</domain>"
        f"<components>{' '.join([*COMPONENTS, *(['xen'] if hypervisor else [])])}</components>"
        f"<release>lcfg-bench</release><generation>{generation}</generation></profile>",
    ]
    for comp, count in COMPONENTS.items():
        values = "".join(
            f'<r{n} cfg:derivation="/var/lcfg/conf/server/source/{node}:{n + 10}">{comp}-value-{index}-{n}</r{n}>'
            for n in range(count)
        )
        parts.append(f"<{comp}>{values}</{comp}>")
    if hypervisor:
        tags = [f"g{n}" for n in range(guests)]
        xen = [f"<virtualmachines>{' '.join(tags)}</virtualmachines>"]
        for n, tag in enumerate(tags):
            uid = index * 100 + n
            xen += [
                f"<name_{tag}>{node}-{tag}</name_{tag}>",
                f"<memory_{tag}>{512 + 64 * generation}</memory_{tag}>",
                f"<vcpus_{tag}>{1 + n % 2}</vcpus_{tag}>",
                f"<vifs_{tag}>vif1</vifs_{tag}>",
                f"<mac_{tag}_vif1>00:16:3e:{uid >> 16 & 255:02x}:{uid >> 8 & 255:02x}:{uid & 255:02x}</mac_{tag}_vif1>",
                f"<ip_{tag}_vif1>10.{(uid >> 16) & 255}.{(uid >> 8) & 255}.{uid & 255}</ip_{tag}_vif1>",
            ]
        parts.append(f"<xen>{''.join(xen)}</xen>")
    parts.append("</components></lcfg></profile>\n")
    return "".join(parts).encode()


def published_at(generation: int) -> int:
    """When a profile's ``generation`` was published (seconds since the epoch): long ago, as an
    unchanged site's profiles are (Apache tags a file weak in its first second)."""
    return 1_700_000_000 + generation * 60


class Site:
    """The published profiles: path -> (body, etag, last_modified); counts answers by status."""

    def __init__(self, hosts: int, guests: int, every: int) -> None:
        self.guests = guests
        self.every = every
        self.pages: dict[str, tuple[bytes, str, str]] = {}
        self.counts = {200: 0, 304: 0}
        self.lock = threading.Lock()
        for index in range(hosts):
            self.publish(index, 0)

    def publish(self, index: int, generation: int) -> None:
        body = profile_xml(index, index % self.every == 0, self.guests, generation)
        tag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        stamp = formatdate(published_at(generation), usegmt=True)
        self.pages[f"/m{index:05d}/XML/profile.xml"] = (body, tag, stamp)

    def answers(self) -> dict[int, int]:
        """How many answers of each status (200, 304) the server gave so far."""
        with self.lock:
            return dict(self.counts)

    def serve(self) -> http.server.ThreadingHTTPServer:
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # connections kept alive, as Apache httpd serves LCFG profiles
            # headers and body go out in two writes: without TCP_NODELAY the body waits for
            # the client's delayed ACK (40 ms a profile), which Apache httpd does not do
            disable_nagle_algorithm = True

            def do_GET(self):  # noqa: N802 - http.server API
                page = site.pages.get(self.path)
                if page is None:
                    self.send_error(404)
                    return
                body, tag, stamp = page
                fresh = self.headers.get("If-None-Match") == tag or (
                    "If-None-Match" not in self.headers and self.headers.get("If-Modified-Since") == stamp
                )
                status = 304 if fresh else 200
                with site.lock:
                    site.counts[status] += 1
                self.send_response(status)
                self.send_header("ETag", tag)
                self.send_header("Last-Modified", stamp)
                if status == 200:
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status == 200:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            # socketserver's backlog of 5 drops connections made at once (the plugin opens up to
            # http_concurrency), which wait for a SYN retransmission: 1 s; Apache's is 511
            request_queue_size = 128

        server = Server(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


class ApacheSite(Site):
    """The same profiles as files under ``directory/www``, served by Apache httpd, the web server
    of an LCFG server (``--server apache``; Debian's ``apache2`` package, run as root so that
    its workers run as www-data). Apache makes the ``ETag`` (from the file's size and mtime) and
    ``Last-Modified`` and answers conditional requests itself; answers are counted from its
    access log."""

    MODULES = Path("/usr/lib/apache2/modules")

    def __init__(self, hosts: int, guests: int, every: int, directory: Path) -> None:
        self.directory = directory
        self.docroot = directory / "www"
        self.binary = shutil.which("apache2")
        if self.binary is None or not (self.MODULES / "mod_mpm_event.so").exists():
            raise SystemExit("--server apache needs Apache httpd: apt-get install apache2")
        shutil.rmtree(directory, ignore_errors=True)
        self.docroot.mkdir(parents=True)
        super().__init__(hosts, guests, every)

    def publish(self, index: int, generation: int) -> None:
        super().publish(index, generation)
        path = f"/m{index:05d}/XML/profile.xml"
        target = self.docroot / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(".partial")
        partial.write_bytes(self.pages[path][0])
        os.utime(partial, (published_at(generation), published_at(generation)))
        os.replace(partial, target)

    def answers(self) -> dict[int, int]:
        log = self.directory / "access.log"
        statuses = log.read_text().split() if log.exists() else []
        return {status: statuses.count(str(status)) for status in (200, 304)}

    def serve(self) -> _Apache:  # type: ignore[override]
        with socket.socket() as probe:  # a free port
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        conf = self.directory / "httpd.conf"
        run_as = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
        conf.write_text(
            f"ServerRoot {self.directory}\nDefaultRuntimeDir {self.directory}\n"
            f"LoadModule mpm_event_module {self.MODULES}/mod_mpm_event.so\n"
            f"LoadModule authz_core_module {self.MODULES}/mod_authz_core.so\n"
            f"{run_as}Listen 127.0.0.1:{port}\nServerName localhost\n"
            f"PidFile {self.directory}/httpd.pid\nErrorLog {self.directory}/error.log\n"
            f'LogFormat "%>s" status\nCustomLog {self.directory}/access.log status\n'
            f"DocumentRoot {self.docroot}\n<Directory />\n  AllowOverride None\n</Directory>\n"
            f"<Directory {self.docroot}>\n  Require all granted\n</Directory>\n"
        )
        subprocess.run([self.binary, "-f", str(conf), "-k", "start"], check=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"Apache httpd did not start; see {self.directory}/error.log") from None
                time.sleep(0.05)
        return _Apache(self.binary, conf, port)


class _Apache:
    """A started Apache httpd, as ``serve()`` gives a server: its address, and ``shutdown()``."""

    def __init__(self, binary: str, conf: Path, port: int) -> None:
        self.binary, self.conf, self.server_address = binary, conf, ("127.0.0.1", port)

    def shutdown(self) -> None:
        pid_file = self.conf.with_name("httpd.pid")
        subprocess.run([self.binary, "-f", str(self.conf), "-k", "stop"], check=False)
        deadline = time.monotonic() + 10  # "-k stop" only signals; Apache removes its pid file on exit
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


MEASURE = r"""
import json, resource, sys, time
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader, inventory_loader
config, probe, collections = sys.argv[1], sys.argv[2], sys.argv[3]
init_plugin_loader([collections])
# ansible-core's own inventory plugin base (0.05 s: it reads ansible.builtin's routing table):
# ansible imports it for its first enabled inventory plugin (host_list) before it reads any
# source, so it is not the cost of reading this one
import ansible.plugins.inventory
start = time.perf_counter()
cpu0 = time.process_time()
mod = inventory_loader.get("lcfg.xen.lcfg")
inv = InventoryData()
mod.parse(inv, DataLoader(), config, cache=True)
mod.update_cache_if_changed()
seconds = time.perf_counter() - start
probe_host = inv.get_host(probe)
print(json.dumps({
    "seconds": seconds,
    "cpu": time.process_time() - cpu0,
    "hosts": len(inv.hosts),
    "probe_memory": probe_host.vars["xen_domain"]["memory"] if probe_host else None,
    "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def measure(config: Path, probe: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, str(config), probe, str(COLLECTIONS)],
        capture_output=True,
        text=True,
        env=run.env(),
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"the plugin failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_config(out: Path, base: str, hosts: int) -> Path:
    config = out / "http.lcfg.yml"
    sources = "\n".join(f"  - {base}/m{index:05d}/XML/profile.xml" for index in range(hosts))
    config.write_text(
        "plugin: lcfg.xen.lcfg\nstrict: true\n"
        f"http_store: {out / 'store'}\n"
        f"cache: true\ncache_plugin: ansible.builtin.jsonfile\ncache_connection: {out / 'cache'}\ncache_timeout: 0\n"
        f"sources:\n{sources}\n"
    )
    return config


def run_cases(args: argparse.Namespace, site: Site, server: Any, out: Path) -> dict[str, list[dict]]:
    """The three cases, ``args.runs`` times, against ``server``: the samples per case."""
    base = f"http://127.0.0.1:{server.server_address[1]}"
    size = sum(len(body) for body, _tag, _stamp in site.pages.values())
    print(
        f"{args.hosts} XML profiles ({args.hosts // args.every} hypervisors x {args.guests} guests), "
        f"{size / 1e6:.1f} MB, served by {args.server} on {base}; plugin parse(), median of {args.runs}:",
        flush=True,
    )
    changed = 0  # the hypervisor whose profile changes in case 3
    probe = f"m{changed:05d}-g0"
    samples: dict[str, list[dict]] = {"first": [], "unchanged": [], "one_changed": []}
    for repetition in range(args.runs):
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        config = write_config(out, base, args.hosts)
        site.publish(changed, 0)
        for case in ("first", "unchanged"):
            before = site.answers()
            result = measure(config, probe)
            result["answers"] = {str(k): count - before[k] for k, count in site.answers().items()}
            samples[case].append(result)
        site.publish(changed, repetition + 1)  # one profile changes: its guest's memory too
        before = site.answers()
        result = measure(config, probe)
        result["answers"] = {str(k): count - before[k] for k, count in site.answers().items()}
        if result["probe_memory"] != 512 + 64 * (repetition + 1):
            raise SystemExit(f"the re-read did not show the change: {result}")
        samples["one_changed"].append(result)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, default=2000, help="published profiles (default 2000)")
    parser.add_argument("--every", type=int, default=10, help="one hypervisor every N profiles (default 10)")
    parser.add_argument("--guests", type=int, default=10, help="guests per hypervisor (default 10)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions (median)")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument("--out", type=Path, default=OUT, help=f"scratch directory (default {OUT})")
    parser.add_argument(
        "--server",
        choices=("python", "apache"),
        default="python",
        help="the loopback server: Python's http.server in this process (default), or Apache httpd",
    )
    args = parser.parse_args()
    out = args.out.resolve()
    if args.server == "apache":
        site: Site = ApacheSite(args.hosts, args.guests, args.every, APACHE_OUT)
    else:
        site = Site(args.hosts, args.guests, args.every)
    server = site.serve()
    try:
        samples = run_cases(args, site, server, out)
    finally:
        server.shutdown()
    summary: dict = {"hosts": args.hosts, "hypervisors": args.hosts // args.every, "runs": args.runs}
    first = statistics.median(s["seconds"] for s in samples["first"])
    for case, runs in samples.items():
        seconds = statistics.median(s["seconds"] for s in runs)
        summary[case] = {
            "seconds": [round(s["seconds"], 3) for s in runs],
            "median_s": seconds,
            "cpu_median_s": statistics.median(s["cpu"] for s in runs),
            "ratio_to_first": seconds / first,
            "maxrss_mb": max(s["maxrss_mb"] for s in runs),
            "answers": runs[-1]["answers"],
            "inventory_hosts": runs[-1]["hosts"],
        }
        print(
            f"  {case:<12} {seconds:7.2f} s  (x{seconds / first:.3f} of the first read)  "
            f"peak {summary[case]['maxrss_mb']:.0f} MB  answers {runs[-1]['answers']}  "
            f"runs {summary[case]['seconds']}",
            flush=True,
        )
    print(
        f"  targets: unchanged <= 0.1 x first ({summary['unchanged']['ratio_to_first']:.3f}), "
        f"one changed <= 0.15 x first ({summary['one_changed']['ratio_to_first']:.3f})"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
