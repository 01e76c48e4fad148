"""The engine's shared vocabulary: capabilities, network roles and the step context.

Everything here is plain data and small helpers; it imports nothing from ``train``,
``objectives``, ``nn``, ``plots`` or ``metrics``, which all import it.
"""
