#!/bin/bash
# ha-harness: this Galera node's health over HTTP for HAProxy (the OpenStack HA guide's
# clustercheck): 200 when the node is Synced (wsrep_local_state 4) and ready, else 503. A node
# that accepts TCP may still refuse every query ("WSREP has not yet prepared node for
# application use"), which a plain connect check cannot see. Run per connection by systemd.
while IFS= read -r -t 2 line && [ -n "${line%$'\r'}" ]; do :; done    # the request, unused
status=$(mysql --connect-timeout=2 -N -B -e \
    "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state', 'wsrep_ready')" 2>/dev/null)
synced=$(awk '$1 == "wsrep_local_state" {s = $2} $1 == "wsrep_ready" {r = $2}
              END {print (s == 4 && r == "ON") ? "yes" : "no"}' <<<"$status")
if [ "$synced" = yes ]; then code="200 OK" body="synced"; else code="503 Service Unavailable" body="not synced"; fi
printf 'HTTP/1.0 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
    "$code" "${#body}" "$body"
