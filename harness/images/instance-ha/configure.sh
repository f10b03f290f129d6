#!/bin/sh
# Disable (not mask) what the postinsts enabled: Pacemaker starts Masakari's services.
set -e
for unit in masakari-api masakari-engine masakari-host-monitor; do
  systemctl disable "$unit.service" >/dev/null 2>&1 || true
done
# masakari-api under uwsgi: 2 processes x 4 threads, like the other APIs (8 x 32 by default)
sed -i -e 's/^processes *=.*/processes = 2/' -e 's/^threads *=.*/threads = 4/' /etc/masakari/masakari-api-uwsgi.ini
# Debian's oslo.messaging 14.0.3-0+deb12u1 (a security update) rebuilds the request context of
# every notification with from_dict(), which hands masakari's RequestContext read_deleted=None;
# masakari 14 rejects it, so every API write (segment, host, notification) failed with 500
# "read_deleted can only be one of 'no', 'yes' or 'only', not None". Treat None as the default.
ctx=/usr/lib/python3/dist-packages/masakari/context.py
sed -i 's/^        self.read_deleted = read_deleted$/        self.read_deleted = read_deleted or "no"  # ha-harness/' "$ctx"
grep -q 'read_deleted or "no"  # ha-harness' "$ctx" || { echo "masakari context.py changed: patch not applied" >&2; exit 1; }
