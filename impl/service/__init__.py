"""The sans-I/O BM-SC and UE cores (TS 33.246 clause 6.2), their SQLite store, the event
log and the fetch-spreading strategies.  Time and randomness come in as arguments; the
cores return typed outcomes and events, never HTTP statuses or bodies."""
