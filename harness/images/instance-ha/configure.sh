#!/bin/sh
# Disable (not mask) what the postinsts enabled: Pacemaker starts Masakari's services.
set -e
for unit in masakari-api masakari-engine masakari-host-monitor; do
  systemctl disable "$unit.service" >/dev/null 2>&1 || true
done
# masakari-api under uwsgi: 2 processes x 4 threads, like the other APIs (8 x 32 by default)
sed -i -e 's/^processes *=.*/processes = 2/' -e 's/^threads *=.*/threads = 4/' /etc/masakari/masakari-api-uwsgi.ini
