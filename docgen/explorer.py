"""The trace explorer: a counterexample's states, step by step, as an HTML table.

The input is the trace in the Informal Trace Format (:mod:`mbmssec.model.itf`), as the
results document stores it.  Each row is one entry of the state (``holds(UE1, T0)``,
``active(S0)``, ``clock``) that changes somewhere in the trace; each column is a state,
headed by the step that led to it; a cell whose value differs from the state before is
marked (class ``changed``).  Entries that never change are counted under the table, not
shown.  Names are the trace's own (``UE0``, ``S0``, ``T1``, ``P0``).
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from mbmssec.model.itf import ACTION_VAR

_ID = "#meta"


def _value(v: Any) -> str:
    """An ITF value as the table shows it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict) and "#bigint" in v:
        return str(v["#bigint"])
    if isinstance(v, dict) and "#tup" in v:
        return ", ".join(_value(x) for x in v["#tup"])
    return str(v)


def _entries(name: str, v: Any) -> dict[str, str]:
    """The entries of one variable: ``name`` itself, or ``name(args)`` per key of a map."""
    if isinstance(v, dict) and "#map" in v:
        return {f"{name}({_value(k)})": _value(x) for k, x in v["#map"]}
    return {name: _value(v)}


def flatten(state: Mapping[str, Any]) -> dict[str, str]:
    """Every entry of one ITF state (the action variable and ``#meta`` left out)."""
    out: dict[str, str] = {}
    for name, v in state.items():
        if name in (_ID, ACTION_VAR):
            continue
        out.update(_entries(name, v))
    return out


def _step_label(state: Mapping[str, Any], index: int) -> str:
    meta = state.get(_ID, {})
    step = meta.get("step") if isinstance(meta, dict) else None
    if index == 0:
        return "initial"
    return f"{index}: {step if isinstance(step, str) else state.get(ACTION_VAR, '?')}"


def state_table(itf: Mapping[str, Any]) -> str:
    """The explorer's HTML for one trace (one line: it is inlined in reStructuredText)."""
    states = list(itf.get("states", []))
    if not states:
        return ""
    flat = [flatten(s) for s in states]
    keys = list(flat[0])
    for f in flat[1:]:
        keys += [k for k in f if k not in keys]
    changing = [k for k in keys if len({f.get(k) for f in flat}) > 1]
    loop = itf.get("loop")
    head = "".join(
        f'<th class="{"loop" if isinstance(loop, int) and i >= loop else ""}">'
        f"{escape(_step_label(s, i))}</th>"
        for i, s in enumerate(states)
    )
    rows = []
    for k in changing:
        cells = []
        for i, f in enumerate(flat):
            v = f.get(k, "")
            changed = i > 0 and v != flat[i - 1].get(k, "")
            cls = ' class="changed"' if changed else ""
            cells.append(f"<td{cls}>{escape(v)}</td>")
        rows.append(f"<tr><th>{escape(k)}</th>{''.join(cells)}</tr>")
    constant = len(keys) - len(changing)
    note = (
        f"{len(changing)} entries change (marked where they do); {constant} never change "
        "and are not shown."
    )
    if isinstance(loop, int):
        note += f" The states from {loop} on repeat forever (a lasso)."
    return (
        '<details class="mbmssec-states"><summary>States at every step</summary>'
        f'<div class="mbmssec-states-scroll"><table><thead><tr><th>entry</th>{head}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></div><p>{escape(note)}</p></details>"
    )
