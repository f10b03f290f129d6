"""The stock HA scenarios, shipped with the plugin.

From a checkout: `pytest harness/scenarios --topology ha-2node`. Installed:
`pytest --pyargs harness.scenarios --topology my-cluster.yaml`.
"""
