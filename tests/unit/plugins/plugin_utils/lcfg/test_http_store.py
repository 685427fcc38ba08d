# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""http(s) profiles: conditional requests against the on-disk store, parallel fetching."""

from __future__ import annotations

import os
import stat
import threading
import time

import pytest

from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.http_store import HttpStore, validator_key
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.loader import fetch_profiles, load_profiles
from http_serving import PROFILE_XML, opener, serving


class Site:
    """Profiles by path with an ETag (or Last-Modified) each; counts full and 304 answers."""

    def __init__(self, names, validator="etag"):
        self.bodies = {f"/{name}/XML/profile.xml": PROFILE_XML % name.encode() for name in names}
        self.versions = dict.fromkeys(self.bodies, 1)
        self.validator = validator
        self.full = 0
        self.not_modified = 0
        self.lock = threading.Lock()
        self.active = 0
        self.most_active = 0

    def change(self, name, value):
        path = f"/{name}/XML/profile.xml"
        self.bodies[path] = PROFILE_XML % value.encode()
        self.versions[path] += 1

    def __call__(self, handler):
        with self.lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        time.sleep(0.05)  # long enough for parallel requests to overlap
        with self.lock:
            self.active -= 1
        version = self.versions[handler.path]
        tag = f'"v{version}"'
        stamp = f"Mon, 0{version} Jan 2024 00:00:00 GMT"
        if self.validator == "etag" and handler.headers.get("If-None-Match") == tag:
            self.not_modified += 1
            return 304, {"ETag": tag}, b""
        if self.validator == "last-modified" and handler.headers.get("If-Modified-Since") == stamp:
            self.not_modified += 1
            return 304, {"Last-Modified": stamp}, b""
        self.full += 1
        headers = {"etag": {"ETag": tag}, "last-modified": {"Last-Modified": stamp}}.get(self.validator, {})
        return 200, headers, self.bodies[handler.path]


@pytest.mark.parametrize("validator", ["etag", "last-modified"])
def test_an_unchanged_site_costs_one_304_per_profile_and_a_change_is_seen(tmp_path, validator):
    names = [f"h{index}" for index in range(6)]
    site = Site(names, validator)
    store = HttpStore(str(tmp_path / "store"))
    with serving(site) as base:
        urls = [f"{base}/{name}/XML/profile.xml" for name in names]
        first = load_profiles(urls, "/", timeout=5, opener=opener(), store=store)
        assert [r.profile.value("xen", "a") for r in first] == names
        assert (site.full, site.not_modified) == (6, 0)
        again = load_profiles(urls, "/", timeout=5, opener=opener(), store=store)
        assert [r.profile.value("xen", "a") for r in again] == names
        assert (site.full, site.not_modified) == (6, 6)
        assert [r.validator for r in again] == [r.validator for r in first] and first[0].validator
        site.change("h3", "changed")
        third = load_profiles(urls, "/", timeout=5, opener=opener(), store=store)
    assert [r.profile.value("xen", "a") for r in third] == ["h0", "h1", "h2", "changed", "h4", "h5"]
    assert (site.full, site.not_modified) == (7, 11)
    assert third[3].validator != first[3].validator and third[2].validator == first[2].validator
    assert stat.S_IMODE(os.stat(store.directory).st_mode) == 0o700


def test_without_validators_nothing_is_kept_and_every_read_is_full(tmp_path):
    site = Site(["a", "b"], validator=None)
    store = HttpStore(str(tmp_path / "store"))
    with serving(site) as base:
        urls = [f"{base}/{name}/XML/profile.xml" for name in ("a", "b")]
        for _round in range(2):
            loaded = load_profiles(urls, "/", timeout=5, opener=opener(), store=store)
            assert [r.validator for r in loaded] == [None, None]
    assert (site.full, site.not_modified) == (4, 0)
    assert os.listdir(store.directory) == []


def test_a_lost_or_torn_stored_answer_is_asked_for_in_full(tmp_path):
    site = Site(["a"])
    store = HttpStore(str(tmp_path / "store"))
    with serving(site) as base:
        url = f"{base}/a/XML/profile.xml"
        [first] = load_profiles([url], "/", timeout=5, opener=opener(), store=store)
        body = next(p for p in os.listdir(store.directory) if p.endswith(".xml"))
        with open(os.path.join(store.directory, body), "ab") as handle:
            handle.write(b"<!-- torn -->")  # no longer the size recorded
        [second] = load_profiles([url], "/", timeout=5, opener=opener(), store=store)
    assert first.profile.value("xen", "a") == second.profile.value("xen", "a") == "a"
    assert site.full == 2  # the torn answer was never used: no validators sent for it


def test_a_stored_answer_names_its_url(tmp_path):
    store = HttpStore(str(tmp_path / "store"))
    store.remember("http://a/x.xml", b"<x/>", '"1"', None)
    assert store.stored("http://a/x.xml") == (b"<x/>", validator_key('"1"', None))
    assert store.request_headers("http://a/x.xml") == {"If-None-Match": '"1"'}
    # another URL whose files would be these (a collision, a copied store) is not served them
    meta = next(p for p in os.listdir(store.directory) if p.endswith(".json"))
    other = "http://b/y.xml"
    target = store._paths(other)[1]
    os.replace(os.path.join(store.directory, meta), target)
    assert store.stored(other) is None and store.request_headers(other) == {}


def test_urls_are_fetched_in_parallel_up_to_the_concurrency(tmp_path):
    names = [f"p{index}" for index in range(12)]
    site = Site(names)
    with serving(site) as base:
        urls = [f"{base}/{name}/XML/profile.xml" for name in names]
        got = fetch_profiles(urls, timeout=5, opener=opener(), concurrency=4)
        assert sorted(got) == sorted(urls) and all(isinstance(v, tuple) for v in got.values())
        assert 2 <= site.most_active <= 4
        site.most_active = 0
        fetch_profiles(urls, timeout=5, opener=opener(), concurrency=1)
        assert site.most_active == 1


def test_one_failing_url_is_its_own_error(tmp_path):
    site = Site(["ok"])
    with serving(site) as base:
        good = f"{base}/ok/XML/profile.xml"
        bad = f"{base}/missing/XML/profile.xml"
        got = fetch_profiles([good, bad], timeout=5, opener=opener())
    assert isinstance(got[good], tuple)
    assert got[bad].file == bad
