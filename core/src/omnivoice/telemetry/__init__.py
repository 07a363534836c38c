"""What operators see of the gateway: metrics, traces and logs (``docs/operations.md``).

- :mod:`~omnivoice.telemetry.metrics`: Prometheus metrics with ``prometheus_client``
  (multiprocess mode under ``omnivoice serve --workers N``);
- :mod:`~omnivoice.telemetry.tracing`: OpenTelemetry spans, through the optional API;
- :mod:`~omnivoice.telemetry.logs`: the call's ids on every record, JSON lines, no secrets;
- :mod:`~omnivoice.telemetry.redact`: how secrets are found and taken out;
- :mod:`~omnivoice.telemetry.context`: which call the running code belongs to;
- :mod:`~omnivoice.telemetry.timeline`: a call's events as turns, latencies and barge-ins.

The built-in plugin ``omnivoice.default_plugins.telemetry`` connects them to every call
through the observer hooks. Importing this package imports none of its modules.
"""
