"""Private machinery under the kernels."""
