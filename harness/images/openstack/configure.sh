#!/bin/sh
# Postinst scripts enable their units; disable (not mask: Pacemaker must still start them)
# everything that is not part of the node's own boot.
set -e
for unit in $(systemctl list-unit-files --state=enabled --no-legend | awk '{print $1}'); do
  case "$unit" in
    systemd-*|dbus*|getty*|console-*|ssh*|cron*|e2scrub*|fstrim*|apt-*|dpkg-*|man-db*|remote-fs*|logrotate*) ;;
    *) systemctl disable "$unit" >/dev/null 2>&1 || true ;;
  esac
done
# Debian runs the APIs under uwsgi with 8-16 processes: 2 x 4 threads keeps memory sane.
for ini in /etc/*/*-uwsgi.ini; do
  sed -i -e 's/^processes *=.*/processes = 2/' -e 's/^threads *=.*/threads = 4/' "$ini"
done
# Except neutron-api: /usr/bin/neutron-api monkey-patches eventlet, and eventlet's locks do
# not wake a waiter in another native thread. With 4 uwsgi threads a request hung for minutes
# after a move (no socket busy: waiting on a lock), and nova-api hung with it (os-aa-3node).
# nova-api is patched the same way (nova/api/openstack/__init__.py imports nova.monkey_patch):
# its GET /servers/{id} hung 60 s without reaching the log after the os-aa-2node matrix.
for ini in /etc/neutron/neutron-api-uwsgi.ini /etc/nova/nova-api-uwsgi.ini; do
  sed -i -e 's/^processes *=.*/processes = 3/' -e 's/^threads *=.*/threads = 1/' "$ini"
done
# No hypervisor: the fake driver boots servers to ACTIVE in about a second.
printf '[DEFAULT]\ncompute_driver = fake.FakeDriver\n' > /etc/nova/nova-compute.conf
echo "still enabled:"; systemctl list-unit-files --state=enabled --no-legend | awk '{print "  " $1}'
# neutron-api (Zed) reads Port.port_forwardings, a backref SQLAlchemy only creates when the
# mappers are configured; in a fresh API worker nothing has done that yet and every port list
# (so every nova GET /servers/{id}) fails with 500. Configure them once the app is loaded.
printf '\n# ha-harness: create ORM backrefs (Port.port_forwardings) before the first request\nfrom sqlalchemy import orm as _orm\n_orm.configure_mappers()\n' >> /usr/bin/neutron-api
