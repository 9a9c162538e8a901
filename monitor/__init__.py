"""Dash monitor for on-call staff: fraud rates, headline figures and the alert queue.

Layers: ``aggregation`` (pure state), ``consumer`` (Kafka feed), ``figures`` (pure plots),
``layout`` and ``callbacks`` (the page), ``app`` (``create_app``), ``server`` (``run_monitor``).
"""
