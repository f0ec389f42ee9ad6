"""Small reStructuredText writers the pages are assembled from: escaped text, headings,
sphinx-needs objects, list tables, status badges and collapsed blocks."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mbmssec.docgen.needs import slug

_RST_SPECIAL = re.compile(r"([\\`*_|\[\]<>])")


def esc(text: str) -> str:
    """Plain text made safe as reStructuredText inline content (on one line)."""
    return _RST_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def heading(text: str, char: str, over: bool = False) -> str:
    """A section title underlined (and with ``over``, overlined) with ``char``."""
    line = char * max(len(text), 3)
    return (f"{line}\n{text}\n{line}\n" if over else f"{text}\n{line}\n") + "\n"


def indent(text: str, n: int = 3) -> str:
    """``text`` indented by ``n`` spaces (blank lines left empty), as directive content."""
    pad = " " * n
    return "\n".join(pad + line if line.strip() else "" for line in text.splitlines())


def need(
    directive: str,
    title: str,
    need_id: str,
    *,
    status: str | None = None,
    fields: Mapping[str, Any] | None = None,
    links: Mapping[str, Sequence[str]] | None = None,
    content: str = "",
) -> str:
    """A sphinx-needs object (its options on one line each; empty fields and links are
    left out)."""
    out = [f".. {directive}:: {' '.join(title.split())}", f"   :id: {need_id}"]
    if status:
        out.append(f"   :status: {status}")
    for key, value in (fields or {}).items():
        if value is None or value == "" or value == ():
            continue
        out.append(f"   :{key}: {' '.join(str(value).split())}")
    for key, targets in (links or {}).items():
        uniq = list(dict.fromkeys(targets))
        if uniq:
            out.append(f"   :{key}: {', '.join(uniq)}")
    text = "\n".join(out) + "\n"
    if content.strip():
        text += "\n" + indent(content.strip()) + "\n"
    return text + "\n"


def list_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str = "",
    widths: Sequence[int] | None = None,
    css: str = "",
) -> str:
    """A ``list-table`` with a header row (empty text if there are no rows); cells may
    span several lines."""
    if not rows:
        return ""
    out = [f".. list-table:: {title}".rstrip(), "   :header-rows: 1"]
    if widths:
        out.append(f"   :widths: {' '.join(str(w) for w in widths)}")
    if css:
        out.append(f"   :class: {css}")
    out.append("")
    for row in [list(header), *[list(r) for r in rows]]:
        for i, cell in enumerate(row):
            lines = (cell or " ").splitlines() or [" "]
            out.append(("   * - " if i == 0 else "     - ") + lines[0])
            out.extend("       " + ln for ln in lines[1:])
    return "\n".join(out) + "\n\n"


def status_role_name(status: str) -> str:
    """The custom role that shows a status as a coloured badge (``status-tested-only``)."""
    return "status-" + slug(status).replace("_", "-")


def status_role(status: str) -> str:
    """A status shown as a badge (the page must declare the role, see
    :func:`role_declarations`)."""
    return f":{status_role_name(status)}:`{status}`"


def role_declarations(statuses: Sequence[str]) -> str:
    """The role directives a page needs before it uses :func:`status_role`."""
    return "".join(f".. role:: {status_role_name(s)}\n" for s in statuses) + "\n"


def raw_details(summary: str, body: str) -> str:
    """A collapsed HTML ``<details>`` block around reStructuredText ``body``."""
    summary = summary.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        f'.. raw:: html\n\n   <details class="mbmssec-source"><summary>{summary}'
        f"</summary>\n\n{body.rstrip()}\n\n.. raw:: html\n\n   </details>\n\n"
    )
