# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""http(s) profiles: conditional requests against the on-disk store, parallel fetching."""

from __future__ import annotations

import json
import os
import stat
import threading
import time

import pytest

from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.http_store import HttpStore, StoredAnswer, body_digest
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
        assert [r.digest for r in again] == [r.digest for r in first] and first[0].digest
        site.change("h3", "changed")
        third = load_profiles(urls, "/", timeout=5, opener=opener(), store=store)
    assert [r.profile.value("xen", "a") for r in third] == ["h0", "h1", "h2", "changed", "h4", "h5"]
    assert (site.full, site.not_modified) == (7, 11)
    assert third[3].digest != first[3].digest and third[2].digest == first[2].digest
    assert stat.S_IMODE(os.stat(store.directory).st_mode) == 0o700


def test_without_validators_nothing_is_kept_and_every_read_is_full(tmp_path):
    site = Site(["a", "b"], validator=None)
    store = HttpStore(str(tmp_path / "store"))
    with serving(site) as base:
        urls = [f"{base}/{name}/XML/profile.xml" for name in ("a", "b")]
        for _round in range(2):
            loaded = load_profiles(urls, "/", timeout=5, opener=opener(), store=store)
            assert [r.digest for r in loaded] == [body_digest(site.bodies[f"/{n}/XML/profile.xml"]) for n in "ab"]
    assert (site.full, site.not_modified) == (4, 0)
    assert os.listdir(store.directory) == []


def test_a_lost_or_torn_stored_answer_is_asked_for_in_full(tmp_path):
    site = Site(["a"])
    store = HttpStore(str(tmp_path / "store"))
    with serving(site) as base:
        url = f"{base}/a/XML/profile.xml"
        [first] = load_profiles([url], "/", timeout=5, opener=opener(), store=store)
        body = next(p for p in os.listdir(store.directory) if p.endswith(".xml"))
        with open(os.path.join(store.directory, body), "r+b") as handle:
            handle.write(b"X")  # same size, other content: another writer's body, say
        [second] = load_profiles([url], "/", timeout=5, opener=opener(), store=store)
    assert first.profile.value("xen", "a") == second.profile.value("xen", "a") == "a"
    assert site.full == 2  # the torn answer was never used: no validators sent for it


def test_a_304_for_other_validators_is_asked_for_again_in_full(tmp_path):
    """Some servers compare only the date: a 304 whose ETag is not the kept one does not
    confirm the kept body."""
    state = {"body": PROFILE_XML % b"old", "tag": '"v1"', "asked": []}

    def answer(handler):
        conditional = "If-None-Match" in handler.headers
        state["asked"].append(conditional)
        if conditional:  # answers 304 to any conditional request, with the current ETag
            return 304, {"ETag": state["tag"]}, b""
        return 200, {"ETag": state["tag"]}, state["body"]

    store = HttpStore(str(tmp_path / "store"))
    with serving(answer) as base:
        url = f"{base}/a/XML/profile.xml"
        [first] = load_profiles([url], "/", timeout=5, opener=opener(), store=store)
        state["body"], state["tag"] = PROFILE_XML % b"new", '"v2"'
        [second] = load_profiles([url], "/", timeout=5, opener=opener(), store=store)
        [third] = load_profiles([url], "/", timeout=5, opener=opener(), store=store)
    assert first.profile.value("xen", "a") == "old"
    assert second.profile.value("xen", "a") == third.profile.value("xen", "a") == "new"
    # the 304 for "v2" did not confirm "v1": asked again in full; then "v2" is confirmed
    assert state["asked"] == [False, True, False, True]


def test_a_304_to_a_request_that_was_not_conditional_is_an_error():
    with serving(lambda handler: (304, {}, b"")) as base:
        [result] = load_profiles([f"{base}/a/XML/profile.xml"], "/", timeout=5, opener=opener())
    assert result.profile is None and "HTTP error 304" in result.error.problem


def test_a_store_that_cannot_be_written_costs_only_full_answers(tmp_path, monkeypatch):
    site = Site(["a"])
    store = HttpStore(str(tmp_path / "store"))

    def refuse(path, data):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(store, "_write", refuse)
    with serving(site) as base:
        url = f"{base}/a/XML/profile.xml"
        for _round in range(2):
            [result] = load_profiles([url], "/", timeout=5, opener=opener(), store=store)
            assert result.error is None and result.profile.value("xen", "a") == "a"
    assert (site.full, site.not_modified) == (2, 0)


