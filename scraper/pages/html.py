"""Cheap HTML querying for page objects: lxml trees and CSS queries compiled once, at import.

Parsel compiles and evaluates a query through several layers on every call; with ~20 queries per
product page that was a fifth of a crawl's CPU. The queries here are translated by parsel's own CSS
translator (so ``::text`` and ``::attr()`` mean what they mean in Scrapy) and compiled to
``lxml.etree.XPath`` objects once.
"""

from __future__ import annotations

from typing import TypeAlias

from lxml import etree
from parsel.csstranslator import css2xpath

Node: TypeAlias = etree._Element


def parse_html(text: str) -> Node:
    """The document's root element, parsed leniently the way parsel does (NULs dropped)."""
    body = text.strip().replace("\x00", "").encode("utf-8") or b"<html/>"
    parser = etree.HTMLParser(recover=True, encoding="utf-8", huge_tree=True)
    root = etree.fromstring(body, parser=parser)
    return root if root is not None else etree.fromstring(b"<html/>", parser=parser)


class Css:
    """A compiled CSS query: ``Css("h1::text").all(node)`` → strings, ``.first(node)`` → str | None;
    element queries return elements."""

    __slots__ = ("query", "_xpath")

    def __init__(self, query: str) -> None:
        self.query = query
        self._xpath = etree.XPath(css2xpath(query), smart_strings=False)

    def all(self, *nodes: Node) -> list:
        if len(nodes) == 1:
            return self._xpath(nodes[0])
        return [found for node in nodes for found in self._xpath(node)]

    def first(self, *nodes: Node):  # noqa: ANN201 - a str or an element, like the query
        found = self.all(*nodes)
        return found[0] if found else None
