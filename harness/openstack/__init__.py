"""The OpenStack control plane under Pacemaker: per-node configuration and the
one-time bootstrap (databases, Fernet keys, schemas, catalog, cells v2).

Order (what must exist before what):
  configs on every node -> CIB loaded with only `bootstrap_with` running (VIP, DB, MQ, cache)
  -> databases, keys and schemas from the bootstrap node -> every other resource started
  -> catalog through the VIP with openstacksdk -> compute host discovered.
"""
from __future__ import annotations

import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

from ..cluster import poll
from ..provision import TEMPLATES, template_env

SERVICE_USERS = ("glance", "placement", "nova", "cinder", "neutron", "masakari")
DATABASES = {"keystone": ["keystone"], "glance": ["glance"], "placement": ["placement"],
             "nova": ["nova_api", "nova", "nova_cell0"], "cinder": ["cinder"], "neutron": ["neutron"], "masakari": ["masakari"]}
CONFIG_FILES = {   # template -> path in the node, per service
    "keystone": [("keystone.conf.j2", "/etc/keystone/keystone.conf")],
    "glance": [("glance-api.conf.j2", "/etc/glance/glance-api.conf")],
    "placement": [("placement.conf.j2", "/etc/placement/placement.conf")],
    "nova": [("nova.conf.j2", "/etc/nova/nova.conf"), ("nova-compute.conf.j2", "/etc/nova/nova-compute.conf")],
    "cinder": [("cinder.conf.j2", "/etc/cinder/cinder.conf")],
    "neutron": [("neutron.conf.j2", "/etc/neutron/neutron.conf"),
                ("ml2_conf.ini.j2", "/etc/neutron/plugins/ml2/ml2_conf.ini")],
    "masakari": [("masakari.conf.j2", "/etc/masakari/masakari.conf"),
                 ("masakarimonitors.conf.j2", "/etc/masakarimonitors/masakarimonitors.conf"),
                 ("masakari-host-monitor.dropin.j2",
                  "/etc/systemd/system/masakari-host-monitor.service.d/50-harness-config.conf")],
}
# (catalog service name, type, port, path) for endpoints on the VIP
ENDPOINTS = {
    "glance": ("glance", "image", 9292, ""),
    "placement": ("placement", "placement", 8778, ""),
    "nova": ("nova", "compute", 8774, "/v2.1"),
    "cinder": ("cinderv3", "volumev3", 8776, "/v3/%(project_id)s"),
    "neutron": ("neutron", "network", 9696, ""),
    "masakari": ("masakari", "instance-ha", 15868, "/v1/%(tenant_id)s"),
}
API_PORTS = {"keystone": 5000, "glance": 9292, "placement": 8778, "nova": 8774, "cinder": 8776,
             "neutron": 9696, "masakari": 15868}
# Debian init scripts (by the name they source /etc/default/<name> with) that run an API under
# uwsgi; active/active binds them to the node's address. glance-api is not one: bind_host.
UWSGI_DEFAULTS = {"keystone": "keystone", "placement": "placement-api", "nova": "nova-api",
                  "cinder": "cinder-api", "neutron": "neutron-server", "masakari": "masakari-api"}
SECRETS_PATH = "/etc/harness/openstack-secrets.json"


def _wait_reported_up(list_services, binary: str, timeout: float) -> None:
    """Until every `binary` service record (nova or cinder service list) says "up"."""
    def up():
        states = [s.state for s in list_services() if s.binary == binary]
        return bool(states) and all(st == "up" for st in states), f"{binary}: {states or 'not registered'}"
    poll(up, timeout, interval=2, what=f"{binary} reported up")


START_TIMEOUT_DROPIN = """# ha-harness: Pacemaker's start timeout for this resource governs, not systemd's
# default 90 s (a Type=notify unit that is slow to start under load was killed at 90 s)
[Service]
TimeoutStartSec={timeout}
"""


def unit_start_timeouts(topology) -> dict[str, str]:
    """unit -> the start timeout of the resource that runs it through the project's agent."""
    default = topology.op_defaults.get("timeout", "120s")
    return {p.params["unit"]: str(p.op.get("start", {}).get("timeout", default))
            for p in topology.resources.primitives
            if p.agent == "ocf:harness:openstack-api" and p.params.get("unit")}


