"""The monitor's page, one module per section, each with its layout and its callbacks together.

Every section module holds its component ids, a function building its part of the layout, its
callback bodies as plain functions over the state (tests call them directly), and a
``register_*_callbacks`` that only wires those bodies to Dash. ``shared`` holds the ids and styles
several sections use; ``page`` puts the sections together into the page, and wires what spans
sections (the URL, the header). The sections, top to bottom: ``toolbar`` (who is signed in,
exports, dark mode), ``headline``, ``rates`` (the fraud-rate chart), ``time_range``, ``at_risk``,
``alert_queue``, ``alert_detail`` (with the verdict buttons), ``lists`` (block and allow lists).
"""
