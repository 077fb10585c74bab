"""Tierserve's Grafana dashboards as code, the generator of their JSON and the snapshot
renderer (PNG from live Prometheus data, for people without Grafana).

``names`` (the recording rules' names the dashboards and ``dashboards/rules/`` share)
needs nothing beyond the standard library; the dashboard modules need
``grafana-foundation-sdk`` and the snapshot ``matplotlib``: the ``dashboards`` extra.
"""
