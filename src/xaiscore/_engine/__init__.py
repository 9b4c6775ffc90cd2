"""Private machinery under the kernels: perturbation building, batching, noise, randomness, sorting.

Nothing here is public API. The engine imports only torch, numpy and :mod:`xaiscore._checks`;
:mod:`xaiscore.functional` builds the metric kernels on it (``docs/architecture.md``).
"""
