"""The trace explorer of the docs (docgen/explorer.py): a counterexample's states as a
table, changed cells marked, constant entries counted, names as in the trace."""

from __future__ import annotations

import re

from mbmssec.docgen.explorer import state_table

# A hand-written ITF document of three states: UE0 installs T0 at step 2, the clock
# moves at step 1; `active` never changes.
ITF = {
    "#meta": {"format": "ITF"},
    "vars": ["clock", "active", "holds", "mbt::actionTaken"],
    "states": [
        {
            "#meta": {"index": 0},
            "mbt::actionTaken": "init",
            "clock": {"#bigint": "0"},
            "active": {"#map": [["S0", "T0"]]},
            "holds": {"#map": [[{"#tup": ["UE0", "T0"]}, False], [{"#tup": ["UE1", "T0"]}, False]]},
        },
        {
            "#meta": {"index": 1, "step": "Tick()"},
            "mbt::actionTaken": "Tick",
            "clock": {"#bigint": "1"},
            "active": {"#map": [["S0", "T0"]]},
            "holds": {"#map": [[{"#tup": ["UE0", "T0"]}, False], [{"#tup": ["UE1", "T0"]}, False]]},
        },
        {
            "#meta": {"index": 2, "step": "Register(UE0, S0, f=1)"},
            "mbt::actionTaken": "Register",
            "clock": {"#bigint": "1"},
            "active": {"#map": [["S0", "T0"]]},
            "holds": {"#map": [[{"#tup": ["UE0", "T0"]}, True], [{"#tup": ["UE1", "T0"]}, False]]},
        },
    ],
}


def _rows(html: str) -> dict[str, list[tuple[str, bool]]]:
    rows = {}
    for name, cells in re.findall(r"<tr><th>([^<]*)</th>(.*?)</tr>", html):
        rows[name] = [
            (value, cls == ' class="changed"')
            for cls, value in re.findall(r"<td( class=\"changed\")?>([^<]*)</td>", cells)
        ]
    return {name: cells for name, cells in rows.items() if cells}  # not the header


def test_changing_entries_are_rows_and_changed_cells_are_marked() -> None:
    html = state_table(ITF)
    rows = _rows(html)
    assert set(rows) == {"clock", "holds(UE0, T0)"}
    assert rows["clock"] == [("0", False), ("1", True), ("1", False)]
    assert rows["holds(UE0, T0)"] == [("false", False), ("false", False), ("true", True)]
    assert "<th>1: Tick()</th>" in html.replace(' class=""', "")
    assert "2: Register(UE0, S0, f=1)" in html
    assert "2 entries change (marked where they do); 2 never change" in html


def test_a_lasso_marks_the_loop_and_an_empty_trace_renders_nothing() -> None:
    html = state_table({**ITF, "loop": 1})
    assert html.count('class="loop"') == 2
    assert "from 1 on repeat forever" in html
    assert state_table({"states": []}) == ""
