"""Message sequence charts of model traces, as stand-alone SVG (no external assets).

One lifeline for the BM-SC, one per UE of the trace's universe, one for the attacker.
Each step is one row: messages between the BM-SC and a UE (registration and MIKEY
delivery, TS 33.246 6.2.2 steps 2-4), multicast SRTP packets (step 7) as an arrow
across every UE, and attacker actions (replay, eavesdropping) as dashed arrows.
"""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape

from mbmssec.model.dsl import Sort
from mbmssec.model.machine import Model
from mbmssec.model.trace import Trace, effect_note

_COL = 190
_ROW = 34
_TOP = 70
_LEFT = 110


def _ue_param(model: Model, action: str, args: tuple[Any, ...]) -> int | None:
    act = model.action(action)
    for p, v in zip(act.params, args, strict=True):
        if p.sort is Sort.UE:
            return int(v)
    return None


def trace_svg(trace: Trace, model: Model, title: str = "") -> str:
    """The SVG text of ``trace``'s message sequence chart under ``model``."""
    states = trace.replay(model)
    n_ue = trace.universe.ue
    lanes = ["BM-SC"] + [f"UE{i}" for i in range(n_ue)] + ["attacker"]
    x = {name: _LEFT + i * _COL for i, name in enumerate(lanes)}
    width = _LEFT + len(lanes) * _COL
    height = _TOP + (len(trace.steps) + 2) * _ROW + 20
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#333"/></marker></defs>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
    ]
    if title:
        out.append(f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(title)}</text>')
    bottom = height - 20
    for name, cx in x.items():
        out.append(
            f'<rect x="{cx - 45}" y="{_TOP - 32}" width="90" height="22" rx="4" '
            'fill="#eef" stroke="#336"/>'
        )
        out.append(f'<text x="{cx}" y="{_TOP - 16}" text-anchor="middle">{escape(name)}</text>')
        out.append(
            f'<line x1="{cx}" y1="{_TOP - 10}" x2="{cx}" y2="{bottom}" stroke="#999" '
            'stroke-dasharray="4 3"/>'
        )
    for i, st in enumerate(trace.steps, start=1):
        y = _TOP + i * _ROW
        act = model.action(st.action)
        label = Trace.describe(model, st)
        note = effect_note(model, states[i - 1], states[i], st)
        text = f"{i}. {label}" + (f"  {note}" if note else "")
        ue = _ue_param(model, st.action, st.args)
        ue_x = x[f"UE{ue}"] if ue is not None else None
        if st.action == "Send":
            x1, x2 = x["BM-SC"], x[f"UE{n_ue - 1}"] + 40
            out.append(_arrow(x1, x2, y, "#264"))
            out.append(_label((x1 + x2) / 2, y - 5, text))
        elif act.actor == "attacker" and ue_x is not None and st.action in ("Replay", "Eavesdrop"):
            out.append(_arrow(x["attacker"], ue_x, y, "#a22", dashed=True))
            out.append(_label((x["attacker"] + ue_x) / 2, y - 5, text))
        elif st.action in ("Register", "DeliveryLost", "Authenticate") and ue_x is not None:
            out.append(_arrow(ue_x, x["BM-SC"], y - 4, "#333"))
            if st.action == "Register":
                out.append(_arrow(x["BM-SC"], ue_x, y + 4, "#336"))
            out.append(_label((ue_x + x["BM-SC"]) / 2, y - 9, text))
        else:
            lane = {"BM-SC": "BM-SC", "attacker": "attacker"}.get(act.actor)
            cx = x[lane] if lane else (ue_x if ue_x is not None else x["BM-SC"])
            out.append(f'<circle cx="{cx}" cy="{y}" r="4" fill="#333"/>')
            out.append(f'<text x="{cx + 8}" y="{y + 4}">{escape(text)}</text>')
    if trace.loop is not None:
        # a lasso: bracket the loop's rows on the left and say that they repeat
        y1 = _TOP + (trace.loop + 1) * _ROW - _ROW / 2
        y2 = _TOP + len(trace.steps) * _ROW + _ROW / 3
        out.append(
            f'<path d="M24,{y1} L14,{y1} L14,{y2} L24,{y2}" fill="none" stroke="#a00" '
            'stroke-width="2" marker-start="url(#arrow)"/>'
        )
        out.append(
            f'<text x="8" y="{y1 - 4}" fill="#a00" font-size="11">loop (repeats forever)</text>'
        )
    if trace.violates:
        y = _TOP + (len(trace.steps) + 1) * _ROW
        verb = "never reaches the goal of" if trace.loop is not None else "violates"
        out.append(
            f'<text x="10" y="{y}" fill="#a00" font-weight="bold">{verb} property '
            f"{escape(', '.join(map(str, trace.violates)))}</text>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _arrow(x1: float, x2: float, y: float, colour: str, dashed: bool = False) -> str:
    dash = ' stroke-dasharray="5 3"' if dashed else ""
    return (
        f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="{colour}" '
        f'stroke-width="1.5" marker-end="url(#arrow)"{dash}/>'
    )


def _label(cx: float, y: float, text: str) -> str:
    return f'<text x="{cx}" y="{y}" text-anchor="middle">{escape(text)}</text>'


def svg_from_json(data: dict[str, Any], model: Model, title: str = "") -> str:
    """JSON in (as :meth:`Trace.to_json` writes it), SVG out."""
    return trace_svg(Trace.from_json(data), model, title)


def svg_from_text(text: str, model: Model, title: str = "") -> str:
    return svg_from_json(json.loads(text), model, title)
