"""Python backends of the native hot path (``gaia_native``), same names, signatures and results.

``hashing``: BLAKE3 from the ``blake3`` wheel, RFC 9162-style Merkle roots in Python; the fallback
when the native module cannot be loaded. ``scheduling``: the pure-Python task scheduler, the parity
oracle the native one is tested against (``native/tests/golden.json``) and its fallback.
"""
