# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Reader for compiled LCFG XML profiles (reference lcfg.md section 2).

Elements are matched by local name, so any ``profile-1.x`` / ``cfg-1.x`` namespace
(or none) is accepted. ``profile/lcfg/components/<comp>/<resource>``:

* a resource with ``cfg:template`` (or ``cfg:type="list"``) is a list: its value is
  the space-joined tags of its ``*_RECORD`` children (``cfg:name``, a leading ``_``
  stripped when the name has two or more characters); each child of a record is a
  sub-resource named by the list's template whose base name (part before the first
  ``_$``) is the child's element name, the right-most ``$`` taking the innermost tag;
  records nest. A list without records falls back to its text (whitespace-normalised).
* an empty element (no text, no children) is unset: no resource.
* ``cfg:type="boolean"`` values are canonicalised to ``yes`` / ``""``;
  ``cfg:type="integer"`` values are checked.
* ``cfg:derivation`` is kept (else ``<profile path>:<element line>``); ``cfg:context`` is inherited
  and ANDed, evaluated with no client contexts; only active resources are merged:
  identical duplicates collapse, the higher priority wins, equal priorities with
  different values are an error.

The parser does no network access, no external entities or DTD loading, and refuses
huge trees. Only LcfgError comes out.
"""

from __future__ import annotations

import os
import re

try:
    from lxml import etree
except ImportError as exc:  # a documented requirement: read_xml_profile names it
    etree = None
    _LXML_IMPORT_ERROR: str | None = str(exc)
else:
    _LXML_IMPORT_ERROR = None

from .errors import LcfgError, excerpt
from .mutations import valid_name, valid_tag
from .profile import ContextError, Profile, Resource, combine_contexts, context_priority
from .source import MAX_VALUE_LENGTH

__all__ = ["read_xml_profile", "profile_name_from_path", "xml_host_name", "MAX_XML_SIZE", "MAX_XML_ELEMENTS"]

MAX_XML_SIZE = 16 * 1024 * 1024
#: resource elements read from one profile (a 60 MB profile of tiny elements took 3.4 GB)
MAX_XML_ELEMENTS = 250_000
MAX_TEMPLATE_DEPTH = 5

_HOST_PATH = re.compile(r"(?:^|/)([^/]+)/XML/profile\.xml\Z")
_TEMPLATE = re.compile(r"[A-Za-z][A-Za-z0-9_$]*\Z")
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", ""}


def profile_name_from_path(path: str) -> str | None:
    """``<host>`` of a ``.../<host>/XML/profile.xml`` path or URL, else None."""
    m = _HOST_PATH.search(path.split("?", 1)[0].split("#", 1)[0])
    return m.group(1) if m else None


def xml_host_name(path: str) -> str:
    """The host name of an XML profile at ``path`` (file or URL): the ``<host>`` of a
    ``.../<host>/XML/profile.xml`` path, else the file stem."""
    name = profile_name_from_path(path)
    if name is None:
        base = os.path.basename(path.split("?", 1)[0].split("#", 1)[0].rstrip("/")) or path
        name = os.path.splitext(base)[0] or base
    return name


def _local(el: etree._Element) -> str:
    tag = el.tag
    return tag.rsplit("}", 1)[-1] if tag[0] == "{" else tag


def _cfg(el: etree._Element) -> dict[str, str]:
    """Namespaced attributes by local name (``cfg:name`` -> ``name``)."""
    out: dict[str, str] = {}
    for key, value in el.attrib.items():
        if key[0] == "{":
            out[key.rsplit("}", 1)[1]] = value
    return out


def _elements(el: etree._Element) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str)]


def _text(el: etree._Element) -> str:
    parts = [el.text or ""]
    for c in el:
        if c.tag is etree.Entity:
            parts.append(c.text or "")
        parts.append(c.tail or "")
    return "".join(parts)


class _Templates:
    """The templates of one list: field -> split template parts.

    Problems raise ValueError (the caller adds file, line and resource).
    """

    def __init__(self, spec: str) -> None:
        self.by_field: dict[str, list[str]] = {}
        for tmpl in spec.split():
            if not _TEMPLATE.match(tmpl):
                raise ValueError(f"invalid template {tmpl!r}")
            n = tmpl.count("$")
            if n < 1 or n > MAX_TEMPLATE_DEPTH:
                raise ValueError(f"template {tmpl!r} needs 1 to {MAX_TEMPLATE_DEPTH} '$' placeholders")
            i = tmpl.find("_$")
            field = tmpl[:i] if i >= 0 else tmpl[: tmpl.find("$")].rstrip("_")
            self.by_field.setdefault(field, tmpl.split("$"))

    def name(self, field: str, tags: list[str]) -> str:
        parts = self.by_field.get(field)
        if parts is None:
            # no template for this field: the conventional name [inference]
            return "_".join([field] + tags)
        n = len(parts) - 1
        if len(tags) < n:
            raise ValueError(f"insufficient tags for template {'$'.join(parts)!r}: {tags}")
        use = tags[len(tags) - n :]
        out = [parts[0]]
        for tag, part in zip(use, parts[1:], strict=True):
            out.append(tag)
            out.append(part)
        return "".join(out)


_TEMPLATE_CACHE: dict[str, _Templates] = {}


class _Reader:
    def __init__(self, path: str) -> None:
        self.path = path
        # (comp, res) -> list of (priority, value, derivation, context, line)
        self.entries: dict[tuple[str, str], list[tuple[int, str, str, str | None, int | None]]] = {}
        self.elements = 0

    def error(self, el: etree._Element, resource: str | None, problem: str) -> LcfgError:
        return LcfgError(problem, file=self.path, line=el.sourceline, resource=resource)

    def component(self, el: etree._Element) -> None:
        comp = _local(el)
        if not valid_name(comp):
            raise LcfgError(f"invalid component name {excerpt(comp)}", file=self.path, line=el.sourceline)
        ctx = _cfg(el).get("context") or None
        for child in el:
            if isinstance(child.tag, str):
                self.walk(child, comp, None, [], ctx)

    def walk(
        self, el: etree._Element, comp: str, templates: _Templates | None, tags: list[str], ctx: str | None
    ) -> None:
        """Read one resource element (and, for a list, the records below it) into ``entries``."""
        self.elements += 1
        if self.elements > MAX_XML_ELEMENTS:
            raise self.error(el, None, f"more than {MAX_XML_ELEMENTS} resource elements")
        attrs = _cfg(el) if el.attrib else {}
        res = self._resource_name(el, comp, templates, tags)
        entity = next((c for c in el if c.tag is etree.Entity), None)
        if entity is not None:  # DTD entities are never loaded: the value would keep "&name;"
            raise self.error(
                el,
                f"{comp}.{res}",
                f"entity reference {excerpt(entity.text)} is not "
                "expanded: XML profiles may use only the predefined entities (&amp; "
                "&lt; &gt; &quot; &apos;) and character references (&#65;)",
            )
        if attrs:
            local_ctx = attrs.get("context")
            if local_ctx:
                ctx = combine_contexts(ctx, local_ctx)
            typ = attrs.get("type", "").lstrip("%").strip()
            base_type = re.split(r"[\s(:]", typ, maxsplit=1)[0] if typ else ""
            tmpl = attrs.get("template")
        else:
            base_type = ""
            tmpl = None
        if tmpl is not None or base_type == "list":
            value = self._list_value(el, comp, res, tmpl or "", tags, ctx)
        else:
            value = self._scalar_value(el, comp, res, base_type)
        if value is None:
            return  # an empty element or list: unset
        if len(value) > MAX_VALUE_LENGTH:
            raise self.error(
                el, f"{comp}.{res}", f"value of {len(value)} characters: longer than the limit of {MAX_VALUE_LENGTH}"
            )
        deriv = attrs.get("derivation") or (f"{self.path}:{el.sourceline}" if el.sourceline else self.path)
        if ctx is not None:
            try:
                prio = context_priority(ctx)
            except ContextError as exc:
                raise self.error(el, f"{comp}.{res}", str(exc)) from None
            if prio < 0:
                return
        else:
            prio = 0
        self.entries.setdefault((comp, res), []).append((prio, value, deriv, ctx, el.sourceline))

    def _resource_name(self, el: etree._Element, comp: str, templates: _Templates | None, tags: list[str]) -> str:
        """The resource an element stands for: its own name, or inside a record the name the
        list's template makes of the field and the record tags."""
        field = _local(el)
        if templates is None:
            res = field
        else:
            try:
                res = templates.name(field, tags)
            except ValueError as exc:
                raise self.error(el, f"{comp}.{field}", str(exc)) from None
        if not valid_name(res):
            raise self.error(el, f"{comp}.{field}", f"invalid resource name {excerpt(res)}")
        return res

    def _list_value(
        self, el: etree._Element, comp: str, res: str, spec: str, tags: list[str], ctx: str | None
    ) -> str | None:
        """A list resource: the tags of its ``*_RECORD`` children (whose fields are walked as
        resources of their own), else its text; None when empty."""
        own = _TEMPLATE_CACHE.get(spec)
        if own is None:
            try:
                own = _Templates(spec)
            except ValueError as exc:
                raise self.error(el, f"{comp}.{res}", str(exc)) from None
            if len(_TEMPLATE_CACHE) > 4096:
                _TEMPLATE_CACHE.clear()
            _TEMPLATE_CACHE[spec] = own
        record_tags: list[str] = []
        for child in el:
            if not isinstance(child.tag, str):
                continue
            if _local(child).endswith("_RECORD"):
                cattrs = _cfg(child)
                raw = cattrs.get("name")
                if raw is None:
                    raise self.error(child, f"{comp}.{res}", f"record <{_local(child)}> without cfg:name")
                tag = raw[1:] if len(raw) >= 2 and raw[0] == "_" else raw
                if not valid_tag(tag):
                    raise self.error(child, f"{comp}.{res}", f"invalid tag {excerpt(raw)} in cfg:name")
                record_tags.append(tag)
                rctx = combine_contexts(ctx, cattrs.get("context") or None)
                sub_tags = tags + [tag]
                for grand in child:
                    if isinstance(grand.tag, str):
                        self.walk(grand, comp, own, sub_tags, rctx)
            else:
                self.walk(child, comp, own, tags, ctx)
        if record_tags:
            return " ".join(record_tags)
        return " ".join(_text(el).split()) or None

    def _scalar_value(self, el: etree._Element, comp: str, res: str, base_type: str) -> str | None:
        """A plain resource's value (booleans as ``yes``/``""``, integers checked); None when empty."""
        if len(el) == 0 and not el.text:
            return None
        value = _text(el) if len(el) else el.text or ""
        if base_type == "boolean":
            low = value.strip().lower()
            if low in _TRUE:
                return "yes"
            if low in _FALSE:
                return ""
            raise self.error(el, f"{comp}.{res}", f"invalid boolean value {excerpt(value)}")
        if base_type == "integer" and not _INTEGER.match(value.strip()):
            raise self.error(el, f"{comp}.{res}", f"invalid integer value {excerpt(value)}")
        return value

    def profile(self, name: str | None) -> Profile:
        resources: dict[str, dict[str, Resource]] = {}
        for (comp, res), entries in self.entries.items():
            best = entries[0]
            for entry in entries[1:]:
                if entry[0] > best[0]:
                    best = entry
                elif entry[0] == best[0] and entry[1] != best[1]:
                    raise LcfgError(
                        f"conflicting values {excerpt(best[1])} (line {best[4]}) and {excerpt(entry[1])} "
                        f"with equal context priority {entry[0]}",
                        file=self.path,
                        line=entry[4],
                        resource=f"{comp}.{res}",
                    )
            resources.setdefault(comp, {})[res] = Resource(best[1], best[2], best[3])
        if name is None:
            name = xml_host_name(self.path)
        node = resources.get("profile", {}).get("node")
        node_name = node.value.strip() if node is not None and node.value else ""
        # The host name comes from the file's path or URL, which the site chose; profile.node is
        # the profile author's and may only confirm it (else it could take another host's name).
        if node_name and node_name != name and not name.startswith(node_name + "."):
            line = next(e[4] for e in self.entries[("profile", "node")] if e[1] == node.value)
            raise LcfgError(
                f"profile.node {excerpt(node_name)} does not match the host name {excerpt(name)} "
                "taken from the file's path; rename the file or fix profile.node",
                file=self.path,
                line=line,
                resource="profile.node",
            )
        return Profile(name, self.path, resources)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


