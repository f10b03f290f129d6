"""Docker labels / name prefixes that mark what the harness creates."""
import os
import secrets

PREFIX = "ha-harness"
RUN_LABEL = "io.ha-harness.run"          # run id, on containers and networks
TOPOLOGY_LABEL = "io.ha-harness.topology"
SOURCE_LABEL = "io.ha-harness.topology-file"
NODE_LABEL = "io.ha-harness.node"
ROLE_LABEL = "io.ha-harness.role"      # a run's container that is not a node (the qnetd arbiter)
IMAGE_LABEL = "io.ha-harness.image"      # images are shared between runs, keyed by recipe hash
OWNER_PID_LABEL = "io.ha-harness.pid"
OWNER_START_LABEL = "io.ha-harness.pid-start"   # the owner's start time: a recycled pid is not the owner


def new_run_id() -> str:
    # Short, unique per run, and valid in container/network names.
    return f"{os.getpid() % 100000:05d}{secrets.token_hex(2)}"
