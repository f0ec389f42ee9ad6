"""The pages of the open points: each FFS option with the clauses it captures, the
actions that read it and what each of its values breaks; and the index of options."""

from __future__ import annotations

from mbmssec.docgen.fragments import STATUS_ROLES, reads_option
from mbmssec.docgen.needs import action_need_id, clause_need_id, option_need_id, property_need_id
from mbmssec.docgen.page_proposals import difference_text
from mbmssec.docgen.rst import esc, heading, list_table, need, status_role
from mbmssec.docgen.site import Site
from mbmssec.spec.loader import Option


def write_option_page(site: Site, opt: Option) -> None:
    """``options/NAME``: one option and what each of its values breaks."""
    inp = site.inp
    out = [STATUS_ROLES, heading(f"Option {opt.name}", "=")]
    out.append(
        need(
            "ffsoption",
            opt.name,
            option_need_id(opt.name),
            status="neutral" if opt.neutral else "modelled",
            fields={"values": ", ".join(opt.values), "baseline": opt.baseline, "model": opt.model},
            links={"captures": [clause_need_id(c) for c in opt.clauses]},
            content=esc(opt.doc),
        )
    )
    out.append(
        "Clauses: " + ", ".join(f":need:`{clause_need_id(c)}`" for c in opt.clauses) + ".\n\n"
    )
    if opt.neutral:
        out.append(f"The model is the same for every value: {esc(opt.model_note)}.\n\n")
    elif opt.model_note:
        out.append(f"What the model shows: {esc(opt.model_note)}.\n\n")
    readers = [a for a in inp.actions if reads_option(a, opt.name)]
    if readers:
        out.append(
            "Read by the actions "
            + ", ".join(f":need:`{action_need_id(a.name)}`" for a in readers)
            + ".\n\n"
        )
    if opt.requires:
        out.append(
            "Constraints: "
            + "; ".join(f"``{v}`` requires ``{r}``" for v, r in opt.requires.items())
            + ".\n\n"
        )
    out.append(heading("What each value breaks", "-"))
    for value in opt.values:
        out.append(_value_section(site, opt, value))
    site.write(f"options/{opt.name}.rst", "".join(out))


def _value_section(site: Site, opt: Option, value: str) -> str:
    """What one value of the option breaks: the baseline's refutations for the baseline
    value, the difference of each proposal that sets it otherwise."""
    baseline = value == opt.baseline
    out = [heading(f"{opt.name} = {value}" + (" (baseline)" if baseline else ""), "~")]
    res = site.inp.results
    if baseline:
        if res is not None:
            refuted = [v for v in res.baseline.verdicts.values() if v.verdict == "refuted"]
            out.append(
                "The baseline. Refuted there: "
                + (", ".join(f":need:`{property_need_id(v.number)}`" for v in refuted) or "nothing")
                + ".\n\n"
            )
        return "".join(out)
    setters = [p for p in site.inp.proposals if p.overrides.get(opt.name) == value]
    if not setters:
        out.append("No shipped proposal sets this value.\n\n")
    out += [difference_text(site, p, depth=1) for p in setters]
    return "".join(out)


def write_options_index(site: Site) -> None:
    """``options/index``: every option with its values and baseline."""
    inp = site.inp
    rows = [
        [
            f":doc:`{opt.name}`",
            ", ".join(f"``{v}``" for v in opt.values),
            f"``{opt.baseline}``",
            status_role("neutral" if opt.neutral else "modelled"),
            ", ".join(f":need:`{clause_need_id(c)}`" for c in opt.clauses),
        ]
        for opt in inp.spec.options.values()
    ]
    out = [
        STATUS_ROLES,
        heading("FFS options", "="),
        "Every open point of the text (an editor's note or FFS) is a named option "
        "(``spec/options.toml``); the baseline takes the value the text as written "
        "implies. Each page shows what the other values break.\n\n",
        list_table(["option", "values", "baseline", "model", "clauses"], rows),
        ".. toctree::\n   :hidden:\n\n",
    ]
    out += [f"   {name}\n" for name in inp.spec.options]
    site.write("options/index.rst", "".join(out) + "\n")


def write_option_pages(site: Site) -> None:
    """Every page of the options: each option, then the index."""
    for name in site.inp.spec.options:
        write_option_page(site, site.inp.spec.options[name])
    write_options_index(site)
