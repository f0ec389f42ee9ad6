"""The build-problems page: every gap the strict build fails on, or a sentence saying
there is none."""

from __future__ import annotations

from mbmssec.docgen.inputs import coverage_findings
from mbmssec.docgen.rst import esc, heading
from mbmssec.docgen.site import Site


def write_problems_page(site: Site) -> None:
    """``problems``: the generator's problems and the coverage gaps sphinx-needs will
    report (written last, once every other page has added its problems)."""
    out = [heading("Build problems", "=")]
    findings = [p.message for p in site.inp.problems] + coverage_findings(site.inp)
    if not findings:
        out.append(
            "None: every normative clause has a model element, every property a "
            "proof result, every refuted property a counterexample, and the "
            "results are those of the current model.\n"
        )
    else:
        out.append("The strict build fails on each of these:\n\n")
        out += [f"* {esc(m)}\n" for m in findings]
    site.write("problems.rst", "".join(out) + "\n")
