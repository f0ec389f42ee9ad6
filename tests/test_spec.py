"""The requirements data loads, and bad data is rejected with a message naming file and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mbmssec.spec.loader import SPEC_DIR, SpecError, load_profile, load_spec, load_spec_from

ISSUE_OPTIONS = {
    "kek_scope": {"per_ue", "common"},
    "kek_derivation": {"ck", "derived"},
    "second_service_auth": {"reauthenticate", "authorise_only"},
    "fetch_time_unit": {"time", "sequence_number"},
    "tek_lifetime": {"absent", "present"},
    "mikey_response": {"none", "optional", "required"},
    "activation": {"after_fetch_window", "after_acks", "immediate"},
    "membership_rekey": {"leave", "join", "both", "never"},
    "replay_protection": {"counter", "timestamp", "none"},
    "mki_in_srtp": {"mandatory", "optional"},
    "fetch_spreading": {"none", "random_interval", "scheduled_slots", "multi_key"},
    "tek_protection": {"mikey_kek", "tls"},
}


def test_every_open_point_of_the_text_is_an_option() -> None:
    spec = load_spec()
    for name, values in ISSUE_OPTIONS.items():
        assert set(spec.options[name].values) == values, name
    assert spec.options["kek_scope"].baseline == "per_ue"
    assert spec.options["mki_in_srtp"].baseline == "mandatory"


def test_every_ffs_clause_names_an_option_and_clause_numbers_are_from_the_text() -> None:
    spec = load_spec()
    numbers = {c.clause for c in spec.clauses.values()}
    assert numbers == {
        "3.1",
        "6.2.1",
        "6.2.2",
        "6.2.3.1",
        "6.2.3.2",
        "6.2.3.3",
        "6.3",
        "discussion",
    }
    for clause in spec.clauses.values():
        if clause.kind == "ffs":
            assert clause.option in spec.options


def _copy(tmp_path: Path) -> Path:
    for name in ("clauses.toml", "options.toml"):
        shutil.copy(SPEC_DIR / name, tmp_path / name)
    return tmp_path


def test_duplicate_clause_id_is_rejected(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    text = (d / "clauses.toml").read_text()
    start = text.index("\n[[clause]]")
    first = text[start : text.index("\n[[clause]]", start + 1)]
    (d / "clauses.toml").write_text(text + "\n" + first + "\n")
    with pytest.raises(SpecError, match=r"clauses.toml: clause 3.1/TEK: duplicate clause id"):
        load_spec_from(d)


def test_dangling_clause_reference_is_rejected(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    text = (d / "options.toml").read_text().replace('"6.2.1/KEK-PER-UE"', '"6.2.1/NOPE"', 1)
    (d / "options.toml").write_text(text)
    with pytest.raises(SpecError, match=r"option kek_scope.clauses: dangling clause id"):
        load_spec_from(d)


def test_bad_baseline_value_is_rejected(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    text = (d / "options.toml").read_text().replace('baseline = "per_ue"', 'baseline = "x"')
    (d / "options.toml").write_text(text)
    with pytest.raises(SpecError, match=r"option kek_scope.baseline"):
        load_spec_from(d)


def test_a_model_label_is_modelled_or_neutral_with_its_reason(tmp_path: Path) -> None:
    spec = load_spec()
    assert spec.options["kek_derivation"].neutral
    assert spec.options["kek_derivation"].model_note.startswith("the abstract model")
    note = spec.options["second_service_auth"].model_note
    assert not spec.options["second_service_auth"].neutral and "bounded search" in note
    d = _copy(tmp_path)
    text = (d / "options.toml").read_text().replace('model = "modelled"', 'model = "maybe"', 1)
    (d / "options.toml").write_text(text)
    with pytest.raises(SpecError, match=r"option kek_scope.model: expected 'modelled'"):
        load_spec_from(d)


def test_syntax_error_names_the_file(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    (d / "options.toml").write_text("[[option]\n")
    with pytest.raises(SpecError, match=r"options.toml: syntax"):
        load_spec_from(d)


def test_unknown_option_and_value_in_profile(tmp_path: Path) -> None:
    spec = load_spec()
    with pytest.raises(SpecError, match=r"options.nope: unknown option"):
        spec.profile({"nope": "x"})
    with pytest.raises(SpecError, match=r"unknown value 'sometimes'"):
        spec.profile({"mki_in_srtp": "sometimes"})
    f = tmp_path / "p.toml"
    f.write_text('title = "t"\n[options]\nactivation = "after_acks"\n')
    with pytest.raises(SpecError, match=r"requires mikey_response in \{required\}"):
        load_profile(f)


def test_profile_reads_unknown_option_name_loudly() -> None:
    prof = load_spec().baseline()
    assert prof["activation"] == "after_fetch_window"
    with pytest.raises(SpecError, match="does not declare"):
        prof["activaton"]