def test_a_stored_answer_names_its_url_and_its_body(tmp_path):
    store = HttpStore(str(tmp_path / "store"))
    store.remember("http://a/x.xml", b"<x/>", '"1"', None)
    kept = store.stored("http://a/x.xml")
    assert kept == StoredAnswer(body_digest(b"<x/>"), '"1"', None, store._paths("http://a/x.xml")[0])
    assert kept.read_body() == b"<x/>"
    assert kept.request_headers() == {"If-None-Match": '"1"'}
    assert kept.still_current('"1"', None) and not kept.still_current('"2"', None)
    # a weak tag confirms the same tag; a strong one only the same strong one (RFC 9111 4.3.4)
    assert kept.still_current('W/"1"', None) and not kept.still_current('W/"2"', None)
    store.remember("http://a/w.xml", b"<w/>", 'W/"1"', None)
    weak = store.stored("http://a/w.xml")
    assert weak.still_current('W/"1"', None) and not weak.still_current('"1"', None)
    # another URL whose files would be these (a collision, a copied store) is not served them
    meta = next(p for p in os.listdir(store.directory) if p.endswith(".json"))
    os.replace(os.path.join(store.directory, meta), store._paths("http://b/y.xml")[1])
    assert store.stored("http://b/y.xml") is None


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


def test_one_index_file_holds_every_kept_answer_for_the_next_read(tmp_path):
    directory = str(tmp_path / "store")
    site = Site(["a", "b", "c"])
    with serving(site, keep_alive=True) as base:
        urls = [f"{base}/{name}/XML/profile.xml" for name in ("a", "b", "c")]
        fetch_profiles(urls, timeout=5, opener=opener(), store=HttpStore(directory))
        index = os.path.join(directory, "index.json")
        written = os.stat(index).st_mtime_ns
        # the next read finds every answer in the index, without the per-URL files
        for url in urls:
            os.unlink(HttpStore(directory)._paths(url)[1])
        got = fetch_profiles(urls, timeout=5, opener=opener(), store=HttpStore(directory))
    assert all(isinstance(got[url][0], StoredAnswer) for url in urls)
    assert (site.full, site.not_modified) == (3, 3)
    assert os.stat(index).st_mtime_ns == written  # nothing changed: not written again


def indexed_store(tmp_path):
    """A store directory keeping answers for http://a/x.xml and http://a/y.xml, indexed."""
    directory = str(tmp_path / "store")
    store = HttpStore(directory)
    store.remember("http://a/x.xml", b"<x/>", '"1"', None)
    store.remember("http://a/y.xml", b"<y/>", '"2"', None)
    store.save_index()
    return directory


def test_an_index_entry_that_is_not_valid_for_its_url_is_read_from_the_url_file(tmp_path):
    directory = indexed_store(tmp_path)
    index = os.path.join(directory, "index.json")
    with open(index, encoding="utf-8") as handle:
        entries = json.load(handle)
    entries["http://a/x.xml"]["url"] = "http://elsewhere/x.xml"  # copied from another store
    entries["http://a/y.xml"]["sha256"] = "short"
    with open(index, "w", encoding="utf-8") as handle:
        json.dump(entries, handle)
    found = HttpStore(directory).stored_many(["http://a/x.xml", "http://a/y.xml", "http://a/none.xml"])
    assert found["http://a/x.xml"].etag == '"1"' and found["http://a/y.xml"].etag == '"2"'
    assert found["http://a/none.xml"] is None


def test_saving_the_index_keeps_other_urls_and_drops_answers_no_longer_kept(tmp_path):
    directory = indexed_store(tmp_path)
    second = HttpStore(directory)  # another inventory, sharing the store
    second.stored_many(["http://a/y.xml"])
    second.remember("http://a/y.xml", b"<y2/>", None, None)  # now served without validators
    second.save_index()
    assert set(HttpStore(directory)._read_index()) == {"http://a/x.xml"}
