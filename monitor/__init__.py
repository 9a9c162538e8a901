"""Dash monitor for on-call staff: fraud rates, headline figures, the alert queue with analyst
verdicts, Excel/PDF reports, behind a login.

Layers: ``aggregation`` (pure state: decisions, alerts, verdicts), ``formatting``, ``figures``,
``reports`` and ``verdicts`` (pure builders), ``users`` (pure: accounts and password checks),
``consumer`` and ``feedback`` (the Kafka edges: the feed reads decisions, alerts and labels; the
publisher writes analyst labels), ``auth`` (Flask login, server-side sessions), ``layout`` and
``callbacks`` (the page; callbacks only wire), ``app`` (``create_app``), ``server`` (``run_monitor``).

Every page and Dash route needs a login; ``/healthz``, ``/metrics`` and ``/api/summary`` stay open
for machines (bind the monitor to a private address). Users: ``FRAUD_MONITOR_USERS``; without it the
demo logins analyst/analyst and viewer/viewer are used and announced at start-up (local demo only).
"""
