"""Pure-Python reference implementations of the native hot path (``gaia_native``).

``hashing`` (BLAKE3 content ids, RFC 9162-style Merkle trees) and ``scheduling`` (the task
scheduler) have the same names, signatures and results as the Rust module. They are used when the
native module cannot be loaded, and by the parity tests on the shared golden vectors
(``native/tests/golden.json``).
"""
