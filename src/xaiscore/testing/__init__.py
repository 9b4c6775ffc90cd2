"""Testing support for users of xaiscore.

:mod:`xaiscore.testing.strategies` holds hypothesis strategies (it needs
``hypothesis``, which the ``test`` extra installs); it is not imported here,
so ``import xaiscore.testing`` works without hypothesis.
"""
