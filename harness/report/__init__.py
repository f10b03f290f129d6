"""Failover reports built from recorded histories.

results  - the versioned results.json (build, load, validate)
recheck  - recompute a result's figures from its history (the single source of truth)
facts    - package versions, resource-agent checksums and host facts of a run
timeline - the availability timeline picture of one scenario (matplotlib, SVG)
html     - the self-contained run report
compare  - what got better or worse between two runs
abcompare - several runs per side (A: stock agents, B: a patch): verdicts by abstats
abstats  - exact rank test, Hodges-Lehmann shift, bootstrap interval (stdlib only)
trend    - figures over many runs
session  - what the pytest plugin writes into a run directory
"""
