"""Interchangeable executors behind :mod:`eager_rt.executor` (installed as ``eager_rt.backends``).

One module per backend; each implements ``Backend``/``Session`` and nothing
else. Heavy SDKs are imported inside the module that needs them, so importing
this package costs nothing.
"""
