# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kept-alive connections for http(s) profile sources (plugin_utils/lcfg/http_pool.py)."""

from __future__ import annotations

import urllib.error

import pytest

from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.errors import LcfgError
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.http_pool import KeptConnections
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.loader import fetch_answer, fetch_profiles, fetch_url
from http_serving import PROFILE_XML, opener, serving


def profile(handler):
    if handler.path.startswith("/missing/"):
        return 404, {}, b"no such profile"
    return 200, {"ETag": '"1"'}, PROFILE_XML % handler.path.split("/")[1].encode()


def read_all(pool, url):
    answer = pool.open(url, {}, 5)
    try:
        return answer.read()
    finally:
        answer.close()


@pytest.mark.parametrize(("keep_alive", "connections"), [(True, 1), (False, 5)])
def test_requests_to_one_server_share_a_kept_alive_connection(keep_alive, connections):
    pool = KeptConnections(lambda: None)
    with serving(profile, keep_alive=keep_alive) as base:
        bodies = [read_all(pool, f"{base}/h{index}/XML/profile.xml") for index in range(5)]
        accepted = serving.connections[0]
    assert bodies == [PROFILE_XML % f"h{index}".encode() for index in range(5)]
    # a connection the server closes after its answer (HTTP/1.0) is not kept
    assert (pool.opened, accepted) == (connections, connections)


def test_the_inventory_opener_keeps_connections_across_parallel_fetches():
    urls_per_worker = 5
    with serving(profile, keep_alive=True) as base:
        urls = [f"{base}/h{index}/XML/profile.xml" for index in range(4 * urls_per_worker)]
        got = fetch_profiles(urls, timeout=5, opener=opener(), concurrency=4)
        accepted = serving.connections[0]
    assert all(got[url][0] == PROFILE_XML % url.split("/")[3].encode() for url in urls)
    assert 1 <= accepted <= 4  # at most one per worker, not one per URL


def test_an_idle_connection_the_server_closed_is_replaced():
    def closing(handler):
        handler.close_connection = True  # closes after answering, without saying so
        return profile(handler)

    pool = KeptConnections(lambda: None)
    with serving(closing, keep_alive=True) as base:
        first = read_all(pool, f"{base}/a/XML/profile.xml")
        second = read_all(pool, f"{base}/b/XML/profile.xml")
        accepted = serving.connections[0]
    assert (first, second) == (PROFILE_XML % b"a", PROFILE_XML % b"b")
    assert accepted == 2 and pool.opened == 2


def test_an_error_answer_is_an_http_error_and_the_connection_stays_usable():
    pool = KeptConnections(lambda: None)
    with serving(profile, keep_alive=True) as base:
        with pytest.raises(urllib.error.HTTPError) as raised:
            pool.open(f"{base}/missing/XML/profile.xml", {}, 5)
        after = read_all(pool, f"{base}/ok/XML/profile.xml")
        accepted = serving.connections[0]
    assert raised.value.code == 404 and raised.value.read() == b"no such profile"
    assert after == PROFILE_XML % b"ok" and accepted == 1


def test_a_body_left_unread_never_reaches_the_next_answer():
    big = b"<profile>" + b"x" * 100_000 + b"</profile>"

    def answer(handler):
        return (200, {}, big) if handler.path == "/big" else profile(handler)

    with serving(answer, keep_alive=True) as base:
        open_ = opener()
        with pytest.raises(LcfgError, match="larger than 1000 bytes"):
            fetch_answer(f"{base}/big", timeout=5, max_size=1000, opener=open_)
        assert fetch_url(f"{base}/next/XML/profile.xml", timeout=5, opener=open_) == PROFILE_XML % b"next"
        accepted = serving.connections[0]
    assert accepted == 2  # the half-read connection was dropped, not reused


def test_a_refused_connection_is_a_url_error():
    pool = KeptConnections(lambda: None)
    with serving(profile) as base:
        dead = base
    with pytest.raises(urllib.error.URLError):
        pool.open(f"{dead}/a/XML/profile.xml", {}, 5)
