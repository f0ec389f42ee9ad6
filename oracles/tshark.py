"""Reading tshark's ``-T json`` output as ordered (field, value) pairs, for oracle tests.

tshark decodes what the project writes (MIKEY messages, pcap files) with a dissector
written independently of it. Parse with
``json.loads(text, object_pairs_hook=lambda pairs: pairs)`` so repeated field names
survive, then :func:`flatten` each frame.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Fields", "flatten"]

#: The leaf (field, value) pairs of one frame, in document order.
Fields = list[tuple[str, str]]


def flatten(node: Any, out: Fields) -> None:
    """Leaf (field, value) pairs of tshark's JSON in document order, duplicates kept."""
    if isinstance(node, list) and all(isinstance(x, tuple) for x in node):
        for key, value in node:
            if isinstance(value, list) and value and all(isinstance(x, tuple) for x in value):
                flatten(value, out)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, list):
                        flatten(item, out)
                    else:
                        out.append((key, str(item)))
            else:
                out.append((key, str(value)))
    elif isinstance(node, list):
        for item in node:
            flatten(item, out)