def rabbitmq_partition_handling(nodes: int) -> str:
    """RabbitMQ's default (`ignore`) leaves a clustered broker split for good after a partition
    (seen on os-aa-2node after a node freeze: `Node rabbit@node1 cannot communicate with
    rabbit@node2`, nova-compute timed out waiting for any conductor). With a majority to keep,
    the minority pauses; two nodes have none (both would pause), so the loser of the partition
    restarts when it heals (autoheal)."""
    return "pause_minority" if nodes >= 3 else "autoheal"


def new_secrets() -> dict:
    keys = ["admin", "rabbit", "erlang_cookie", "db_harness", *SERVICE_USERS, *(f"db_{s}" for s in DATABASES)]
    return {k: secrets.token_hex(12) for k in keys}


class ControlPlane:
    def __init__(self, backend, cluster, log=print, pw: dict | None = None):
        self.backend = backend
        self.cluster = cluster
        self.log = log
        self.pw = pw or new_secrets()

    @property
    def topology(self):
        return self.backend.topology

    @property
    def spec(self):
        return self.topology.openstack

    @property
    def vip(self) -> str:
        return self.topology.vip(self.spec.vip).ip

    @property
    def keystone_url(self) -> str:
        return f"http://{self.vip}:5000/v3"

    def _each(self, fn) -> None:
        nodes = [n.name for n in self.topology.nodes]
        with ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(fn, nodes))

    def sh(self, node: str, cmd: str, timeout: float = 300):
        return self.backend.exec(node, cmd, timeout=timeout * self.backend.wait_factor)

    # ------------------------------------------------------------ configuration (before the CIB)
    def write_configs(self) -> None:
        env = template_env("openstack")
        services = self.spec.services

        def write(node):
            ctx = self._context(node)
            files = [("mariadb.cnf.j2", "/etc/mysql/mariadb.conf.d/99-harness.cnf"),
                     ("memcached.conf.j2", "/etc/memcached.conf")]
            for svc in services:
                files += CONFIG_FILES[svc]
                if self.spec.active_active and svc in UWSGI_DEFAULTS:
                    files.append(("uwsgi-bind.j2", f"/etc/default/{UWSGI_DEFAULTS[svc]}"))
            for tpl, path in files:
                self.backend.copy(node, env.get_template(tpl).render(**ctx).encode(), path)
            self.backend.copy(node, self._rabbitmq_conf().encode(), "/etc/rabbitmq/rabbitmq.conf")
            for unit, timeout in unit_start_timeouts(self.topology).items():
                self.backend.copy(node, START_TIMEOUT_DROPIN.format(timeout=timeout).encode(),
                                  f"/etc/systemd/system/{unit}.d/50-harness-start-timeout.conf")
            fixes = ["systemctl daemon-reload"]
            if self.spec.database == "galera":
                # ocf:heartbeat:galera runs mysqld_safe with --log-error=/var/log/mysql/error.log;
                # Debian's package does not create that directory and mysqld exits at once
                fixes.append("install -d -o mysql -g adm /var/log/mysql")
                self._install_galera_check(node)
                fixes.append("systemctl enable --now galera-check.service")
            if self.spec.rabbitmq_cluster:
                # brokers only cluster with the same Erlang cookie
                self.backend.copy(node, self.pw["erlang_cookie"].encode(), "/var/lib/rabbitmq/.erlang.cookie",
                                  mode=0o400)
                fixes.append("chown rabbitmq:rabbitmq /var/lib/rabbitmq/.erlang.cookie")
            self.sh(node, " && ".join(fixes))
            self.backend.copy(node, json.dumps(self.pw).encode(), SECRETS_PATH, mode=0o600)
        self._each(write)

    def _install_galera_check(self, node: str) -> None:
        """HAProxy's health check of a Galera node (port 9200), outside Pacemaker like the HA
        guide's xinetd clustercheck: it must answer "not synced" while Galera is down."""
        files = TEMPLATES / "openstack"
        self.backend.copy(node, (files / "galera-check.py").read_bytes(), "/usr/local/sbin/galera-check", mode=0o755)
        self.backend.copy(node, (files / "galera-check.service").read_bytes(),
                          "/etc/systemd/system/galera-check.service")

    def _context(self, node: str) -> dict:
        """What the templates need for one node. Active/passive reaches everything through
        the VIP; active/active binds APIs to the node's address (HAProxy holds the VIP's
        ports), uses the node's own memcached and every node of the RabbitMQ cluster."""
        spec, ip = self.spec, self.topology.node(node).ip
        if spec.rabbitmq_cluster:
            brokers = [f"openstack:{self.pw['rabbit']}@{n.ip}:5672" for n in self.topology.nodes]
        else:
            brokers = [f"openstack:{self.pw['rabbit']}@{self.vip}:5672"]
        galera = spec.database == "galera"
        return dict(vip=self.vip, node=node, node_ip=ip, pw=self.pw, region=spec.region,
                    keystone=f"http://{self.vip}:5000", active_active=spec.active_active,
                    bind=ip if spec.active_active else "0.0.0.0",
                    memcache=f"{ip if spec.active_active else self.vip}:11211",
                    transport_url="rabbit://" + ",".join(brokers) + "/",
                    galera=galera, db_bind=ip if galera else "0.0.0.0",
                    compute_per_node=spec.compute_per_node, ih=spec.instance_ha,
                    cluster_nic=self.backend.cluster_nic)

    def _rabbitmq_conf(self) -> str:
        # The default user is created when a node's fresh database first boots: every
        # node gets the same account without starting RabbitMQ during the bootstrap.
        return (f"default_user = openstack\ndefault_pass = {self.pw['rabbit']}\n"
                "default_permissions.configure = .*\ndefault_permissions.read = .*\n"
                "default_permissions.write = .*\nloopback_users = none\n"
                f"cluster_partition_handling = {rabbitmq_partition_handling(len(self.topology.nodes))}\n")

    # ------------------------------------------------------------ one-time bootstrap
    def bootstrap(self, node: str) -> None:
        """Databases, keys and schemas, run once from `node` (where the DB runs)."""
        t0 = time.monotonic()
        if self.spec.rabbitmq_cluster:
            self.cluster_rabbitmq(node)
        self.create_databases(node)
        self.share_keystone_keys(node)
        self.sync_schemas(node)
        self.log(f"OpenStack databases, keys and schemas ready in {time.monotonic() - t0:.0f}s")

    def cluster_rabbitmq(self, first: str) -> None:
        """Join every other node's broker to `first`'s, then mirror the queues on all of them
        (classic mirrored queues, as the OpenStack HA guide sets them up)."""
        for other in (n.name for n in self.topology.nodes if n.name != first):
            self.sh(other, f"rabbitmqctl stop_app && rabbitmqctl join_cluster rabbit@{first} && "
                           "rabbitmqctl start_app", timeout=180)
        policy = '{"ha-mode":"all","ha-sync-mode":"automatic"}'
        self.sh(first, f"rabbitmqctl set_policy ha-all '^(?!amq\\.).*' '{policy}'")
        self.log(f"RabbitMQ clustered on {len(self.topology.nodes)} nodes, queues mirrored")

    def create_databases(self, node: str) -> None:
        sql = []
        for svc, dbs in DATABASES.items():
            if svc not in self.spec.services:
                continue
            for db in dbs:
                sql.append(f"CREATE DATABASE IF NOT EXISTS {db};")
                sql.append(f"GRANT ALL PRIVILEGES ON {db}.* TO '{svc}'@'%' IDENTIFIED BY '{self.pw['db_' + svc]}';")
        # the writers' own table (harness.openstack.writers): rows through the VIP, as services write
        from .writers import DB_NAME, DB_USER
        sql += [f"CREATE DATABASE IF NOT EXISTS {DB_NAME};",
                f"CREATE TABLE IF NOT EXISTS {DB_NAME}.hw_rows (id BIGINT AUTO_INCREMENT PRIMARY KEY, tag VARCHAR(64) NOT NULL, "
                "n INT NOT NULL, at TIMESTAMP(6) "
                "DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB;",
                f"GRANT ALL PRIVILEGES ON {DB_NAME}.* TO '{DB_USER}'@'%' IDENTIFIED BY '{self.pw['db_harness']}';"]
        self.sh(node, f"mysql -e \"{' '.join(sql)} FLUSH PRIVILEGES;\"")

    def share_keystone_keys(self, node: str) -> None:
        """Fernet and credential keys must be identical on every node."""
        # as root (it writes under /etc/keystone), then hand its log back to keystone
        self.sh(node, "keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone && "
                      "keystone-manage credential_setup --keystone-user keystone --keystone-group keystone && "
                      "chown -R keystone:keystone /var/log/keystone")
        blob = self.sh(node, "tar -C /etc/keystone -czf - fernet-keys credential-keys | base64 -w0").out.strip()
        for other in (n.name for n in self.topology.nodes if n.name != node):
            self.backend.copy(other, blob.encode(), "/root/keystone-keys.b64")
            self.sh(other, "base64 -d /root/keystone-keys.b64 | tar -C /etc/keystone -xzf - && rm /root/keystone-keys.b64")

    def sync_schemas(self, node: str) -> None:
        admin_pw = self.pw["admin"]
        steps = {
            "keystone": ["runuser -u keystone -- keystone-manage db_sync",
                         f"runuser -u keystone -- keystone-manage bootstrap --bootstrap-password {admin_pw} "
                         f"--bootstrap-admin-url {self.keystone_url} --bootstrap-internal-url {self.keystone_url} "
                         f"--bootstrap-public-url {self.keystone_url} --bootstrap-region-id {self.spec.region}"],
            "glance": ["runuser -u glance -- glance-manage db_sync"],
            "placement": ["runuser -u placement -- placement-manage db sync"],
            "nova": ["runuser -u nova -- nova-manage api_db sync",
                     "runuser -u nova -- nova-manage cell_v2 map_cell0",
                     "runuser -u nova -- nova-manage cell_v2 list_cells | grep -q ' cell1 ' || "
                     "runuser -u nova -- nova-manage cell_v2 create_cell --name=cell1",
                     "runuser -u nova -- nova-manage db sync"],
            "cinder": ["runuser -u cinder -- cinder-manage db sync"],
            "neutron": ["runuser -u neutron -- neutron-db-manage --config-file /etc/neutron/neutron.conf "
                        "--config-file /etc/neutron/plugins/ml2/ml2_conf.ini upgrade heads"],
            "masakari": ["runuser -u masakari -- masakari-manage db sync"],
        }
        # two at a time: the machine has two cores and the syncs are CPU-bound
        chains = [" && ".join(steps[s]) for s in self.spec.services]
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda cmd: self.sh(node, cmd, timeout=600), chains))

    # ------------------------------------------------------------ after every service runs
    def connect(self, **kw):
        """openstacksdk connection through the VIP; every call is bounded (api_timeout): a call
        without a timeout can hang forever across a failover. Exactly these credentials: a
        user's OS_CLOUD / OS_* variables and clouds.yaml files are not read."""
        kw.setdefault("api_timeout", 60)
        import openstack
        return openstack.connect(load_envvars=False, load_yaml_config=False, auth_url=self.keystone_url, username="admin", password=self.pw["admin"],
                                 project_name="admin", user_domain_name="Default",
                                 project_domain_name="Default", region_name=self.spec.region,
                                 identity_api_version="3", **kw)

    def create_catalog(self) -> None:
        conn = self.connect()
        ident = conn.identity
        service_project = ident.find_project("service") or ident.create_project(name="service", domain_id="default")
        admin_role = ident.find_role("admin")
        for svc in self.spec.services:
            if svc == "keystone":
                continue
            user = ident.find_user(svc) or ident.create_user(name=svc, password=self.pw[svc], domain_id="default")
            ident.assign_project_role_to_user(service_project, user, admin_role)
            name, kind, port, path = ENDPOINTS[svc]
            service = ident.find_service(name) or ident.create_service(name=name, type=kind)
            existing = {e.interface for e in ident.endpoints(service_id=service.id)}
            for interface in ("public", "internal", "admin"):
                if interface not in existing:
                    ident.create_endpoint(service_id=service.id, interface=interface,
                                          url=f"http://{self.vip}:{port}{path}", region_id=self.spec.region)
        conn.close()

    def wait_apis(self, services=None, timeout: float = 300) -> float:
        """Until every API answers HTTP through the VIP; return the seconds waited."""
        import http.client
        timeout *= self.backend.wait_factor
        t0 = time.monotonic()
        pending = {s: API_PORTS[s] for s in (services or self.spec.services)}
        while pending and time.monotonic() - t0 < timeout:
            for svc, port in list(pending.items()):
                try:
                    c = http.client.HTTPConnection(self.vip, port, timeout=3)
                    c.request("GET", "/")
                    if c.getresponse().status < 500:
                        del pending[svc]
                except OSError:
                    pass
            time.sleep(1)
        if pending:
            raise TimeoutError(f"APIs not answering through the VIP after {timeout:.0f}s: {sorted(pending)}")
        return time.monotonic() - t0

    def discover_compute(self, timeout: float = 180) -> None:
        """Map the compute service into cell1 once it has registered (needed to schedule)."""
        if "nova" not in self.spec.services:
            return
        conn = self.connect()
        try:
            _wait_reported_up(conn.compute.services, "nova-compute", timeout * self.backend.wait_factor)
        finally:
            conn.close()
        holder = self.cluster.vip_holder(self.spec.vip)
        self.sh(holder, "runuser -u nova -- nova-manage cell_v2 discover_hosts --verbose")

    def connect_db(self):
        """The writers' database through the VIP (HAProxy's frontend on Galera layouts), with
        short timeouts: a write must not hang across a failover."""
        import pymysql
        from .writers import DB_NAME, DB_USER
        if "db_harness" not in self.pw:
            raise RuntimeError("this cluster was provisioned before the writers' database existed: "
                               "bring it up again")
        return pymysql.connect(host=self.vip, user=DB_USER, password=self.pw["db_harness"], database=DB_NAME,
                               autocommit=True, connect_timeout=3, read_timeout=10, write_timeout=10)

    def lift_quotas(self) -> None:
        """The admin project without instance, core, RAM, volume or size limits: the writers
        and the evacuation scenarios create many small objects, and a quota refusal would
        measure the quota, not the failover."""
        conn = self.connect()
        try:
            project = conn.identity.find_project("admin")
            if "nova" in self.spec.services:
                conn.set_compute_quotas(project.id, instances=-1, cores=-1, ram=-1)
            if "cinder" in self.spec.services:
                conn.set_volume_quotas(project.id, volumes=-1, gigabytes=-1, snapshots=-1)
        finally:
            conn.close()

    def compute_hosts(self) -> list[str]:
        """Nova's compute hosts: every node with per-node compute, else the shared identity."""
        if self.spec.compute_per_node:
            return [n.name for n in self.topology.nodes]
        return ["harness-compute"]

    def create_segment(self) -> None:
        """Masakari's failover segment holding every compute host, through its own API
        (openstacksdk's instance-HA proxy), as an operator sets instance HA up."""
        ih = self.spec.instance_ha
        if ih is None:
            return
        conn = self.connect()
        try:
            ha = conn.instance_ha
            segment = next((s for s in ha.segments() if s.name == ih.segment), None) or \
                ha.create_segment(name=ih.segment, recovery_method=ih.recovery_method, service_type="COMPUTE")
            known = {h.name for h in ha.hosts(segment.uuid)}
            for host in self.compute_hosts():
                if host not in known:
                    ha.create_host(segment.uuid, name=host, type="COMPUTE", control_attributes="SSH",
                                   reserved=False, on_maintenance=False)
        finally:
            conn.close()
        self.log(f"Masakari segment {ih.segment!r} ({ih.recovery_method}) holds {', '.join(self.compute_hosts())}")

    def wait_volume_service(self, timeout: float = 180) -> None:
        """Until cinder-volume reports up AND the scheduler knows its pool: before either, a new
        volume goes to "error" (no valid backend). Seen right after bring-up on os-ap-3node, then
        on os-ap-2node in CI with the service already reported up: the scheduler had not yet
        received the backend's capabilities."""
        if "cinder" not in self.spec.services:
            return
        from openstack.exceptions import SDKException
        timeout *= self.backend.wait_factor
        conn = self.connect()
        try:
            _wait_reported_up(conn.block_storage.services, "cinder-volume", timeout)
            def pools():
                try:
                    names = [p.name for p in conn.block_storage.backend_pools()]
                except SDKException as e:      # an API still settling may answer 5xx
                    return False, str(e)
                return bool(names), names
            poll(pools, timeout, interval=2, what="cinder-scheduler knows a volume backend pool")
        finally:
            conn.close()

    def clouds_yaml(self) -> str:
        import yaml
        return yaml.safe_dump({"clouds": {self.topology.name: {
            "auth": {"auth_url": self.keystone_url, "username": "admin", "password": self.pw["admin"],
                     "project_name": "admin", "user_domain_name": "Default", "project_domain_name": "Default"},
            "region_name": self.spec.region, "identity_api_version": 3}}})

    def probe_auth(self) -> dict:
        """The credentials `connect` uses, as a dict for harness.osprobes.openstack_probes."""
        return {"auth_url": self.keystone_url, "username": "admin", "password": self.pw["admin"],
                "project_name": "admin", "user_domain_name": "Default", "project_domain_name": "Default",
                "region_name": self.spec.region}
