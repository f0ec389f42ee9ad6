"""The documentation generator as a Sphinx extension, and the driver that writes every
generated page.

Nothing in the pages restates a clause, an option, an action or a property: they are
generated from ``spec/`` (clauses, options, proposals), ``model/`` (actions with their
clause tags and source, properties), the ``results.json`` that ``mbmssec check --out DIR``
writes (verdicts, solver times, counterexample traces, stamped with the model hash; read
through :mod:`mbmssec.proofs.results`) and ``docs/traceability.toml`` (which
implementation functions and tests serve which clause; clause ids in their docstrings
count too).  Message sequence charts are drawn from the counterexample traces at build
time.

``docs/conf.py`` loads this module (``extensions = [..., "mbmssec.docgen.sphinx_ext"]``);
it runs :func:`generate` when a build starts and turns every gap into a warning, so a
strict build (``-W``) fails on:

* a normative clause with no model element (no action or property tagged with it);
* a property with no proof result, a refuted property with no counterexample trace;
* proof results older than the model (``model_hash`` differs from the sources'), of
  another format version, or a trace that no longer replays on the model;
* a traceability entry that names no existing function, test or clause; and, through
  sphinx-needs and ``-n``, any broken link.

Sphinx settings: ``mbmssec_results`` (folder of ``results.json``), ``mbmssec_generate``
(``False``: build pages generated beforehand), ``mbmssec_junit`` (a JUnit report whose
outcomes the test objects show) and ``mbmssec_cli`` (the command line described by
:func:`mbmssec.docgen.page_cli.describe_parser`, for the reference page).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mbmssec.docgen.inputs import collect
from mbmssec.docgen.page_clauses import write_clause_pages, write_mutation_page
from mbmssec.docgen.page_cli import CliReference, write_cli_page
from mbmssec.docgen.page_code import write_implementation_page, write_traceability_page
from mbmssec.docgen.page_measured import write_measured_pages
from mbmssec.docgen.page_model import write_model_pages
from mbmssec.docgen.page_options import write_option_pages
from mbmssec.docgen.page_problems import write_problems_page
from mbmssec.docgen.page_proofs import write_proofs_page
from mbmssec.docgen.page_proposals import write_proposal_pages
from mbmssec.docgen.page_review import write_security_review_page
from mbmssec.docgen.paths import GENERATED, LINKS_FILE
from mbmssec.docgen.problems import DocsError, Problem, read_problems, write_problems
from mbmssec.docgen.site import Site
from mbmssec.model.dsl import Action
from mbmssec.model.properties import Property
from mbmssec.spec.loader import Spec, SpecError

if TYPE_CHECKING:
    from sphinx.application import Sphinx


def write_pages(site: Site, cli: CliReference | None) -> None:
    """Write every generated page, the problems page last, and remove stale files."""
    write_model_pages(site)
    write_option_pages(site)
    write_proposal_pages(site)
    write_clause_pages(site)
    write_mutation_page(site)
    write_implementation_page(site)
    write_proofs_page(site)
    write_traceability_page(site)
    write_security_review_page(site)
    write_cli_page(site, cli)
    write_measured_pages(site)
    write_problems_page(site)
    site.writer.prune()


def generate(
    srcdir: Path,
    results_dir: Path,
    *,
    actions: Sequence[Action] | None = None,
    properties: Sequence[Property] | None = None,
    spec: Spec | None = None,
    junit: Path | None = None,
    cli: CliReference | None = None,
) -> list[Problem]:
    """Write the generated pages into ``srcdir/_generated`` and return the problems that
    must fail a strict build (the coverage of clauses and properties is checked by
    sphinx-needs on the generated objects, see :mod:`mbmssec.docgen.needs`)."""
    inp = collect(
        results_dir,
        actions=actions,
        properties=properties,
        spec=spec,
        links_file=srcdir / LINKS_FILE,
        junit=junit,
    )
    write_pages(Site.create(inp, srcdir / GENERATED), cli)
    write_problems(srcdir, inp.problems)
    return inp.problems


# -- Sphinx extension ----------------------------------------------------------------------


def _results_dir(app: Sphinx) -> Path:
    srcdir = Path(app.srcdir)
    results = Path(app.config.mbmssec_results or (srcdir / "_build" / "results"))
    return results if results.is_absolute() else (srcdir / results).resolve()


def _on_builder_inited(app: Sphinx) -> None:
    """Generate the pages (unless ``mbmssec_generate`` is off) and warn of each problem."""
    from sphinx.util import logging

    logger = logging.getLogger("mbmssec.docs")
    srcdir = Path(app.srcdir)
    try:
        if app.config.mbmssec_generate:
            junit = Path(app.config.mbmssec_junit) if app.config.mbmssec_junit else None
            problems = generate(srcdir, _results_dir(app), junit=junit, cli=app.config.mbmssec_cli)
        else:
            problems = read_problems(srcdir)
    except (DocsError, SpecError) as exc:
        logger.warning(f"cannot generate the documentation: {exc}", type="mbmssec", subtype="input")
        return
    for p in problems:
        logger.warning(p.message, type="mbmssec", subtype="check", location=p.location)


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the settings, the generator (``builder-inited``) and the coverage rules."""
    from sphinx_needs.api.configuration import add_warning

    from mbmssec.docgen.needs import COVERAGE_CHECKS

    app.setup_extension("sphinx_needs")
    app.add_config_value("mbmssec_results", "", "env", types=(str,))
    app.add_config_value("mbmssec_generate", True, "env", types=(bool,))
    app.add_config_value("mbmssec_junit", "", "env", types=(str,))
    app.add_config_value("mbmssec_cli", None, "env", types=(CliReference,))
    app.connect("builder-inited", _on_builder_inited)
    for name, check in COVERAGE_CHECKS.items():
        add_warning(app, name, function=check)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
