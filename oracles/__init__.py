"""Oracles: wrappers around references the project did not write (libsrtp, tshark).

They are used by tests and benchmarks, as independent checks and speed references, and
never by library code.
"""
