#!/bin/sh
# Writes a variant of the project's own agent (ocf:harness:openstack-api) and prints its path:
#   monitor-process-only  the monitor checks the process only: a hung API goes unnoticed
#   slow-start            start sleeps 5 s first: every recovery takes 5 s longer
#   stock                 an unchanged copy (A against A: no difference expected)
# Made with sed from the stock file, so the variants never drift from it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
stock="$here/../../harness/agents/harness/openstack-api"
out="${TMPDIR:-/tmp}/ha-harness-agent-variants/$1"
mkdir -p "$out"
case "$1" in
    monitor-process-only) sed 's/^    if ! api_answers; then$/    if false; then   # variant: process check only/' "$stock" ;;
    slow-start) sed 's/^api_start() {$/api_start() {\n    sleep 5   # variant: slow start/' "$stock" ;;
    stock) cat "$stock" ;;
    *) echo "usage: $0 monitor-process-only|slow-start|stock" >&2; exit 2 ;;
esac > "$out/openstack-api"
chmod 755 "$out/openstack-api"
cmp -s "$stock" "$out/openstack-api" && [ "$1" != stock ] && { echo "variant $1: sed changed nothing" >&2; exit 1; }
echo "$out/openstack-api"
