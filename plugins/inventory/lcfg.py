# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: lcfg
short_description: Hypervisors, guests and virtual groups from LCFG profiles
version_added: 0.1.0
author:
  - lcfg.xen contributors (!UNKNOWN)
description:
  - Reads LCFG profiles (source profiles with C(#include) and mutations, compiled XML profiles,
    or XML profiles over http(s)) and exposes the C(xen) component as Ansible inventory.
  - Every profile is one physical host, named after the profile file (XML profiles at
    C(.../<host>/XML/profile.xml) by C(<host>), else by the file stem; an XML C(profile.node)
    must agree with that name, else the profile is an error).
    Every host gets C(lcfg_resources). Hosts whose C(profile.components) contains C(xen) join the
    group C(xen_hypervisors) and get C(xen_host).
  - Every guest in C(xen.virtualmachines) becomes a host (named by C(xen.name_<tag>), default the
    tag) in the group C(xen_guests) with the variables C(xen_hypervisor) and C(xen_domain).
    Every virtual group in C(xen.virtualgroup) becomes a group of the same name holding its
    member guests.
  - >-
    All validation happens here, before any host is touched. With O(strict_profiles=false) a
    profile with errors is left out (its host and its guests) and a warning names C(file:line:
    resource: problem) for each error; the rest of the site loads. With O(strict_profiles=true)
    any error in a profile fails the whole source.
  - O(strict) is the option of every constructed inventory plugin and applies to the
    O(compose), O(groups) and O(keyed_groups) templates only, as documented below. A
    configuration that sets O(strict) but not O(strict_profiles) makes profile errors fatal
    too, as O(strict) did before O(strict_profiles) existed.
  - Profile values are untrusted data. They are set as plain values and never treated as
    templates.
  - The configuration file name must end with C(lcfg.yml) or C(lcfg.yaml), for example
    C(site.lcfg.yml).
  - The resources are documented in the collection's C(docs/resources.md), the variables in
    C(docs/inventory.md).
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin; it must always be V(lcfg.xen.lcfg).
    type: str
    required: true
    choices: [lcfg.xen.lcfg]
  sources:
    description:
      - Source profile files or directories of them, XML profile files (C(*.xml)) or directories,
        and C(http://) or C(https://) URLs of XML profiles.
      - Relative paths are relative to the directory of this configuration file.
      - Profiles are read in sorted path order; a guest name that an earlier profile already
        defined is an error in the later profile.
      - Unset in the file, it comes from the environment variable E(LCFG_XEN_SOURCES) (comma-separated),
        which is how pull mode (C(playbooks/pull.yml)) gives each hypervisor its own profile's URL.
    type: list
    elements: str
    required: true
    env:
      - name: LCFG_XEN_SOURCES
        version_added: 0.2.0
  strict_profiles:
    description:
      - Whether an error in a profile (reading it, the model, its host and guest names) fails
        the whole source (V(true)) or leaves that profile out with a warning (V(false)).
      - Unset, it takes the value of O(strict), so configurations written before this option
        existed behave as before. Set it explicitly when O(strict) is set for templates, for
        example O(strict_profiles=true) with the default O(strict=false), so that
        C(keyed_groups) entries with C(default(omit)) skip hosts without the key.
    type: bool
    version_added: 0.1.0
  include_path:
    description:
      - Directories searched by C(#include <...>) in source profiles, in order.
      - Relative paths are relative to the directory of this configuration file.
    type: list
    elements: str
    default: []
  defines:
    description:
      - Macros defined before every source profile is read, like C(cpp -DNAME=value).
    type: dict
    default: {}
  timeout:
    description:
      - Seconds allowed for fetching one XML profile over http(s), from connecting to the last
        byte of the body. It is one deadline per URL, not a per-read timeout, so a server that
        trickles its answer cannot hold the inventory longer.
      - Above 0, at most 86400.
    type: float
    default: 30
  validate_certs:
    description: Verify the TLS certificate of XML profiles fetched over https.
    type: bool
    default: true
  http_concurrency:
    description:
      - How many http(s) profiles are fetched at the same time (1 to 64).
    type: int
    default: 8
    version_added: 0.2.0
  http_pipelining:
    description:
      - Send the requests for many profiles on one server back to back on kept-alive
        connections (HTTP/1.1 pipelining, on up to O(http_concurrency) connections per server,
        up to 100 requests at a time on each), reading the answers in order. An unchanged site's re-read is then
        one C(304 Not Modified) per profile without a round trip each.
      - Only a C(304) and a C(200) with a C(Content-Length) are taken that way. A redirect, an error,
        a chunked answer or anything unexpected sends that URL again the ordinary way, one
        request at a time, which follows redirects and reports errors. Every answer keeps its
        own O(timeout). A server that closes the connection between answers gets the rest on a
        new one. Sources behind a proxy or with credentials in the URL are never pipelined.
      - Turn it off for a server, or something in front of it, that does not answer pipelined
        requests in order (HTTP/1.1 requires it; Apache httpd does).
    type: bool
    default: true
    version_added: 0.2.0
  http_store:
    description:
      - Directory where the answers of http(s) sources are kept with their C(ETag) and
        C(Last-Modified), so the next read asks with C(If-None-Match) / C(If-Modified-Since) and an
        unchanged profile costs one C(304 Not Modified). With O(cache) on, a site whose profiles'
        content did not change (and whose files are unchanged) is read from the cached model without parsing.
      - Relative to the directory of this configuration file; C(~) is expanded. Created with mode 0700 when missing.
        An empty value keeps nothing (every read fetches every profile in full).
    type: str
    default: ~/.cache/lcfg-xen/http
    version_added: 0.2.0
  only_limited_profiles:
    description:
      - With a C(--limit) (C(ansible-playbook), C(ansible), C(ansible-inventory)), add to the
        inventory only the profiles the limit can select, each whole (its host, all its guests and
        virtual groups), instead of every profile of the site. A run limited to one hypervisor of a
        2,000-profile site then holds 11 hosts, not 22,000 (see the collection's C(docs/scale.md)).
      - Every profile is still read, checked and cached as without the option; profile errors and
        warnings are the same.
      - Only limit terms naming one of this source's hosts or guests exactly are judged (a
        subscript such as C(xen1[0]), C(!) and C(&) terms and C(@retry) files work as in
        ansible-core). Any other term loads every profile, because it could also match a group
        that another inventory source or a constructed group gives other members; so do a glob,
        a C(~regex), a group name (a virtual group too), C(all) and C(localhost). A limit of
        exclusions only loads every profile too.
      - The hosts left out are not in C(hostvars) or C(groups) for that run. Leave this off for plays
        that read other hypervisors' variables.
    type: bool
    default: false
    env:
      - name: LCFG_XEN_ONLY_LIMITED_PROFILES
    ini:
      - section: lcfg_xen
        key: only_limited_profiles
    version_added: 0.2.0
  http_headers:
    description:
      - Extra HTTP headers sent with every http(s) request, for example an C(Authorization)
        header for the profile server.
    type: dict
    default: {}
  client_cert:
    description:
      - PEM file with the TLS client certificate for https sources (and its key, unless
        O(client_key) is set). Relative to the directory of this configuration file.
    type: path
  client_key:
    description:
      - PEM file with the private key of O(client_cert). Relative to the directory of this
        configuration file.
    type: path
  ca_path:
    description: PEM file of the certificate authorities that sign the profile server's certificate.
    type: path
  use_proxy:
    description:
      - Use the proxy of the C(http_proxy) / C(https_proxy) environment variables (honouring
        C(no_proxy)) for http(s) sources.
    type: bool
    default: true
  host_access:
    description:
      - What the guests of every profile may reach on the hypervisor host, for the checks this
        inventory makes. The keys and their meaning are those of the module options of
        M(lcfg.xen.xen_domain) and M(lcfg.xen.xen_guests), validated by the same code -
        C(storage_dirs) (list of absolute directories; default the collection's list),
        C(trusted_extra_xml) (bool), C(allowed_boot_paths) (list), C(allowed_block_devices)
        (list), C(allow_containers) (bool) and C(allow_host_resources) (bool). See the
        collection's C(docs/domains.md).
      - Unset, profiles are held to the modules' default rules, and a profile that asks for more
        (a bootloader other than pygrub, a kernel or disk image outside the storage
        directories, a block device, host-reaching C(extra) XML) is an error naming C(file:line).
      - Only this configuration file sets it; no profile can. Paths must be absolute (they are
        paths on the hypervisors; nothing is expanded on the controller).
      - When set, every hypervisor host gets the variable C(xen_host_access) (these keys,
        normalised), from which the C(lcfg.xen.guest) role defaults its C(guest_storage_dirs),
        C(guest_trusted_extra_xml), C(guest_allowed_boot_paths), C(guest_allowed_block_devices)
        C(guest_allow_containers) and C(guest_allow_host_resources); the modules themselves
        never read it.
    type: dict
  guest_connection:
    description:
      - How playbooks reach the guests. Only this configuration file sets it; no profile can.
      - Every guest gets C(ansible_host), the address of its first vif with an address
        (C(xen.ip_<guest>_<vif>), in C(xen.vifs_<guest>) order); a guest without one gets none
        (Ansible then connects to its inventory name).
      - Every guest gets C(ansible_user) and C(ansible_ssh_private_key_file) from O(guest_connection.user)
        and O(guest_connection.private_key_file) when they are set.
      - A guest that only its hypervisor can reach gets C(ansible_ssh_common_args) set to
        C(-o ProxyJump=[user@]<hypervisor>[:port]) (with a jump key,
        C(-o ProxyCommand=ssh -i <key> ... -W [%h]:%p <hypervisor>) instead). The hypervisor's
        address, user and port are its own C(ansible_host) (default its inventory name),
        C(ansible_user) and C(ansible_port) as set in C(host_vars)/C(group_vars) or an earlier
        inventory source. A hypervisor whose C(ansible_connection) is C(local), or whose
        address is a loopback one, is this machine, and its guests never get a jump.
      - A variable the user set for a guest (C(host_vars/), C(group_vars/) beside the inventory
        source, an earlier inventory source; aliases such as C(ansible_ssh_host) count) is
        never replaced; O(compose) is applied after these and overrides them.
      - Profile values are untrusted. The only ones that reach these variables are the guest's
        address (an IP address without zone index, checked when the profile is read) and the
        hypervisor's inventory name (from the profile's file name); every other part comes
        from this file or the hypervisor's variables, and every part of the ssh arguments is
        checked and quoted.
      - See the collection's C(docs/inventory.md), section "Reaching the guests".
    type: dict
    version_added: 0.2.0
    suboptions:
      user:
        description: The guests' C(ansible_user).
        type: str
      private_key_file:
        description:
          - The guests' C(ansible_ssh_private_key_file), a file on the controller. Relative to
            the directory of this configuration file; C(~) is expanded.
        type: path
      jump:
        description:
          - Which guests of a remote hypervisor are reached through it.
          - V(auto) - guests whose vif (the first with an address, else the first) has
            C(nettype) C(nat) or C(route) (libvirt's NAT and routed networks are reachable from
            the hypervisor only). Bridged guests are reached directly.
          - V(always) - every guest of a remote hypervisor (bridges without an uplink, firewalls).
          - V(never) - no guest; the network routes to them.
        type: str
        choices: [auto, always, never]
        default: auto
      jump_user:
        description:
          - The user on the hypervisor for the jump. Default the hypervisor's C(ansible_user),
            else none (ssh's configuration or the local user name).
        type: str
      jump_private_key_file:
        description:
          - The key for the jump to the hypervisor. Default the hypervisor's
            C(ansible_ssh_private_key_file), else none (the jump uses the ssh agent and
            C(~/.ssh/config), as C(ProxyJump) does, since Ansible's own key options do not reach the
            jump). When a key is known the jump is a C(ProxyCommand) with C(-i).
          - Relative to the directory of this configuration file; C(~) is expanded.
        type: path
notes:
  - The cache (O(cache=true), off by default) stores the parsed model, keyed by the
    configuration, by the path, modification time and size of every file under O(sources) and
    O(include_path), and of every file the profiles read (includes too); any change to them
    rebuilds it, so the cache is never stale. Sources with http(s) URLs (any case) are fetched
    first (conditionally, see O(http_store)) and the SHA-256 of each profile's content is part of
    the key, so an unchanged site is not parsed again; a URL that cannot be fetched makes the
    site uncachable for that read.
  - Profiles are untrusted. C(#include) opens only files inside O(include_path) and the
    directories of O(sources) (real paths, symlinks resolved); a profile file found in a
    source directory that is a symlink to a file outside it is refused. Every profile has
    budgets (file and profile size, includes, macro expansion, value length, CPU numbers);
    going over one is an error naming C(file:line), handled like any other profile error.
    The limits are listed in the collection's C(docs/lcfg-language.md).
  - Host and group names are checked before anything is added to the inventory. A profile
    whose host name or guest name is not a valid inventory name or is reserved (C(all),
    C(ungrouped), C(xen_hypervisors), C(xen_guests)), or whose virtual group has the name of
    any host of the site or starts with a digit, is rejected with an error like any other
    profile error. No name goes to the first file claiming it; a guest named like a host is
    its own profile's error, and two profiles claiming one host name or guest name are both
    rejected.
  - Disk images, templates, kernels and ramdisks are checked with the modules' rules
    (O(host_access)); a template of the site used as a guest's disk, kernel or ramdisk, or a
    guest's image used as a template, rejects every profile naming it.
  - The cache key covers O(host_access) too.
  - http(s) sources are fetched with Ansible's C(open_url); redirects (at most 10, all within
    O(timeout)) are followed only to http(s) URLs, checked before connecting.
"""

EXAMPLES = r"""
# inventory/site.lcfg.yml: a directory of source profiles with their headers, kept beside the
# inventory directory (lcfg/), not inside it, so that -i inventory/ reads only this file
plugin: lcfg.xen.lcfg
sources:
  - ../lcfg/profiles
include_path:
  - ../lcfg/include

# site.lcfg.yml: compiled XML profiles from the LCFG server; any profile error fails the
# source (strict_profiles), while the templates stay lenient (strict: false, the default) so
# that default(omit) skips hosts without the key; plus a constructed group of the guests
# that boot with their hypervisor
plugin: lcfg.xen.lcfg
sources:
  - https://lcfg.example.org/profiles/example.org/xen1/XML/profile.xml
  - https://lcfg.example.org/profiles/example.org/xen2/XML/profile.xml
strict_profiles: true
timeout: 10
groups:
  autostarted: xen_domain.autostart | default(false)
keyed_groups:
  - key: xen_hypervisor | default(omit)
    prefix: guests_of

# site.lcfg.yml: the hypervisor admin lets guests use a site bootloader, LVM volumes and
# another storage directory (the guest role takes the same values from xen_host_access)
plugin: lcfg.xen.lcfg
sources:
  - ../lcfg/profiles
include_path:
  - ../lcfg/include
host_access:
  storage_dirs: [/var/lib/libvirt/images, /srv/guests]
  allowed_boot_paths: [/usr/local/bin/mygrub]
  allowed_block_devices: [/dev/vg_guests]

# site.lcfg.yml: guests on remote hypervisors, reached over ssh as "ansible" with one key;
# NAT and routed guests through their hypervisor (its ansible_host / ansible_user come from
# host_vars/ or group_vars/ beside this file)
plugin: lcfg.xen.lcfg
sources:
  - ../lcfg/profiles
include_path:
  - ../lcfg/include
guest_connection:
  user: ansible
  private_key_file: ~/.ssh/lcfg_guests
  jump: auto

# site.lcfg.yml: a macro for every profile and a warm-cache setup for big sites
plugin: lcfg.xen.lcfg
sources:
  - /var/lib/lcfg/conf/server/source
include_path:
  - /var/lib/lcfg/conf/server/include
defines:
  SITE_DEMO: "1"
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/lcfg-xen-inventory
"""

import base64
import copy
import hashlib
import json
import netrc
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
import zlib
from typing import TYPE_CHECKING, Any

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.inventory.helpers import get_group_vars
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.vars import combine_vars
from ansible.vars.plugins import get_vars_from_inventory_sources

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.common.host_access import (
    HOST_ACCESS_ARGSPEC,
    HostAccess,
    host_access_from_params,
)
from ansible_collections.lcfg.xen.plugins.plugin_utils import connection as _connection
from ansible_collections.lcfg.xen.plugins.plugin_utils import json_codec
from ansible_collections.lcfg.xen.plugins.plugin_utils import limit as _limit
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.errors import LcfgError, excerpt
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.http_pipeline import get_pipelined_many, request_bytes
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.http_pool import KeptConnections, server_and_target
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.http_store import HttpStore
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.loader import (
    HTTP_CONCURRENCY,
    Opener,
    fetch_profiles,
    host_name,
    is_url,
    load_profiles,
)

if TYPE_CHECKING:
    from ansible_collections.lcfg.xen.plugins.plugin_utils.model import BuiltProfile

# plugin_utils.model (and the LCFG readers, see plugin_utils.lcfg.loader) are imported where a
# profile is built: a read from the warm cache builds none, and Ansible compiles every
# collection module it imports from source, on every run.

HYPERVISORS = "xen_hypervisors"
GUESTS = "xen_guests"
CACHE_FORMAT = 4
USER_AGENT = "lcfg.xen-inventory"
MAX_TIMEOUT = 86400  # seconds; threading's wait() refuses an infinite one
MAX_REDIRECTS = 10
MAX_HTTP_CONCURRENCY = 64


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect comes back as the HTTPError it is: ``make_opener`` checks where it leads."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        return None


def _urls() -> Any:
    """ansible's module_utils.urls, imported when first needed: a TLS context, credentials in a
    URL or a netrc login. Its import costs 60 ms (cryptography, email), a tenth of an unchanged
    site's read over plain HTTP, which needs none of it."""
    from ansible.module_utils import urls  # pylint: disable=import-outside-toplevel

    return urls


def _once(factory):
    """``factory()`` made at the first call, then the same value (thread-safe)."""
    made: list[Any] = []
    lock = threading.Lock()

    def get() -> Any:
        with lock:
            if not made:
                made.append(factory())
            return made[0]

    return get


def make_opener(
    headers: dict[str, str],
    validate_certs: bool,
    client_cert: str | None,
    client_key: str | None,
    ca_path: str | None,
    use_proxy: bool,
    pipelining: bool = True,
) -> Opener:
    """``opener(url, timeout, extra_headers)`` for the loader, with the plugin's settings
    (``extra_headers``: the conditional request's).

    One TLS context serves every request of the read, and connections are kept open between
    requests to the same server (``KeptConnections``; urllib through a proxy): Ansible's
    open_url builds a context and an opener per call, about 2.5 ms of CPU per request with the
    CA store loaded once (and 50 ms more without), and urllib connects for every request; an
    unchanged site's read is thousands of 304s. The context is made at the first request, so a
    bad certificate path fails that URL as it did per call. Credentials
    come from ``~/.netrc`` (or ``NETRC``) as Ansible's ``use_netrc`` sends them; a URL with
    credentials in it goes through Ansible's Request, which answers the server's challenge.

    With ``pipelining``, ``opener.open_pipelined`` sends many requests to one server back to
    back (``http_pipeline.get_pipelined``); what it does not take goes through ``opener``."""
    base_headers = {"Accept": "application/xml, text/xml, */*", "User-Agent": USER_AGENT}
    base_headers.update(headers)
    context = _once(
        lambda: _urls().make_context(
            cafile=ca_path, validate_certs=validate_certs, client_cert=client_cert, client_key=client_key
        )
    )
    shared = _once(
        lambda: urllib.request.build_opener(
            urllib.request.ProxyHandler(None if use_proxy else {}),
            urllib.request.HTTPSHandler(context=context()),
            _NoRedirect(),
        )
    )
    logins = _once(_read_netrc)
    kept = KeptConnections(context)
    proxies = urllib.request.getproxies() if use_proxy else {}

    def with_credentials(url: str, all_headers: dict[str, str], timeout: float) -> Any:
        # decompress=False: the size cap counts the bytes we keep (no gzip bomb)
        request = _urls().Request(use_netrc=True)
        return request.open(
            "GET",
            url,
            context=context(),
            headers=all_headers,
            use_proxy=use_proxy,
            timeout=timeout,
            validate_certs=validate_certs,
            http_agent=USER_AGENT,
            follow_redirects="none",
            client_cert=client_cert,
            client_key=client_key,
            ca_path=ca_path,
            decompress=False,
        )

    def with_netrc(parts: urllib.parse.SplitResult, all_headers: dict[str, str]) -> dict[str, str]:
        netrc_file = logins()
        if isinstance(netrc_file, Exception):
            raise netrc_file
        login = netrc_file.authenticators(parts.hostname) if netrc_file is not None and parts.hostname else None
        if login and login[0] and login[2]:
            return {**all_headers, "Authorization": _urls().basic_auth_header(login[0], login[2])}
        return all_headers

    def proxied(parts: urllib.parse.SplitResult) -> bool:
        # proxy_bypass is given host:port, as urllib's ProxyHandler gives it (no_proxy may name a port)
        return parts.scheme.lower() in proxies and not urllib.request.proxy_bypass(parts.netloc.rpartition("@")[2])

    def open_once(url: str, all_headers: dict[str, str], timeout: float) -> Any:
        parts = urllib.parse.urlsplit(url)
        if "@" in parts.netloc:
            return with_credentials(url, all_headers, timeout)
        all_headers = with_netrc(parts, all_headers)
        if proxied(parts):
            return shared().open(urllib.request.Request(url, headers=all_headers), timeout=timeout)
        return kept.open(url, all_headers, timeout)

    def open_idle(url: str, timeout: float, extra_headers: dict[str, str], deadline: float) -> Any:
        """``open_`` on an idle kept connection in the caller's thread, held to ``deadline``
        (``KeptConnections.open_idle``); None when it cannot be sent that way (no idle
        connection, a proxy, credentials in the URL)."""
        parts = urllib.parse.urlsplit(url)
        if "@" in parts.netloc or proxied(parts):
            return None
        return kept.open_idle(url, with_netrc(parts, {**base_headers, **extra_headers}), timeout, deadline)

    def open_(url: str, timeout: float, extra_headers: dict[str, str]) -> Any:
        all_headers = {**base_headers, **extra_headers}
        source = url
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                # redirects followed here, so their scheme is checked before connecting
                return open_once(url, all_headers, timeout)
            except urllib.error.HTTPError as exc:
                location = exc.headers.get("Location") if exc.headers is not None else None
                if exc.code not in (301, 302, 303, 307, 308) or not location:
                    raise
                url = urllib.parse.urljoin(url, location)
                if not is_url(url):
                    raise LcfgError(
                        f"HTTP {exc.code} redirect to a non-http(s) URL {excerpt(url)}: refused", file=source
                    ) from None
        raise LcfgError(f"more than {MAX_REDIRECTS} redirects", file=source)

    def open_pipelined(
        asked: list[tuple[str, dict[str, str]]], timeout: float, max_size: int, concurrency: int
    ) -> list[Any]:
        """Per ``(url, extra_headers)``: what ``get_pipelined`` brought, None for a URL to send
        the ordinary way (a proxy, credentials in the URL, a request it would not send)."""
        results: list[Any] = [None] * len(asked)
        by_server: dict[tuple, list[tuple[int, bytes, tuple[str | None, str | None]]]] = {}
        for index, (url, extra_headers) in enumerate(asked):
            parts = urllib.parse.urlsplit(url)
            if "@" in parts.netloc or proxied(parts):
                continue
            try:
                server, target = server_and_target(url, parts)
                all_headers = with_netrc(parts, {**base_headers, **extra_headers})
            except Exception:  # noqa: BLE001 - the ordinary path words it
                continue
            default_port = 443 if server[0] == "https" else 80
            request = request_bytes(server[1], server[2], default_port, target, all_headers)
            if request is not None:
                asked_with = (extra_headers.get("If-None-Match"), extra_headers.get("If-Modified-Since"))
                by_server.setdefault(server, []).append((index, request, asked_with))
        servers = list(by_server)
        answers = get_pipelined_many(
            [
                (server, [entry[1] for entry in by_server[server]], [entry[2] for entry in by_server[server]])
                for server in servers
            ],
            timeout,
            max_size,
            context,
            connections=concurrency,
        )
        for server, server_answers in zip(servers, answers, strict=True):
            for entry, answer in zip(by_server[server], server_answers, strict=True):
                results[entry[0]] = answer
        return results

    open_.close = kept.close  # type: ignore[attr-defined]  # the kept connections, once the read is done
    open_.open_idle = open_idle  # type: ignore[attr-defined]  # see loader.fetch_answer
    if pipelining:
        open_.open_pipelined = open_pipelined  # type: ignore[attr-defined]  # see loader.fetch_profiles
    return open_


def _read_netrc() -> Any:
    """The netrc file as Ansible's ``use_netrc`` reads it: None when there is none; a file
    that cannot be parsed fails every request that needs it, naming the problem."""
    try:
        return netrc.netrc(os.environ.get("NETRC"))
    except OSError:
        return None
    except netrc.NetrcParseError as exc:
        return exc


def host_access_option(value: Any) -> HostAccess | None:
    """The ``host_access`` option as the modules read the same options (their argument spec,
    then host_access_from_params); ValueError naming ``host_access.<key>``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"option host_access must be a mapping of {', '.join(HOST_ACCESS_ARGSPEC)}")
    for key, spec in HOST_ACCESS_ARGSPEC.items():
        items = value.get(key)
        if spec.get("elements") == "path" and isinstance(items, list):
            for item in items:  # paths on the hypervisor: no ~ or $VAR expanded on the controller
                if not str(item).startswith("/"):
                    raise ValueError(f"option host_access.{key}: {item!r} is not an absolute path")
    result = ArgumentSpecValidator(HOST_ACCESS_ARGSPEC).validate(value)
    for error in result.errors:
        if isinstance(error, UnsupportedError):
            raise ValueError(f"option host_access: unknown key {error}")
        raise ValueError(f"option host_access: {error}")
    try:
        return host_access_from_params(result.validated_parameters)
    except ValidationError as exc:
        raise ValueError(f"option host_access.{exc.parameter}: {exc.problem}") from None


def host_access_data(access: HostAccess | None) -> dict[str, Any] | None:
    """The option normalised (JSON-able): the cache key part and the ``xen_host_access`` hostvar."""
    if access is None:
        return None
    return {key: list(value) if isinstance(value, tuple) else value for key, value in vars(access).items()}


def inputs_unchanged(inputs: dict[str, list[int]]) -> bool:
    """Whether every file a cached model was built from still has its mtime and size."""
    for path, (mtime_ns, size) in inputs.items():
        try:
            stat = os.stat(path)
        except OSError:
            return False
        if (stat.st_mtime_ns, stat.st_size) != (mtime_ns, size):
            return False
    return True


def cache_entry(fingerprint: str, data: dict[str, Any]) -> dict[str, str]:
    """What the model cache keeps for ``data``: its JSON, compressed, as one ASCII string.
    ansible-core's cache decoder inspects every value it decodes (7 s for a 22,000-host site)
    and escapes every quote of a JSON string again; a compressed string is a tenth of the
    size and has no quote to escape (a 2,000-profile site: 3 MB instead of 32 MB)."""
    return packed_entry(fingerprint, json_codec.dumps(data))


def packed_entry(fingerprint: str, encoded: bytes) -> dict[str, str]:
    """``cache_entry`` of data already encoded as JSON. (zlib lets other threads run while it
    compresses: the inventory is populated meanwhile.)"""
    packed = zlib.compress(encoded, 1)
    return {"fingerprint": fingerprint, "data_zlib": base64.b64encode(packed).decode("ascii")}


def unpacked_entry(entry: Any) -> tuple[str, bytes] | None:
    """``(fingerprint, JSON of the site data)`` of a cache entry (``cache_entry``); None when
    it is not one. (zlib lets other threads run while it decompresses; json does not.)"""
    if not isinstance(entry, dict) or not isinstance(entry.get("fingerprint"), str):
        return None
    try:
        packed = base64.b64decode(str(entry.get("data_zlib")), validate=True)
        return entry["fingerprint"], zlib.decompress(packed)
    except (ValueError, zlib.error):  # binascii.Error is a ValueError
        return None


def cached_data(unpacked: tuple[str, bytes] | None, fingerprint: str) -> dict[str, Any] | None:
    """The site data of an ``unpacked_entry`` made for ``fingerprint`` whose input files are
    unchanged, else None."""
    if unpacked is None or unpacked[0] != fingerprint:
        return None
    try:
        data = json_codec.loads(unpacked[1])
    except ValueError:
        return None
    if not isinstance(data, dict) or not inputs_unchanged(data.get("inputs") or {}):
        return None
    return data


def _model_code() -> list[str]:
    """The Python files the model is built by: plugin_utils (the model and the LCFG reader) and
    the module_utils it validates with (common: validate, host_access; spec: the guest schema)."""
    plugin_utils = os.path.dirname(os.path.abspath(json_codec.__file__))  # model.py's directory
    module_utils = os.path.join(os.path.dirname(plugin_utils), "module_utils")
    files = []
    for top in (plugin_utils, os.path.join(module_utils, "common"), os.path.join(module_utils, "spec")):
        for root, dirs, names in os.walk(top):
            dirs.sort()
            files.extend(os.path.join(root, name) for name in sorted(names) if name.endswith(".py"))
    return files


def _model_code_digest() -> str:
    """Hash of (path, mtime, size) of every file of ``_model_code``: part of every cache key."""
    digest = hashlib.sha256()
    for path in _model_code():
        stat = os.stat(path)
        digest.update(f"C{path}\0{stat.st_mtime_ns}\0{stat.st_size}\0".encode())
    return digest.hexdigest()


def _fingerprint(
    base_dir: str,
    sources: list[str],
    include_path: list[str],
    defines: dict[str, str],
    host_access: dict[str, Any] | None = None,
    url_digests: dict[str, str | None] | None = None,
) -> str | None:
    """Hash of the options, of (path, mtime, size) of every input file and of the content of
    each URL source (``url_digests``, as fetched for this read); None if uncachable (a URL
    that could not be fetched, or a URL in the include path)."""
    digest = hashlib.sha256()
    # host_access decides which profiles the model accepts
    digest.update(
        json.dumps([CACHE_FORMAT, base_dir, sources, include_path, defines, host_access], sort_keys=True).encode()
    )
    # the code that builds the model: an upgraded collection never reads an old entry
    digest.update(f"C{_model_code_digest()}\0".encode())
    listed = [entry.strip() for entry in sources]  # stripped as the loader strips them
    sourced = set(listed)  # looked up once per entry: thousands of URLs
    for entry in listed + [entry.strip() for entry in include_path]:
        if is_url(entry):
            content = (url_digests or {}).get(entry) if entry in sourced else None
            if content is None:
                return None
            digest.update(f"U{entry}\0{content}\0".encode())
            continue
        top = os.path.normpath(os.path.join(base_dir, os.path.expanduser(entry)))
        try:
            if os.path.isdir(top):
                for root, dirs, files in os.walk(top):
                    dirs.sort()
                    stat = os.stat(root)
                    digest.update(f"D{root}\0{stat.st_mtime_ns}\0".encode())
                    for name in sorted(files):
                        path = os.path.join(root, name)
                        stat = os.stat(path)
                        digest.update(f"F{path}\0{stat.st_mtime_ns}\0{stat.st_size}\0".encode())
            else:
                stat = os.stat(top)
                digest.update(f"F{top}\0{stat.st_mtime_ns}\0{stat.st_size}\0".encode())
                # a header added beside a single-file source may shadow an #include "..."
                parent = os.path.dirname(top)
                digest.update(f"D{parent}\0{os.stat(parent).st_mtime_ns}\0".encode())
        except OSError:
            digest.update(f"M{top}\0".encode())
    return digest.hexdigest()


def load_site(
    base_dir: str,
    sources: list[str],
    include_path: list[str],
    defines: dict[str, str],
    timeout: float,
    validate_certs: bool,
    opener: Opener | None = None,
    access: HostAccess | None = None,
    prefetched: dict[str, Any] | None = None,
    store: HttpStore | None = None,
    concurrency: int = HTTP_CONCURRENCY,
) -> dict[str, Any]:
    """Read and model every profile; return plain data (what is cached and populated).

    A URL whose body (``prefetched``) was built before with the same options and code is
    taken from ``store`` as built then, not read again; each URL built here is kept there."""
    # pylint: disable-next=import-outside-toplevel  # see the imports
    from ansible_collections.lcfg.xen.plugins.plugin_utils.model import BuiltProfile, build_profile, build_site

    kept_key = _built_key_maker(access)
    prebuilt: dict[str, BuiltProfile] = {}
    for url, got in (prefetched or {}).items():
        kept = store.built(url, kept_key(url, got[1])) if store is not None and isinstance(got, tuple) else None
        if kept is None:
            continue
        try:
            built = BuiltProfile.from_data(kept)
        except (KeyError, TypeError, ValueError, AttributeError):
            continue  # not what this code keeps: build it again
        if (built.name, built.path) == (host_name(url), url):
            prebuilt[url] = built
    loaded = load_profiles(
        [source for source in sources if str(source).strip() not in prebuilt],
        base_dir,
        include_path=include_path,
        defines=defines,
        timeout=timeout,
        validate_certs=validate_certs,
        opener=opener,
        store=store,
        concurrency=concurrency,
        prefetched=prefetched,
    )
    rejected: dict[str, list[str]] = {}
    items: list[tuple[str, BuiltProfile]] = list(prebuilt.items())
    unreadable = []  # their host names stay claimed: a guest elsewhere may not take them
    inputs: dict[str, list[int]] = {}
    for item in loaded:
        inputs.update({path: list(stat) for path, stat in item.inputs.items()})
        if item.profile is None:
            error = item.error or LcfgError("profile could not be read", file=item.source)
            rejected[item.source] = [str(error)]
            unreadable.append((host_name(item.source), item.source))
            continue
        built = build_profile(item.profile, access)
        items.append((item.source, built))
        if store is not None and item.digest is not None and built.keep:
            try:
                store.remember_built(item.source, kept_key(item.source, item.digest), built.to_data())
            except OSError:
                pass  # a store that cannot be written only costs the next read a rebuild
    if store is not None:  # what was fetched in full again since fetch_profiles saved it
        try:
            store.save_index()
        except OSError:
            pass
    items.sort(key=lambda pair: pair[0])
    site = build_site([built for _source, built in items], access, unreadable)
    for name, errors in site.rejected.items():
        rejected[name] = [str(err) for err in errors]
    return {
        "hosts": site.data,
        "rejected": rejected,
        "warnings": list(site.warnings),
        "inputs": inputs,
    }


def _built_key_maker(access: HostAccess | None):
    """``key(url, digest)``: what a profile built from that body with these options and this
    code is kept under in the http_store (see ``_fingerprint`` for why the code counts)."""
    options = json.dumps([CACHE_FORMAT, _model_code_digest(), host_access_data(access)], sort_keys=True)

    def key(url: str, digest: str) -> str:
        return f"{options}\0{url}\0{digest}"

    return key


def _only_host_group_vars() -> bool:
    """Whether ansible's host_group_vars is the one vars plugin that runs: an enabled one, or
    an old-style one from ANSIBLE_VARS_PLUGINS or a vars_plugins/ directory, could give any
    host variables. (Read from the vars plugin loader as ansible primes it; if that cannot be
    read, the answer is no.)"""
    try:
        from ansible.plugins.loader import vars_loader  # pylint: disable=import-outside-toplevel
        from ansible.vars.plugins import _prime_vars_loader  # pylint: disable=import-outside-toplevel

        if vars_loader._paths is None:  # pylint: disable=protected-access
            _prime_vars_loader()
        return list(vars_loader._plugin_instance_cache) == ["ansible.builtin.host_group_vars"]  # pylint: disable=protected-access
    except Exception:  # pylint: disable=broad-exception-caught
        return False


def _host_vars_names(sources: list[str]) -> set[str] | bool:
    """The names ansible's host_group_vars may find in the ``host_vars/`` directories beside
    ``sources``, lower-cased: each entry and every part of it before a dot (a file or
    directory named after the host, with any extension; more names than it finds is harmless).
    True (ask the vars plugins per host) when other vars plugins run."""
    if not _only_host_group_vars():
        return True
    names: set[str] = set()
    for source in sources:
        if "," in source and not os.path.exists(source):
            continue  # a host list, not a path (as ansible's vars lookup skips it)
        directory = os.path.join(source if os.path.isdir(source) else os.path.dirname(source), "host_vars")
        try:
            entries = os.listdir(directory)
        except OSError:
            continue
        for entry in entries:
            parts = entry.lower().split(".")
            names.update(".".join(parts[:end]) for end in range(1, len(parts) + 1))
    return names


def _read_lines(path: str) -> list[str]:
    """The lines of a ``--limit @file`` (a retry file: one host name per line); only a regular
    file, as ansible-core reads it (a FIFO or a device could block the inventory)."""
    if not os.path.isfile(path):
        raise OSError(f"not a regular file: {path}")
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read().splitlines()


def _plain_data(inventory: Any) -> Any:
    """The inventory data behind ansible-core's proxy (2.19 and later), else ``inventory``.

    The proxy's ``set_variable`` copies every value it is given, element by element, to tag
    each with the configuration file as its origin: about 1.3 million elements, 50 s, for a
    2,000-profile site. What the plugin sets is plain JSON data it built itself (from its
    model or its JSON cache) and hands over once, untrusted as templates either way (the
    plugin is not ``trusted_by_default``), so it goes to the inventory data directly."""
    return getattr(inventory, "__wrapped__", inventory)


def _set_new_host_vars(inventory: Any, name: str, values: dict[str, Any]) -> None:
    """Set ``values`` on host ``name``, one the plugin added itself (no earlier source named
    it, see ``_without_names_taken_elsewhere``): plain JSON data under variable names of its
    own. ansible-core's ``set_variable`` validates each name, logs a debug line and merges
    mappings one variable at a time: about 13 µs each, 100,000 of them on a 2,000-profile
    site, for checks that cannot fail here."""
    inventory.hosts[name].vars.update(values)


class _InBackground:
    """``function(*args)`` run in a thread of its own; ``result()`` waits for it (and raises
    what it raised)."""

    def __init__(self, function: Any, *args: Any) -> None:
        self._outcome: list[Any] = []
        self._thread = threading.Thread(target=self._run, args=(function, args), name="lcfg-cache", daemon=True)
        self._thread.start()

    def _run(self, function: Any, args: tuple) -> None:
        try:
            self._outcome.append((True, function(*args)))
        except BaseException as exc:  # noqa: B902 - raised again in the waiting thread
            self._outcome.append((False, exc))

    def join(self) -> None:
        self._thread.join()

    def result(self) -> Any:
        self._thread.join()
        done, value = self._outcome[0]
        if not done:
            raise value
        return value


class _Uncopied:
    """A DataLoader whose ``load_from_file`` hands over what it parsed without a deep copy."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def load_from_file(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("cache") != "none":
            return self._loader.load_from_file(*args, **kwargs)
        return self._loader.load_from_file(*args, **{**kwargs, "unsafe": True})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """Inventory from the xen component of LCFG profiles."""

    NAME = "lcfg.xen.lcfg"
    #: the validated host_access option (host_access_data), set by parse
    _host_access: dict[str, Any] | None = None
    #: the validated guest_connection option, set by parse
    _guest_connection: _connection.GuestConnection = _connection.GuestConnection()

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and path.endswith(("lcfg.yml", "lcfg.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)
        base_dir = os.path.dirname(os.path.abspath(path))
        sources = [str(s) for s in self.get_option("sources") or []]
        if not sources:
            raise AnsibleParserError(f"{path}: option 'sources' lists no profile files, directories or URLs")
        include_path = [str(p) for p in self.get_option("include_path") or []]
        defines = {str(k): "" if v is None else str(v) for k, v in (self.get_option("defines") or {}).items()}

        timeout = float(self.get_option("timeout"))
        if not 0 < timeout <= MAX_TIMEOUT:  # also nan and inf
            raise AnsibleParserError(
                f"{path}: option 'timeout' must be a number of seconds above 0 and at most {MAX_TIMEOUT}, got {timeout}"
            )
        try:
            access = host_access_option(self.get_option("host_access"))
        except ValueError as exc:
            raise AnsibleParserError(f"{path}: {exc}") from None
        self._host_access = host_access_data(access)
        try:
            self._guest_connection = _connection.guest_connection_option(self.get_option("guest_connection"), base_dir)
        except ValueError as exc:
            raise AnsibleParserError(f"{path}: {exc}") from None
        validate_certs = bool(self.get_option("validate_certs"))
        opener = make_opener(
            {str(k): str(v) for k, v in (self.get_option("http_headers") or {}).items()},
            validate_certs,
            self._path_option("client_cert", base_dir),
            self._path_option("client_key", base_dir),
            self._path_option("ca_path", base_dir),
            bool(self.get_option("use_proxy")),
            pipelining=bool(self.get_option("http_pipelining")),
        )
        concurrency = self.get_option("http_concurrency")
        if not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_HTTP_CONCURRENCY:
            raise AnsibleParserError(
                f"{path}: option 'http_concurrency' must be 1 to {MAX_HTTP_CONCURRENCY}, got {concurrency!r}"
            )
        urls = [source.strip() for source in sources if is_url(source.strip())]
        if any("@" in url and urllib.parse.urlsplit(url).username for url in urls):  # "@": no split per URL
            # ansible's Request.open installs its opener process-wide before opening; the auth
            # handler of credentials in a URL would race with the other threads' openers
            concurrency = 1
        store = self._http_store(base_dir) if urls else None
        user_cache = bool(self.get_option("cache"))
        cache_key = self.get_cache_key(path)
        # the cache entry is read and decompressed while the URLs are fetched (both mostly wait,
        # for the server and for zlib); only the entry the fingerprint then asks for is decoded
        entry = _InBackground(self._unpacked_cache_entry, cache_key) if user_cache and cache and urls else None
        # URLs first (one conditional request each): their content is part of the cache key
        prefetched = fetch_profiles(urls, timeout, validate_certs, opener, store, concurrency) if urls else {}
        digests = {url: got[1] if isinstance(got, tuple) else None for url, got in prefetched.items()}
        fingerprint = (
            _fingerprint(base_dir, sources, include_path, defines, self._host_access, digests) if user_cache else None
        )
        data = None
        packing = None
        if user_cache and cache and fingerprint is not None:
            data = cached_data(entry.result() if entry else self._unpacked_cache_entry(cache_key), fingerprint)
        elif entry is not None:
            entry.join()  # not wanted after all, but done before the cache is written
        if data is None:
            try:
                data = load_site(
                    base_dir,
                    sources,
                    include_path,
                    defines,
                    timeout,
                    validate_certs,
                    opener,
                    access,
                    prefetched=prefetched,
                    store=store,
                    concurrency=concurrency,
                )
            except LcfgError as exc:
                raise AnsibleParserError(str(exc)) from exc
            if user_cache and fingerprint is not None:
                # encoded here, before populating shares the data with the inventory
                packing = _InBackground(packed_entry, fingerprint, json_codec.dumps(data))
        opener.close()
        try:
            self._populate(data)
        finally:
            if packing is not None:
                self._cache[cache_key] = packing.result()

    def _unpacked_cache_entry(self, cache_key: str) -> tuple[str, bytes] | None:
        try:
            entry = self._cache[cache_key]
        except KeyError:
            return None
        return unpacked_entry(entry)

    def _read_config_data(self, path):
        # ansible-core deep-copies the file it parsed, against changes to its file cache; the
        # configuration is read past that cache, so the copy guards nothing (0.1 s for 2,000 URLs)
        loader = self.loader
        self.loader = _Uncopied(loader)
        try:
            return super()._read_config_data(path)
        finally:
            self.loader = loader

    def _http_store(self, base_dir: str) -> HttpStore | None:
        """The ``http_store`` directory's store; None when disabled or not usable (a warning)."""
        value = self.get_option("http_store")
        if not value:
            return None
        directory = os.path.join(base_dir, os.path.expanduser(str(value)))
        try:
            return HttpStore(directory)
        except OSError as exc:
            self.display.warning(f"lcfg.xen.lcfg: http_store {directory} cannot be used ({exc}); fetching in full")
            return None

    def _path_option(self, name: str, base_dir: str) -> str | None:
        value = self.get_option(name)
        if not value:
            return None
        return os.path.join(base_dir, os.path.expanduser(str(value)))

    def _populate(self, data: dict[str, Any]) -> None:
        """Add hosts, groups and variables from plain site data (see ``load_site``)."""
        strict = self._strict_profiles()
        rejected = data.get("rejected") or {}
        if strict and rejected:
            lines = [msg for msgs in rejected.values() for msg in msgs]
            raise AnsibleParserError("LCFG profile errors (strict_profiles: true):\n" + "\n".join(lines))
        for msgs in rejected.values():
            for msg in msgs:
                self.display.warning(f"{msg} (profile left out)")
        for msg in data.get("warnings") or []:
            self.display.warning(msg)

        inventory = _plain_data(self.inventory)
        self._group_vars: dict[tuple[str, ...], dict[str, Any]] = {}  # _user_vars: group names -> variables
        self._host_vars_names: set[str] | bool | None = None  # _may_have_host_vars: None until needed
        hosts = self._limited(self._without_names_taken_elsewhere(data.get("hosts") or [], strict))
        if any(h.get("is_hypervisor") for h in hosts):
            inventory.add_group(HYPERVISORS)
            inventory.add_group(GUESTS)
        for host in hosts:
            name = host["name"]
            inventory.add_host(name)
            _set_new_host_vars(inventory, name, {"lcfg_resources": host["resources"]})
            if not host.get("is_hypervisor"):
                self._construct(name)
                continue
            inventory.add_child(HYPERVISORS, name)
            _set_new_host_vars(inventory, name, {"xen_host": host["xen_host"]})
            if self._host_access is not None:  # from this configuration file, never a profile
                _set_new_host_vars(inventory, name, {"xen_host_access": copy.deepcopy(self._host_access)})
            for guest_name, domain in host["guests"].items():
                inventory.add_host(guest_name, group=GUESTS)
                _set_new_host_vars(inventory, guest_name, {"xen_hypervisor": name, "xen_domain": domain})
            for group, members in host["groups"].items():
                group = inventory.add_group(group)
                for member in members:
                    inventory.add_child(group, member)
            self._connect_guests(name, host["guests"])
            self._construct(name)
            for guest_name in host["guests"]:
                self._construct(guest_name)

    def _limited(self, hosts: list[dict]) -> list[dict]:
        """``hosts`` the run's ``--limit`` can select, with ``only_limited_profiles``; else all."""
        if not self.get_option("only_limited_profiles"):
            return hosts
        from ansible import context  # pylint: disable=import-outside-toplevel

        units = [_limit.Unit(host["name"], tuple(host.get("guests") or ())) for host in hosts]
        keep = _limit.selected_units((context.CLIARGS or {}).get("subset"), units, read_file=_read_lines)
        return hosts if keep is None else [host for index, host in enumerate(hosts) if index in keep]

    def _user_vars(self, name: str) -> dict[str, Any]:
        """The variables of host ``name`` as the user set them so far: group and host
        variables of the inventory sources read before (and during) this one, and the
        host_vars/ and group_vars/ beside them (vars plugins, as constructed's
        use_vars_plugins reads them)."""
        host = self.inventory.get_host(name)
        sources = self._var_sources()
        data = combine_vars(self._vars_of_groups(host, sources), host.get_vars())
        if sources and self._may_have_host_vars(name, sources):
            data = combine_vars(data, get_vars_from_inventory_sources(self.loader, sources, [host], "all"))
        return data

    def _user_var_names(self, name: str) -> set[str] | dict[str, Any]:
        """The names of ``_user_vars(name)`` (a container to test names against), cheaper per
        host: a guest's groups and their variables are shared with its hypervisor's other
        guests, and its own variables are the plugin's, not the user's, unless host_vars/
        may give it some (then the whole ``_user_vars``)."""
        host = self.inventory.get_host(name)
        sources = self._var_sources()
        if sources and self._may_have_host_vars(name, sources):
            return self._user_vars(name)
        return self._vars_of_groups(host, sources).keys() | host.vars.keys()

    def _var_sources(self) -> list[str]:
        """The inventory sources read before (and during) this one: where vars plugins look."""
        return [s for s in [*self.inventory.processed_sources, self.inventory.current_source] if s]

    def _vars_of_groups(self, host: Any, sources: list[str]) -> dict[str, Any]:
        groups = list({g.name: g for g in [self.inventory.groups["all"], *host.get_groups()]}.values())
        key = tuple(sorted(g.name for g in groups))
        if key not in self._group_vars:  # the guests of a hypervisor share their groups
            data = get_group_vars(groups)
            if sources:
                data = combine_vars(data, get_vars_from_inventory_sources(self.loader, sources, groups, "all"))
            self._group_vars[key] = data
        return self._group_vars[key]

    def _may_have_host_vars(self, name: str, sources: list[str]) -> bool:
        """False only when the vars plugins cannot give host ``name`` variables: the one
        enabled is ansible's host_group_vars and no ``host_vars/`` beside a source has an
        entry for the name. Asking the plugins per host costs ~0.15 ms, 3 s for 20,000 guests."""
        if self._host_vars_names is None:
            self._host_vars_names = _host_vars_names(sources)
        return self._host_vars_names is True or name.lower() in self._host_vars_names

    def _connect_guests(self, hypervisor: str, guests: dict[str, dict[str, Any]]) -> None:
        """Each guest's connection variables (plugin_utils/connection.py), except those the
        user set for it (host_vars, group_vars, another source): those win."""
        settings = self._guest_connection
        route = _connection.hypervisor_route(hypervisor, self._user_vars(hypervisor), settings)
        stranded = []
        for guest_name, domain in guests.items():
            if route.problem and _connection.wants_jump(domain, settings):
                stranded.append(guest_name)
            user_set = self._user_var_names(guest_name)
            _set_new_host_vars(
                _plain_data(self.inventory),
                guest_name,
                {
                    key: value
                    for key, value in _connection.guest_vars(domain, route, settings).items()
                    if not any(alias in user_set for alias in _connection.ALIASES[key])
                },
            )
        if stranded:
            self.display.warning(
                f"guests {', '.join(stranded)} of hypervisor {hypervisor} get no ssh jump: {route.problem} "
                "(set the hypervisor's connection variables as plain values, or the guests' "
                "ansible_ssh_common_args, or guest_connection.jump: never)"
            )

    def _strict_profiles(self) -> bool:
        """Whether a profile error fails the source: ``strict_profiles``, else (unset, as in
        configurations older than that option) ``strict``."""
        value = self.get_option("strict_profiles")
        return bool(self.get_option("strict") if value is None else value)

    def _without_names_taken_elsewhere(self, hosts: list[dict], strict: bool) -> list[dict]:
        """The profiles whose host, guest and virtual group names no earlier inventory source
        (another LCFG source, a static inventory) has taken.

        Ansible merges a name given twice into one host or group: a profile could give its
        guest the name of another source's host (and take that host's place in the plays),
        or join its guests to another source's group and read that group's variables.
        """
        taken_hosts = set(self.inventory.hosts)
        taken_groups = set(self.inventory.groups) - {"all", "ungrouped", HYPERVISORS, GUESTS}
        kept = []
        for host in hosts:
            clashes = sorted(
                ({host["name"], *host.get("guests", {})} & taken_hosts) | (set(host.get("groups", {})) & taken_groups)
            )
            if not clashes:
                kept.append(host)
                continue
            message = (
                f"{host.get('path') or host['name']}: {', '.join(clashes)} already named by "
                "another inventory source; a profile cannot take or join another source's "
                "hosts and groups"
            )
            if strict:
                raise AnsibleParserError(f"LCFG profile errors (strict_profiles: true):\n{message}")
            self.display.warning(f"{message} (profile left out)")
        return kept

    def _construct(self, host: str) -> None:
        if not (self.get_option("compose") or self.get_option("groups") or self.get_option("keyed_groups")):
            return
        strict = bool(self.get_option("strict"))
        variables = self.inventory.get_host(host).get_vars()
        try:
            self._set_composite_vars(self.get_option("compose"), variables, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), variables, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, host, strict=strict)
        except AnsibleError as exc:
            raise AnsibleParserError(str(exc)) from exc