def read_xml_profile(path: str, data: bytes | None = None, name: str | None = None) -> Profile:
    """Read one XML profile from ``path`` (or from ``data`` if given).

    Name: ``name``, else the ``<host>`` of a ``.../<host>/XML/profile.xml`` path or URL,
    else the file stem; a ``profile.node`` resource must agree with it (equal, or the name's
    first DNS label), else an LcfgError at its line. Only LcfgError comes out.
    """
    if etree is None:
        raise LcfgError(
            "the Python library lxml is required to read XML profiles "
            f"(install python3-lxml or pip install lxml): {_LXML_IMPORT_ERROR}",
            file=path,
        )
    if data is None:
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_XML_SIZE + 1)
        except OSError as exc:
            raise LcfgError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    elif isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_XML_SIZE:
        raise LcfgError(f"XML profile larger than {MAX_XML_SIZE} bytes", file=path)
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise LcfgError(f"invalid XML: {excerpt(exc.msg, 200)}", file=path, line=exc.lineno or None) from None
    except (ValueError, etree.LxmlError) as exc:
        raise LcfgError(f"invalid XML: {excerpt(exc, 200)}", file=path) from None
    if root is None or not isinstance(root.tag, str) or _local(root) != "profile":
        got = _local(root) if root is not None and isinstance(root.tag, str) else "nothing"
        raise LcfgError(
            f"not an LCFG XML profile: the root element is <{got}>, not <profile>",
            file=path,
            line=getattr(root, "sourceline", None),
        )
    lcfg = next((c for c in _elements(root) if _local(c) == "lcfg"), None)
    if lcfg is None:
        raise LcfgError("not an LCFG XML profile: no <lcfg> element under <profile>", file=path, line=root.sourceline)
    comps = next((c for c in _elements(lcfg) if _local(c) == "components"), None)
    if comps is None:
        raise LcfgError(
            "not an LCFG XML profile: no <components> element under <lcfg>", file=path, line=lcfg.sourceline
        )
    reader = _Reader(path)
    comp = None
    try:
        for comp in _elements(comps):
            reader.component(comp)
        return reader.profile(name)
    except LcfgError:
        raise
    except Exception as exc:  # a reader bug or an exhausted resource: still an LcfgError
        raise LcfgError(
            f"cannot read the profile: {type(exc).__name__}: {excerpt(exc, 200)}",
            file=path,
            line=getattr(comp, "sourceline", None),
        ) from exc
