"""`make docs` builds the antsibull-docs HTML site, and its pages render in a real browser.

Builds the site once with scripts/docs.sh (what `make docs` runs), then loads pages in
headless Chromium (Debian package chromium) and checks the rendered DOM, not the files.
"""

import fcntl
import os
import pathlib
import shutil
import subprocess
import time

import lxml.html
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
HTML = ROOT / "build" / "docs" / "build" / "html"
COLLECTION = HTML / "collections" / "lcfg" / "xen"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site():
    """Build the site once per test run: under pytest-xdist the other workers wait and reuse it."""
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID", f"pid-{os.getpid()}")
    stamp = ROOT / "build" / "docs-test-run"
    stamp.parent.mkdir(exist_ok=True)
    with open(ROOT / "build" / "docs-test.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (stamp.is_file() and stamp.read_text() == run_id and (HTML / "index.html").is_file()):
            stamp.unlink(missing_ok=True)
            started = time.monotonic()
            subprocess.run(["bash", str(ROOT / "scripts" / "docs.sh")], cwd=ROOT, check=True, stdin=subprocess.DEVNULL)
            print(f"docs build: {time.monotonic() - started:.1f}s")
            stamp.write_text(run_id)
    return HTML


def render(page: pathlib.Path) -> lxml.html.HtmlElement:
    """The DOM Chromium builds for page (after scripts ran), parsed."""
    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing (Debian package chromium; scripts/bootstrap.sh installs it)"
    assert page.is_file(), page
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    return lxml.html.fromstring(dom)


def text(el) -> str:
    for link in el.xpath(".//a[contains(@class, 'headerlink')]"):  # the pilcrow after headings
        link.drop_tree()
    return " ".join(el.text_content().split())


def guides() -> list[str]:
    extra = yaml.safe_load((ROOT / "docs" / "docsite" / "extra-docs.yml").read_text())
    return [name for section in extra["sections"] for name in section["toctree"]]


def test_collection_index_lists_modules_and_guides(site):
    dom = render(COLLECTION / "index.html")
    assert "Lcfg.Xen" in text(dom.find(".//title"))
    links = {}
    for a in dom.iter("a"):
        links.setdefault(a.get("href", "").split("#")[0], set()).add(text(a))
    modules = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
    assert modules
    for module in modules:
        assert f"{module}_module.html" in links, module
        assert any(t.startswith(module) for t in links[f"{module}_module.html"]), links[f"{module}_module.html"]
    assert "lcfg_inventory.html" in links
    for guide in guides():
        title = (ROOT / "docs" / f"{guide}.md").read_text().splitlines()[0].lstrip("# ").replace("`", "")
        assert title in links.get(f"docsite/{guide}.html", set()), guide
    links_yml = yaml.safe_load((ROOT / "docs" / "docsite" / "links.yml").read_text())
    for link in links_yml["extra_links"]:
        assert link["description"] in links.get(link["url"], set())
        assert (COLLECTION / link["url"]).is_file(), link["url"]


def test_module_page_renders_options(site):
    dom = render(COLLECTION / "xen_domain_module.html")
    title = text(dom.find(".//h1"))
    assert title.startswith("lcfg.xen.xen_domain module – Converge one guest")
    for option in ("memory", "vcpus", "name", "state"):
        anchor = dom.get_element_by_id(f"parameter-{option}")
        assert text(anchor.getparent()).startswith(option), option
    memory_row = text(dom.get_element_by_id("parameter-memory").getparent().getparent().getparent())
    assert "Memory in MiB" in memory_row, memory_row
    body = text(dom.body)
    assert "Examples" in body and "Return Values" in body


def test_guide_page_renders_with_cross_references(site):
    dom = render(COLLECTION / "docsite" / "inventory.html")
    assert text(dom.find(".//h1")) == "The lcfg.xen.lcfg inventory plugin"
    hrefs = [a.get("href", "") for a in dom.iter("a")]
    assert any(h.startswith("resources.html#") for h in hrefs), "link to the resources guide"
    assert dom.xpath("//div[contains(@class,'highlight-yaml')]"), "the YAML example is highlighted"
