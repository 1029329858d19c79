"""Conformance suites, one per role: subclass one in your plugin's tests and provide its fixture.

=========== ==============================================
role        suite
=========== ==============================================
runner      :class:`gaia_core.testing.conformance.runner.RunnerTests`
benchmark   :class:`gaia_core.testing.conformance.benchmark.BenchmarkTests`
prover      :class:`gaia_core.testing.conformance.prover.ProverTests`
transport   :class:`gaia_core.testing.conformance.transport.TransportTests`
queue       :class:`gaia_core.testing.conformance.queue.QueueTests`
=========== ==============================================
"""
