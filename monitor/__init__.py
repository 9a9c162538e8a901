"""Dash monitor for on-call staff: fraud rates, headline figures, the alert queue with analyst
verdicts, block and allow lists, Excel/PDF reports, behind a login.

Layers: ``state`` (pure, thread-safe stores, one per concept: decisions per minute, alerts,
verdicts, lists), ``timerange``, ``formatting``, ``figures``, ``reports``, ``verdict_labels`` and
``list_changes`` (pure builders), ``users`` (pure: accounts and password checks), ``consumer``,
``feedback`` and ``lists_feed`` (the Kafka edges: the feed reads decisions, alerts and labels; the
publishers write analyst labels and list changes), ``auth`` (Flask login, server-side sessions),
``views`` (the page, one module per section with its layout and its callbacks), ``app``
(``create_app``), ``server`` (``run_monitor``), ``wsgi`` (gunicorn).

Every page and Dash route needs a login; ``/healthz``, ``/metrics`` and ``/api/summary`` stay open
for machines (bind the monitor to a private address). Users: ``FRAUD_MONITOR_USERS``; without it the
demo logins analyst/analyst and viewer/viewer are used and announced at start-up (local demo only).
"""
