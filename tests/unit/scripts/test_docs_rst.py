"""scripts/docs-rst.py: the Markdown guides become RST that antsibull-docs and Sphinx accept."""

import importlib.util
import pathlib
import shutil

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("docs_rst", ROOT / "scripts" / "docs-rst.py")
docs_rst = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs_rst)

needs_pandoc = pytest.mark.skipif(shutil.which("pandoc") is None, reason="pandoc missing (scripts/bootstrap.sh)")


def test_check_reports_unlisted_and_missing_guides():
    assert docs_rst.check(["a", "b"], {"a", "b"}) == []
    assert docs_rst.check(["a", "gone"], {"a", "new"}) == [
        "docs/gone.md is listed in docs/docsite/extra-docs.yml but does not exist",
        "docs/new.md is not listed in docs/docsite/extra-docs.yml",
    ]


def test_every_guide_in_docs_is_listed():
    listed = docs_rst.listed_guides(yaml.safe_load((ROOT / "docs" / "docsite" / "extra-docs.yml").read_text()))
    assert docs_rst.check(listed, {p.stem for p in (ROOT / "docs").glob("*.md")}) == []


def test_unlabelled_code_blocks_are_reported_with_their_line():
    text = "# T\n\n```yaml\na: 1\n```\n\n```\n*/15 * * * * root run\n```\n"
    assert docs_rst.unlabelled_fences("scale.md", text) == [
        "docs/scale.md:7: code block names no language (```text, ```console, ```yaml ...)"
    ]


def test_every_code_block_in_the_guides_names_its_language():
    assert [e for p in (ROOT / "docs").glob("*.md") for e in docs_rst.unlabelled_fences(p.name, p.read_text())] == []


@needs_pandoc
def test_convert_labels_headings_and_links_guides(tmp_path):
    md = tmp_path / "inventory.md"
    md.write_text(
        "# The `x` plugin\n\nSee [resources.md](resources.md) and [the limits](lcfg-language.md#limits)"
        " and [below](#two-words).\n\n## Two words\n\n| a | b |\n|---|---|\n| `long literal text` | c |\n\n"
        "```mermaid\nflowchart LR\n```\n"
    )
    rst = docs_rst.convert(md)
    prefix = "ansible_collections.lcfg.xen.docsite."
    assert f".. _{prefix}inventory:\n\nThe ``x`` plugin\n================\n" in rst
    assert f".. _{prefix}inventory.two-words:\n\nTwo words\n---------\n" in rst
    assert f":ref:`{prefix}resources`" in rst  # a bare file name: Sphinx shows the guide's title
    assert f":ref:`the limits <{prefix}lcfg-language.limits>`" in rst
    assert f":ref:`below <{prefix}inventory.two-words>`" in rst
    assert "``long literal text``" in rst  # not split across table lines
    assert "mermaid" not in rst and "::\n\n   flowchart LR" in rst
    assert ".. _two-words:" not in rst  # no pandoc-made labels that clash between guides


@needs_pandoc
def test_the_committed_rst_guides_are_current():
    """docs/docsite/rst is committed (a plain collection build ships it): it must be what
    scripts/docs-rst.py makes of docs/*.md now."""
    listed = docs_rst.listed_guides(yaml.safe_load((ROOT / "docs" / "docsite" / "extra-docs.yml").read_text()))
    stale = [
        name
        for name in listed
        if docs_rst.convert(ROOT / "docs" / f"{name}.md")
        != (ROOT / "docs" / "docsite" / "rst" / f"{name}.rst").read_text()
    ]
    assert stale == [], f"run scripts/docs-rst.py (make docs): {stale} differ from docs/*.md"
