"""Option profiles that together make every action of the model exist and every option
branch of the actions run, shared by the tests that read each action under several
profiles (test_differential, test_model_roles)."""

from __future__ import annotations

PROFILES: dict[str, dict[str, str]] = {
    # Acknowledge exists only with the MIKEY response
    "after_acks": {"mikey_response": "required", "activation": "after_acks"},
    "variants": {
        "kek_scope": "common",
        "membership_rekey": "both",
        "mki_in_srtp": "optional",
        "replay_protection": "none",
        "unknown_mki_resync": "wait",
        "second_service_auth": "authorise_only",
        "activation": "immediate",
        "mikey_response": "optional",
    },
    # the replay cache and window (and LoseReplayCache) exist only with timestamps, and
    # StopListening/StartListening only with the fetch time as an SRTP index
    "timestamp_index": {"replay_protection": "timestamp", "fetch_time_unit": "sequence_number"},
}
