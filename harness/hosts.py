"""testinfra hosts for a run's nodes: scenarios read node state as
`hosts["node1"].service("corosync").is_running` instead of hand-written shell strings.

Each backend says how testinfra reaches a node (Backend.testinfra_spec: `docker://` for a
container, `ssh://` with the run's ssh-config for a VM); hosts are made on first use.
"""
from __future__ import annotations

from collections.abc import Mapping


class Hosts(Mapping):
    def __init__(self, backend):
        self.backend = backend
        self._hosts: dict = {}

    def _names(self) -> list[str]:
        return [n.name for n in self.backend.topology.nodes]

    def __getitem__(self, node: str):
        if node not in self._names():
            raise KeyError(f"no node {node!r} (nodes: {', '.join(self._names())})")
        if node not in self._hosts:
            import testinfra
            self._hosts[node] = testinfra.get_host(self.backend.testinfra_spec(node))
        return self._hosts[node]

    def __iter__(self):
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())
