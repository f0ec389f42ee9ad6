"""Sphinx configuration of the mbmssec documentation.

The pages under ``_generated/`` are written by :mod:`mbmssec.docgen.sphinx_ext` when the
build starts, from ``spec/``, ``model/``, ``traceability.toml`` and the checker's
``results.json`` (``mbmssec_results``: set with ``-D mbmssec_results=DIR`` or the
``MBMSSEC_RESULTS`` environment variable; ``mbmssec docs`` does both for you).
Build strictly: ``sphinx-build -W --keep-going -n -b html docs OUT``.

The generator sits below the command line and never imports it: the command-line
reference page is rendered from the parser this file describes (``mbmssec_cli``).
"""

from __future__ import annotations

import os
from pathlib import Path

from mbmssec import __version__
from mbmssec.cli import build_parser
from mbmssec.docgen import needs as docs_needs
from mbmssec.docgen.page_cli import describe_parser

project = "mbmssec"
author = "mbmssec contributors"
copyright = "mbmssec contributors"
version = release = __version__

extensions = ["myst_parser", "sphinx_needs", "mbmssec.docgen.sphinx_ext"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_generated/msc", "Thumbs.db", ".DS_Store"]
root_doc = "index"
nitpicky = True
smartquotes = False
suppress_warnings: list[str] = []

mbmssec_results = os.environ.get(
    "MBMSSEC_RESULTS", str(Path(__file__).resolve().parent / "_build" / "results")
)
# Plain data (not the parser itself), so Sphinx can keep it in its environment.
mbmssec_cli = describe_parser(build_parser(rst=True), origin="mbmssec.cli.build_parser")

# sphinx-needs: object types, fields and links come from the generator, which is the
# only place that writes objects of these types.
needs_types = docs_needs.NEEDS_TYPES
needs_fields = docs_needs.NEEDS_FIELDS
needs_links = docs_needs.NEEDS_LINKS
needs_id_regex = docs_needs.NEEDS_ID_REGEX
needs_id_required = True
needs_table_style = "TABLE"
needs_warnings_always_warn = True
needs_role_need_max_title_length = -1
needs_role_need_template = "{{ title }}"
needs_build_json = False

myst_heading_anchors = 3

# Everything is served from the built folder: the default theme and local assets only.
html_theme = "alabaster"
html_theme_options = {
    "page_width": "1320px",
    "sidebar_width": "240px",
    "body_max_width": "none",
    "font_family": "sans-serif",
    "head_font_family": "sans-serif",
    "code_font_family": "monospace",
    "show_powered_by": False,
}
html_static_path = ["_static"]
html_css_files = ["mbmssec.css"]
html_title = "mbmssec: MBMS key management, specified and checked"
html_show_sourcelink = False
html_copy_source = False
