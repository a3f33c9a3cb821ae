"""XML parsing that never resolves external entities, loads DTDs or touches the network."""

from __future__ import annotations

from lxml import etree


def safe_parser(recover: bool = False) -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, recover=recover)


def parse_xml_bytes(data: bytes) -> etree._Element:
    """Parse bytes into an element; raises ``etree.XMLSyntaxError`` on malformed input."""
    return etree.fromstring(data, parser=safe_parser())
