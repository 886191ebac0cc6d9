"""Hierarchical keywords in XMP sidecar files, the way digiKam and Lightroom read them.

A keyword is a path of names, e.g. ("stylesearch", "similar-to", "cover.jpg"). It is written
twice: `digiKam:TagsList` ("a/b/c", digiKam's own field, read first) and
`lr:hierarchicalSubject` ("a|b|c", what most other programs read). An existing sidecar is
edited in place through a DOM, so every other field, namespace prefix and the xpacket
wrapper survive; the file is replaced atomically.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from xml.dom import minidom
from xml.parsers.expat import ExpatError

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XMLNS = "http://www.w3.org/2000/xmlns/"
# (namespace, preferred prefix, property, rdf container, separator between names)
FIELDS = (
    ("http://www.digikam.org/ns/1.0/", "digiKam", "TagsList", "Seq", "/"),
    ("http://ns.adobe.com/lightroom/1.0/", "lr", "hierarchicalSubject", "Bag", "|"),
)
_EMPTY = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about=""/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


def sidecar_path(image: str | os.PathLike) -> Path:
    """The sidecar digiKam reads for `image`: `name.xmp` when that file exists (Lightroom's
    naming), else `name.ext.xmp` (digiKam's default, also where it writes)."""
    image = Path(image)
    lightroom = image.with_suffix(".xmp")
    return lightroom if image.suffix and lightroom.exists() else image.with_name(image.name + ".xmp")


def keyword(*names: str) -> tuple[str, ...]:
    """A keyword from names; '/' and '|' inside a name would split it, so they become '_'."""
    return tuple(name.replace("/", "_").replace("|", "_").strip() or "_" for name in names)


def add_keywords(image: str | os.PathLike, keywords: Iterable[tuple[str, ...]]) -> Path:
    """Add `keywords` to the sidecar of `image` (created when missing); returns its path.
    Keywords already there are not repeated. ValueError if the sidecar is not XMP."""
    keywords, path = list(keywords), sidecar_path(image)
    try:
        doc = minidom.parse(str(path)) if path.exists() else minidom.parseString(_EMPTY.encode())
    except ExpatError as exc:
        raise ValueError(f"{path} is not valid XML ({exc})") from None
    rdf = _first(doc.getElementsByTagNameNS(RDF, "RDF"), path)
    for namespace, prefix, prop, container, separator in FIELDS:
        items = _container(doc, rdf, namespace, prefix, prop, container)
        present = {"".join(t.data for t in li.childNodes if t.nodeType == t.TEXT_NODE)
                   for li in items.getElementsByTagNameNS(RDF, "li")}
        for words in keywords:
            value = separator.join(words)
            if value not in present:
                li = doc.createElementNS(RDF, _qualified(rdf.prefix, "li"))
                li.appendChild(doc.createTextNode(value))
                items.appendChild(li)
                present.add(value)
    _write_atomically(path, doc.toxml(encoding="UTF-8"))
    return path


def _first(elements, path: Path):
    if not elements:
        raise ValueError(f"{path}: not an XMP packet (no rdf:RDF element)")
    return elements[0]


def _qualified(prefix: str | None, name: str) -> str:
    return f"{prefix}:{name}" if prefix else name


def _container(doc, rdf, namespace: str, prefix: str, prop: str, kind: str):
    """The rdf:Seq/Bag holding `prop`'s values, created (with its property) when missing."""
    descriptions = rdf.getElementsByTagNameNS(RDF, "Description")
    for description in descriptions:
        for element in description.getElementsByTagNameNS(namespace, prop):
            found = [c for c in element.childNodes if c.nodeType == c.ELEMENT_NODE and c.namespaceURI == RDF]
            if found:
                return found[0]
            items = doc.createElementNS(RDF, _qualified(rdf.prefix, kind))
            element.appendChild(items)
            return items
    if descriptions:
        description = descriptions[0]
    else:
        description = doc.createElementNS(RDF, _qualified(rdf.prefix, "Description"))
        description.setAttributeNS(RDF, _qualified(rdf.prefix, "about"), "")
        rdf.appendChild(description)
    while _namespace_of(description, prefix) not in (None, namespace):
        prefix += "_"  # the usual prefix means something else in this file
    if _namespace_of(description, prefix) is None:
        description.setAttributeNS(XMLNS, f"xmlns:{prefix}", namespace)
    element = doc.createElementNS(namespace, f"{prefix}:{prop}")
    items = doc.createElementNS(RDF, _qualified(rdf.prefix, kind))
    element.appendChild(items)
    description.appendChild(element)
    return items


def _namespace_of(element, prefix: str) -> str | None:
    """The namespace `prefix` stands for at `element` (minidom has no lookup of its own)."""
    while element is not None and element.nodeType == element.ELEMENT_NODE:
        if element.hasAttribute(f"xmlns:{prefix}"):
            return element.getAttribute(f"xmlns:{prefix}")
        element = element.parentNode
    return None


def _write_atomically(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder, so a crash never leaves half a sidecar;
    an existing sidecar keeps its permission bits, a new one gets the umask's."""
    if path.exists():
        mode = path.stat().st_mode & 0o7777
    else:
        umask = os.umask(0o022)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
