"""three-tier's data plane: real servers behind the strict emulator's control plane.

moto answers API calls and serves no traffic (EMULATOR.md). This module stands in for
what AWS runs behind those calls, on this machine, on addresses of 127.0.0.0/8 only:

- an RDS instance is a MariaDB server (Debian's `mariadbd`) with its initial database,
  its master user, the password RDS keeps in its managed secret, and TLS with a
  certificate for the endpoint's name signed by a CA of the emulator's (standing for the
  RDS CA bundle); deleting it stops the server and removes its data, a final snapshot
  keeps the stopped server's data directory;
- an EC2 instance runs its user data's compose file once it has booted: each `nginx`
  service is a real nginx (Debian's) serving its default page on the published port,
  provided the instance reached the internet through its routes at boot (the user data
  installs Docker and pulls the image), as on AWS;
- each ALB listener is a real HTTP listener that forwards by its rules to healthy
  targets; target health comes from real health checks, on the region's clock;
- SSM Run Command runs the script sent, unchanged, in a sandbox standing for the
  instance and its container (see `Sandbox`).

Every connection is evaluated against what the network holds, in `Network`: security
groups (stateful: egress of the sender, ingress of the receiver, a group as source
meaning its members), network ACLs (stateless, both directions, ephemeral ports) and
routes (longest prefix). It is written here on its own, from AWS's documentation, as
the independent check of the tool's own analysis.

Names: the ALB's DNS name and the RDS endpoints resolve, for the tool, through
GET /three-tier/dataplane/resolve, and for the instance's commands through a hosts file
of the sandbox's own mount namespace. The machine's /etc/hosts is never touched.
"""

import base64
import concurrent.futures
import ctypes
import http.client
import http.server
import ipaddress
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

# Where the packages put the servers; a non-root PATH often lacks /usr/sbin.
SEARCH_PATH = os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin:/bin"
DEBIAN_PACKAGES = {"nginx": "nginx-light", "mariadbd": "mariadb-server-core", "mariadb-install-db": "mariadb-server-core", "mariadb": "mariadb-client-core", "openssl": "openssl", "unshare": "util-linux"}

# An address of the internet: a client of the ALB, and where the user data downloads from.
INTERNET_CLIENT = "203.0.113.10"
INTERNET_SERVER = "140.82.112.3"
# A reply's destination port, within every ephemeral range AWS documents (1024-65535).
EPHEMERAL_PORT = 49152
# Resolved for a name whose path is closed: nothing listens there.
NOWHERE = "127.255.255.254"
APP_ROOT = "/usr/share/nginx/html"


def tools():
    return {name: shutil.which(name, path=SEARCH_PATH) for name in DEBIAN_PACKAGES}


def missing_packages():
    """The Debian packages the data plane needs and this machine lacks."""
    return sorted({DEBIAN_PACKAGES[name] for name, path in tools().items() if path is None})


def log(message):
    print(f"dataplane: {message}", file=sys.stderr, flush=True)


def die_with_parent():
    """Runs in a server's child before exec: the server dies when the emulator does.

    PR_SET_PDEATHSIG fires when the *thread* that started the child ends, not the process:
    servers are therefore started on one thread that lives as long as the emulator (see
    `DataPlane.spawn`). Started from a request's thread (DescribeTargetHealth catches the
    health checks up), nginx died as the request ended, and the ALB answered 502 until the
    next tick started it again."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# --- the network, as AWS evaluates it ---------------------------------------------------


class Endpoint:
    """One side of a connection: an address, and where AWS sees it (its subnet and
    security groups), or the internet (no subnet, no groups)."""

    def __init__(self, name, ip, subnet=None, groups=None):
        self.name, self.ip, self.subnet, self.groups = name, ip, subnet, groups

    def __repr__(self):
        return self.name


def internet(ip, name="the internet"):
    return Endpoint(name, ip)


def contains(cidr, ip):
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def port_in(rule_protocol, from_port, to_port, port):
    protocol = str(rule_protocol)
    if protocol in ("-1", "all"):
        return True
    if protocol not in ("tcp", "6"):
        return False
    return from_port is not None and int(from_port) <= port <= int(to_port)


class Network:
    """What a region's EC2 holds, read for one decision: may TCP go from A to B:port?"""

    def __init__(self, ec2):
        self.ec2 = ec2

    def group(self, group_id):
        try:
            return self.ec2.get_security_group_from_id(group_id)
        except Exception:
            return None

    def groups_allow(self, groups, direction, port, peer):
        """Whether any rule of `groups` in `direction` lets TCP `port` to or from `peer`."""
        for group_id in groups:
            group = self.group(group_id)
            if group is None:
                continue
            rules = group.egress_rules if direction == "egress" else group.ingress_rules
            for rule in list(rules):
                if not port_in(rule.ip_protocol, rule.from_port, rule.to_port, port):
                    continue
                source = (rule.source_group or {}).get("GroupId")
                if source and peer.groups and source in peer.groups:
                    return f"{group_id} {'egress' if direction == 'egress' else 'ingress'} {self.rule_text(rule)}"
                cidr = (rule.ip_range or {}).get("CidrIp")
                if cidr and contains(cidr, peer.ip):
                    return f"{group_id} {'egress' if direction == 'egress' else 'ingress'} {self.rule_text(rule)}"
        return None

    @staticmethod
    def rule_text(rule):
        ports = "all" if str(rule.ip_protocol) == "-1" else f"TCP {rule.from_port}-{rule.to_port}"
        source = (rule.source_group or {}).get("GroupId") or (rule.ip_range or {}).get("CidrIp")
        return f"{ports} {source}"

    def acl_for(self, subnet):
        acls = list(self.ec2.network_acls.values())
        for acl in acls:
            if any(a.subnet_id == subnet.id for a in list(acl._associations.values())):
                return acl
        return next((a for a in acls if a.vpc_id == subnet.vpc_id and a.default), None)

    def acl_allows(self, subnet, egress, peer_ip, port):
        acl = self.acl_for(subnet)
        if acl is None:
            return True
        entries = sorted((e for e in list(acl.network_acl_entries) if str(e.egress).lower() == str(egress).lower()), key=lambda e: int(e.rule_number))
        for entry in entries:
            protocol = str(entry.protocol)
            if protocol not in ("-1", "6", "tcp"):
                continue
            if protocol != "-1":
                low, high = entry.port_range_from, entry.port_range_to
                if low is None or not int(low) <= port <= int(high):
                    continue
            if entry.cidr_block and contains(entry.cidr_block, peer_ip):
                return entry.rule_action == "allow"
        return False

    def route_table(self, subnet):
        tables = [t for t in list(self.ec2.route_tables.values()) if t.vpc_id == subnet.vpc_id]
        for table in tables:
            if subnet.id in list(table._associations.values()):
                return table
        return next((t for t in tables if t.main_association_id is not None), None)

    def route(self, subnet, ip):
        """The route AWS takes from `subnet` to `ip`: the longest matching prefix."""
        table = self.route_table(subnet)
        if table is None:
            return None, None
        best = None
        for route in list(table.routes):
            cidr = route.destination_cidr_block
            if cidr and contains(cidr, ip):
                if best is None or ipaddress.ip_network(cidr).prefixlen > ipaddress.ip_network(best.destination_cidr_block).prefixlen:
                    best = route
        return table, best

    def attached_gateway(self, route, vpc_id):
        gateway = getattr(route, "gateway", None) if route else None
        if gateway is None or not str(getattr(gateway, "id", "")).startswith("igw-"):
            return None
        live = self.ec2.internet_gateways.get(gateway.id)
        if live is None or live.vpc is None or live.vpc.id != vpc_id:
            return None
        return live

    def to_internet(self, subnet, name):
        """Whether `subnet` routes the internet to an attached internet gateway: the way in
        to, and the replies from, a public subnet."""
        table, route = self.route(subnet, INTERNET_CLIENT)
        if self.attached_gateway(route, subnet.vpc_id) is None:
            where = f"route table {table.id}" if table else "no route table"
            return f"{name}'s subnet {subnet.id} has no route to an attached internet gateway ({where})"
        return None

    def tcp(self, src, dst, port, replies_to=None):
        """None when AWS lets a TCP connection from `src` to `dst`:`port` through, both
        ways; else the hop that stops it. Routing inside a VPC is its local route."""
        if src.groups is not None and not self.groups_allow(src.groups, "egress", port, dst):
            return f"no egress rule of {', '.join(sorted(src.groups))} ({src}) allows TCP {port} to {dst}"
        if dst.groups is not None and not self.groups_allow(dst.groups, "ingress", port, src):
            return f"no ingress rule of {', '.join(sorted(dst.groups))} ({dst}) allows TCP {port} from {src}"
        same_subnet = src.subnet is not None and dst.subnet is not None and src.subnet.id == dst.subnet.id
        if not same_subnet:
            hops = [(src.subnet, True, dst.ip, port), (dst.subnet, False, src.ip, port), (dst.subnet, True, src.ip, EPHEMERAL_PORT), (src.subnet, False, dst.ip, EPHEMERAL_PORT)]
            for subnet, egress, peer_ip, hop_port in hops:
                if subnet is not None and not self.acl_allows(subnet, egress, peer_ip, hop_port):
                    way = "outbound" if egress else "inbound"
                    return f"the network ACL of {subnet.id} denies {way} TCP {hop_port} {'to' if egress else 'from'} {peer_ip}"
        if src.subnet is not None and dst.subnet is not None and src.subnet.vpc_id != dst.subnet.vpc_id:
            return f"{src} and {dst} are in different VPCs"
        return None

    def instance_to_internet(self, instance, port):
        """The way out of a private instance: its route to a NAT gateway that is available,
        holds an address and sits in a public subnet (or, with a public IP, its own route
        to the internet gateway)."""
        me = instance_endpoint(self.ec2, instance)
        there = internet(INTERNET_SERVER, "the internet")
        closed = self.tcp(me, there, port)
        if closed:
            return closed
        table, route = self.route(me.subnet, INTERNET_SERVER)
        if route is None:
            return f"route table {table.id if table else '(none)'} of {me.subnet.id} has no route to the internet"
        if self.attached_gateway(route, me.subnet.vpc_id) is not None:
            return None if getattr(instance, "public_ip", None) else f"{instance.id} has no public IP for the internet gateway route of {table.id}"
        nat = getattr(route, "nat_gateway", None)
        if nat is None:
            return f"route table {table.id} sends the internet to neither a NAT gateway nor an internet gateway"
        live = self.ec2.nat_gateways.get(nat.id)
        if live is None or live.state != "available":
            return f"route table {table.id} routes the internet to NAT gateway {nat.id}, which is {getattr(live, 'state', 'gone')}"
        if not live.address_set:
            return f"NAT gateway {nat.id} holds no Elastic IP"
        nat_subnet = self.ec2.get_subnet(live.subnet_id)
        nat_end = Endpoint(f"NAT gateway {nat.id}", nat_private_ip(live, nat_subnet), nat_subnet, None)
        closed = self.tcp(me, nat_end, port) or self.tcp(nat_end, there, port)
        if closed:
            return closed
        return self.to_internet(nat_subnet, f"NAT gateway {nat.id}")


def subnet_host(subnet, offset):
    network = ipaddress.ip_network(subnet.cidr_block, strict=False)
    return str(network.network_address + offset)


def nat_private_ip(nat, subnet):
    address = next((a.get("privateIp") for a in nat.address_set if a.get("privateIp")), None)
    return address or subnet_host(subnet, 6)


def instance_groups(instance):
    groups = set()
    for group in getattr(instance, "security_groups", None) or []:
        groups.add(getattr(group, "id", group))
    for nic in (getattr(instance, "nics", None) or {}).values():
        for group in getattr(nic, "group_set", None) or []:
            groups.add(getattr(group, "id", group))
    return groups


def instance_endpoint(ec2, instance):
    return Endpoint(f"instance {instance.id}", instance.private_ip, ec2.get_subnet(instance.subnet_id), instance_groups(instance))


def alb_nodes(balancer):
    """The load balancer's node in each of its subnets, as its health checks and forwarded
    requests leave it: from an address of that subnet, with its security groups."""
    return [Endpoint(f"load balancer {balancer.name} in {s.id}", subnet_host(s, 10), s, set(balancer.security_groups or [])) for s in balancer.subnets]


def database_endpoint(ec2, db):
    subnets = list(getattr(getattr(db, "db_subnet_group", None), "_subnets", None) or [])
    zone = getattr(db, "availability_zone", None)
    subnet = next((s for s in subnets if s.availability_zone == zone), subnets[0] if subnets else None)
    if subnet is None:
        return None
    return Endpoint(f"RDS instance {db.db_instance_identifier}", subnet_host(subnet, 20), subnet, set(getattr(db, "vpc_security_group_ids", None) or []))


# --- what the user data does at boot ----------------------------------------------------


def user_data_text(instance):
    data = getattr(instance, "user_data", None)
    if isinstance(data, list):
        data = data[0] if data else None
    if data is None:
        return ""
    # moto keeps it as its Base64EncodedString.
    encoded = getattr(data, "_encoded_string", None)
    if encoded is not None:
        data = encoded
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    try:
        return base64.b64decode(data, validate=True).decode("utf-8", "replace")
    except Exception:
        return data


def compose_files(script):
    """The compose files a shell script writes with a here-document: {path: text}."""
    found = {}
    for match in re.finditer(r"cat\s*>\s*(\S*docker-compose\.ya?ml)\s*<<-?\s*'?\"?(\w+)'?\"?\n", script):
        end = script.find(f"\n{match.group(2)}\n", match.end() - 1)
        if end >= 0:
            found[match.group(1)] = script[match.end():end + 1]
    return found


def nginx_ports(compose_text):
    """The host ports a compose file publishes to port 80 of an `nginx` image."""
    import yaml

    try:
        document = yaml.safe_load(compose_text) or {}
    except yaml.YAMLError:
        return {}
    services = {}
    for name, service in (document.get("services") or {}).items():
        image = str((service or {}).get("image", ""))
        if not re.match(r"^(docker\.io/)?(library/)?nginx(:|@|$)", image):
            continue
        ports = []
        for mapping in service.get("ports") or []:
            parts = str(mapping).split("/")[0].split(":")
            if len(parts) >= 2 and parts[-1] == "80" and parts[-2].isdigit():
                ports.append(int(parts[-2]))
        services[name] = {"image": image, "ports": ports}
    return services


# --- the servers ------------------------------------------------------------------------

# Bound on 127.<block>.0.1 while an emulator runs: its claim on that block.
CLAIM_PORT = 47999


def claim_block():
    """The /16 of 127.0.0.0/8 this emulator's servers listen on, and the socket that holds
    it: emulators running at once on one machine (the shared one, and tests' private ones)
    would otherwise start their servers on the same addresses and ports. The first free
    block is taken, so a lone emulator serves on 127.0.x.y; the claim goes with the process."""
    for block in range(0, 255):
        claim = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            claim.bind((f"127.{block}.0.1", CLAIM_PORT))
            return block, claim
        except OSError:
            claim.close()
    raise RuntimeError("every block of 127.0.0.0/8 is claimed by another emulator's data plane")



class Server:
    """Something the data plane runs: a process (nginx, mariadbd) or a listener thread."""

    def __init__(self, kind, region, resource, address, port, process=None, stop=None, dir=None):
        self.kind, self.region, self.resource, self.address, self.port = kind, region, resource, address, port
        self.process, self._stop, self.dir = process, stop, dir

    def alive(self):
        return self.process is None or self.process.poll() is None

    def stop(self):
        if self._stop:
            self._stop()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def describe(self):
        return {"kind": self.kind, "region": self.region, "resource": self.resource, "address": self.address, "port": self.port, "pid": self.process.pid if self.process else None}


class DataPlane:
    def __init__(self, root, clocks, scaled, scale, moto_port):
        self.root = root
        self.clocks, self.scaled, self.scale, self.moto_port = clocks, scaled, scale, moto_port
        self.lock = threading.RLock()
        self.tools = tools()
        self.missing = missing_packages()
        self.enabled = not self.missing
        self.next_address = 0
        self.block, self.claim = claim_block()
        self.addresses = {}  # (kind, resource) -> address
        self.names = {}  # DNS name -> address
        self.ports = {}  # (address, port asked) -> port bound
        self.servers = {}  # (kind, resource) -> Server
        self.instances = {}  # instance id -> what its user data did
        self.health = {}  # (target group arn, target id) -> HealthState
        self.commands = []
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root, exist_ok=True)
        self.short = tempfile.mkdtemp(prefix="three-tier-dp-")
        self.stopping = False
        # The one thread servers are started on: it lives as long as the emulator.
        self.spawner = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="dataplane-spawner")
        if not self.enabled:
            log(f"off: missing {', '.join(self.missing)} (Debian: apt-get install {' '.join(self.missing)})")

    def spawn(self, args, stderr):
        """Starts a server process on the spawner thread, whatever thread asks (see
        `die_with_parent`)."""
        start = lambda: subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, preexec_fn=die_with_parent)
        return self.spawner.submit(start).result()

    # -- addresses and names --

    def address(self, kind, resource):
        with self.lock:
            if (kind, resource) not in self.addresses:
                self.next_address += 1
                n = self.next_address
                self.addresses[(kind, resource)] = f"127.{self.block}.{10 + n // 250}.{1 + n % 250}"
            return self.addresses[(kind, resource)]

    def resolve(self, host, port):
        with self.lock:
            address = self.names.get(host.lower().rstrip("."))
            if address is None:
                return None
            return {"address": address, "port": self.ports.get((address, port), port)}

    def status(self):
        with self.lock:
            return {
                "enabled": self.enabled,
                "missing": self.missing,
                "servers": [s.describe() for s in self.servers.values()],
                "names": dict(self.names),
            }

    # -- the loop --

    def start(self):
        if self.enabled:
            threading.Thread(target=self.run, name="dataplane", daemon=True).start()

    def run(self):
        while not self.stopping:
            try:
                self.tick()
            except Exception:
                log("tick failed: " + traceback.format_exc())
            time.sleep(0.05)

    def tick(self):
        with self.lock:
            stopping = self.reconcile()
        for server in stopping:
            self.retire(server)

    def reconcile(self):
        """Starts what moto's state needs and is not running; returns what runs and is no
        longer needed (or died), to be stopped."""
        from moto.ec2.models import ec2_backends
        from moto.elbv2.models import elbv2_backends
        from moto.rds.models import rds_backends

        wanted = set()
        for account, regions in list(dict.items(ec2_backends)):
            for region, ec2 in list(dict.items(regions)):
                self.clocks.local.region = region
                for instance in [i for r in list(ec2.reservations.values()) for i in list(r.instances)]:
                    wanted |= self.keep_instance(region, ec2, instance)
        for account, regions in list(dict.items(rds_backends)):
            for region, rds in list(dict.items(regions)):
                self.clocks.local.region = region
                ec2 = ec2_backends[account][region]
                for db in list(rds.databases.values()):
                    wanted |= self.keep_database(region, ec2, db)
        for account, regions in list(dict.items(elbv2_backends)):
            for region, elbv2 in list(dict.items(regions)):
                self.clocks.local.region = region
                ec2 = ec2_backends[account][region]
                for balancer in list(elbv2.load_balancers.values()):
                    wanted |= self.keep_load_balancer(region, ec2, elbv2, balancer)
                self.check_targets(region, ec2, elbv2)
        gone = [key for key in self.servers if key not in wanted or not self.servers[key].alive()]
        return [self.servers.pop(key) for key in gone]

    def retire(self, server):
        server.stop()
        if server.kind == "mariadb":
            self.final_snapshot(server)
        log(f"stopped {server.kind} of {server.resource} on {server.address}:{server.port}")
        with self.lock:
            for name, address in list(self.names.items()):
                if address == server.address and not any(s.address == address for s in self.servers.values()):
                    self.names.pop(name, None)
        if server.dir and server.kind == "mariadb":
            shutil.rmtree(server.dir, ignore_errors=True)

    def stop_all(self):
        self.stopping = True
        with self.lock:
            servers = list(self.servers.values())
            self.servers.clear()
        for server in servers:
            try:
                server.stop()
            except Exception:
                pass
        shutil.rmtree(self.short, ignore_errors=True)

    # -- EC2: the instance's app --

    def keep_instance(self, region, ec2, instance):
        """Boots the user data once the instance has run it (on the region's clock), and
        keeps its nginx services up while the instance runs."""
        launched = getattr(instance, "_three_tier_launched", None)
        if launched is None or instance.state != "running":
            return set()
        state = self.instances.get(instance.id)
        if state is None:
            if self.clocks.now(launched[0]) < self.app_up_at(ec2, instance.id):
                return set()
            state = self.instances[instance.id] = self.boot(region, ec2, instance)
        keep = set()
        for service, spec in state["services"].items():
            for port in spec["ports"]:
                key = ("nginx", f"{instance.id}:{service}:{port}")
                keep.add(key)
                if key not in self.servers:
                    self.start_nginx(key, region, instance, state, port)
        self.write_instance_state(instance.id, state)
        return keep

    def instance_dir(self, instance_id):
        return os.path.join(self.root, "instances", instance_id)

    def boot(self, region, ec2, instance):
        root = os.path.join(self.instance_dir(instance.id), "root")
        for path in ("root/var/log", "root/tmp", "root/opt", "container/tmp"):
            os.makedirs(os.path.join(self.instance_dir(instance.id), path), exist_ok=True)
        script = user_data_text(instance)
        lines = [f"three-tier emulator: {instance.id} runs its user data ({len(script)} bytes)"]
        services = {}
        closed = Network(ec2).instance_to_internet(instance, 443)
        files = compose_files(script)
        if closed:
            lines.append(f"dnf install -y docker: Curl error (28): Timeout was reached: no way out: {closed}")
            lines.append("the user data failed: nothing runs on the instance")
        elif not files:
            lines.append("the user data writes no docker-compose.yml: no container runs")
        else:
            for path, text in files.items():
                target = os.path.join(root, path.lstrip("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "w") as out:
                    out.write(text)
                services.update(nginx_ports(text))
                published = ", ".join(f"{name} publishes {spec['ports']}" for name, spec in services.items())
                lines.append(f"docker compose up -d ({path}): {published or 'no nginx service'}")
        with open(os.path.join(root, "var/log/cloud-init-output.log"), "w") as out:
            out.write("\n".join(lines) + "\n")
        log(f"{instance.id} booted: {lines[-1]}")
        return {"services": services, "address": self.address("instance", instance.id), "compose": next(iter(files), None)}

    def write_instance_state(self, instance_id, state):
        running = {}
        for service, spec in state["services"].items():
            up = [p for p in spec["ports"] if (s := self.servers.get(("nginx", f"{instance_id}:{service}:{p}"))) and s.alive()]
            running[service] = {**spec, "running": bool(up) and len(up) == len(spec["ports"]), "container": f"{instance_id[2:14]}{abs(hash(service)) % 10**8:08d}"}
        path = os.path.join(self.instance_dir(instance_id), "state.json")
        document = json.dumps({"instance": instance_id, "compose": state.get("compose"), "services": running}, sort_keys=True)
        try:
            with open(path) as current:
                if current.read() == document:
                    return
        except OSError:
            pass
        with open(path + ".new", "w") as out:
            out.write(document)
        os.replace(path + ".new", path)

    def start_nginx(self, key, region, instance, state, port):
        directory = os.path.join(self.instance_dir(instance.id), "nginx", str(port))
        os.makedirs(directory, exist_ok=True)
        address = state["address"]
        config = f"""daemon off;
master_process off;
pid {directory}/nginx.pid;
error_log {directory}/error.log;
events {{ worker_connections 64; }}
http {{
  include /etc/nginx/mime.types;
  access_log {directory}/access.log;
  client_body_temp_path {directory}/client;
  proxy_temp_path {directory}/proxy;
  fastcgi_temp_path {directory}/fastcgi;
  uwsgi_temp_path {directory}/uwsgi;
  scgi_temp_path {directory}/scgi;
  server {{
    listen {address}:{port};
    root {APP_ROOT};
    index index.html;
  }}
}}
"""
        with open(os.path.join(directory, "nginx.conf"), "w") as out:
            out.write(config)
        process = self.spawn(
            [self.tools["nginx"], "-c", os.path.join(directory, "nginx.conf"), "-p", directory, "-e", os.path.join(directory, "error.log")],
            stderr=open(os.path.join(directory, "stderr.log"), "w"),
        )
        with self.lock:
            self.servers[key] = Server("nginx", region, instance.id, address, port, process, dir=directory)
        # Listening within some 50 ms: a health check right after the start finds it up.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and process.poll() is None:
            try:
                socket.create_connection((address, port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.01)
        log(f"nginx of {instance.id} on {address}:{port} (pid {process.pid})")

    # -- RDS: the database server --

    def keep_database(self, region, ec2, db):
        if getattr(db, "_three_tier_deleting", None) is not None or db.status in ("deleted", "deleting"):
            return set()
        # MariaDB stands for MySQL (and MariaDB) only: another engine gets no server.
        if str(getattr(db, "engine", "")).lower() not in ("mysql", "mariadb"):
            return set()
        key = ("mariadb", f"{region}:{db.db_instance_identifier}")
        if key not in self.servers:
            try:
                self.start_database(key, region, db)
            except Exception:
                log(f"could not start the server of {db.db_instance_identifier}: {traceback.format_exc()}")
                return set()
        return {key}

    def certificate_authority(self):
        ca = os.path.join(self.root, "rds-ca")
        if not os.path.exists(os.path.join(ca, "ca.pem")):
            os.makedirs(ca, exist_ok=True)
            subprocess.run(
                [self.tools["openssl"], "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", os.path.join(ca, "ca.key"), "-out", os.path.join(ca, "ca.pem"),
                 "-days", "3650", "-subj", "/CN=three-tier emulator RDS CA (stands for the RDS CA bundle)"],
                check=True, capture_output=True,
            )
        return ca

    def template(self):
        template = os.path.join(self.root, "db-template")
        if not os.path.exists(os.path.join(template, "done")):
            shutil.rmtree(template, ignore_errors=True)
            subprocess.run(
                [self.tools["mariadb-install-db"], "--no-defaults", f"--datadir={template}/data", "--auth-root-authentication-method=normal", "--skip-test-db",
                 "--innodb-log-file-size=4M"] + (["--user=root"] if os.geteuid() == 0 else []),
                check=True, capture_output=True,
            )
            open(os.path.join(template, "done"), "w").close()
        return os.path.join(template, "data")

    def start_database(self, key, region, db):
        with self.lock:
            n = len(self.addresses)
        directory = os.path.join(self.root, "db", f"{n}-{db.db_instance_identifier}")
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
        shutil.copytree(self.template(), os.path.join(directory, "data"))
        ca = self.certificate_authority()
        name = db.address
        subprocess.run([self.tools["openssl"], "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{directory}/server.key", "-out", f"{directory}/server.csr", "-subj", f"/CN={name}"], check=True, capture_output=True)
        with open(f"{directory}/ext", "w") as out:
            out.write(f"subjectAltName=DNS:{name}\n")
        subprocess.run([self.tools["openssl"], "x509", "-req", "-in", f"{directory}/server.csr", "-CA", f"{ca}/ca.pem", "-CAkey", f"{ca}/ca.key", "-CAcreateserial", "-out", f"{directory}/server.pem", "-days", "3650", "-extfile", f"{directory}/ext"], check=True, capture_output=True)
        user, password = master_credentials(db)
        database = getattr(db, "db_name", None)
        statements = []
        if database:
            statements.append(f"CREATE DATABASE IF NOT EXISTS `{database}`;")
        statements.append(f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{sql_quote(password)}';")
        statements.append(f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%' WITH GRANT OPTION;")
        init = f"{directory}/init.sql"
        with open(os.open(init, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            out.write("\n".join(statements) + "\n")
        address = self.address("db", f"{region}:{db.db_instance_identifier}")
        port = int(db.port or 3306)
        socket_path = os.path.join(self.short, f"{n}.sock")
        process = self.spawn(
            [self.tools["mariadbd"], "--no-defaults", f"--datadir={directory}/data", f"--bind-address={address}", f"--port={port}", f"--socket={socket_path}",
             f"--pid-file={directory}/mariadbd.pid", f"--ssl-ca={ca}/ca.pem", f"--ssl-cert={directory}/server.pem", f"--ssl-key={directory}/server.key",
             f"--init-file={init}", "--skip-log-bin", "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=4M", "--performance-schema=OFF",
             "--innodb-temp-data-file-path=ibtmp1:1M:autoextend", "--skip-name-resolve"] + (["--user=root"] if os.geteuid() == 0 else []),
            stderr=open(f"{directory}/mariadbd.log", "w"),
        )
        server = Server("mariadb", region, db.db_instance_identifier, address, port, process, dir=directory)
        server.socket = socket_path
        server.db = db
        with self.lock:
            self.servers[key] = server
            self.names[name.lower()] = address
        log(f"mariadbd for {db.db_instance_identifier} ({name}) on {address}:{port} (pid {process.pid})")

    def final_snapshot(self, server):
        """RDS snapshots the instance's storage: the stopped server's data directory is
        kept, under the snapshot's name, when the deletion asked for a final snapshot."""
        snapshot = getattr(server.db, "_three_tier_final_snapshot", None)
        if not snapshot:
            return
        target = os.path.join(self.root, "snapshots", server.region, snapshot)
        shutil.rmtree(target, ignore_errors=True)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.move(os.path.join(server.dir, "data"), target)
        log(f"final snapshot {snapshot} of {server.resource}: {target}")

    # -- ELBv2: listeners and health checks --

    def keep_load_balancer(self, region, ec2, elbv2, balancer):
        if balancer.state != "active":
            return set()
        address = self.address("alb", balancer.arn)
        with self.lock:
            self.names[balancer.dns_name.lower()] = address
        keep = set()
        for listener in list(balancer.listeners.values()):
            if str(listener.protocol).upper() != "HTTP":
                continue
            key = ("listener", listener.arn)
            keep.add(key)
            if key not in self.servers:
                self.start_listener(key, region, ec2, elbv2, balancer, listener, address)
        return keep

    def start_listener(self, key, region, ec2, elbv2, balancer, listener, address):
        plane = self
        port = int(listener.port)

        class Handler(ListenerHandler):
            pass

        Handler.context = (plane, region, ec2, elbv2, balancer.arn, listener.arn, port)
        try:
            server = http.server.ThreadingHTTPServer((address, port), Handler)
        except PermissionError:
            # A port under 1024 needs root: another one, found through the name map.
            server = http.server.ThreadingHTTPServer((address, 0), Handler)
        server.daemon_threads = True
        bound = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()

        def stop():
            server.shutdown()
            server.server_close()

        with self.lock:
            self.ports[(address, port)] = bound
            self.servers[key] = Server("listener", region, balancer.name, address, bound, stop=stop)
        log(f"listener {balancer.name}:{port} on {address}:{bound}")

    def check_targets(self, region, ec2, elbv2):
        for group in list(elbv2.target_groups.values()):
            self.check_group(region, ec2, elbv2, group)

    def catch_up(self, group):
        """Brings a target group's health up to its region's clock now: what
        DescribeTargetHealth answers does not wait for the next tick."""
        from moto.ec2.models import ec2_backends
        from moto.elbv2.models import elbv2_backends

        region = group.region_name
        ec2 = ec2_backends[group.account_id][region]
        with self.lock:
            for target in list(group.targets.values()):
                instance = ec2.get_instance_by_id(target["Id"])
                if instance is not None:
                    self.keep_instance(region, ec2, instance)
            self.check_group(region, ec2, elbv2_backends[group.account_id][region], group)

    def check_group(self, region, ec2, elbv2, group):
        """Runs the health checks due since the last ones, each at its moment of the
        region's clock: a check due before the instance's app was up fails, as it did on
        AWS; the others connect for real (once per catch-up: nothing changes meanwhile)."""
        now = self.clocks.now(region)
        balancers = [elbv2.load_balancers.get(arn) for arn in list(group.load_balancer_arns)]
        balancers = [b for b in balancers if b is not None and b.state == "active"]
        registered = group.__dict__.get("_three_tier_registered", {})
        interval = int(group.health_check_interval_seconds or 30) * self.scale
        thresholds = int(group.healthy_threshold_count or 5), int(group.unhealthy_threshold_count or 2)
        for target in list(group.targets.values()):
            key = (group.arn, target["Id"])
            since = registered.get(target["Id"])
            state = self.health.get(key)
            if state is None or state.since != since:
                state = self.health[key] = HealthState(since)
            if not balancers:
                continue
            if state.next_check is None:
                state.next_check = (since[1] if since else now) + interval
            due = []
            while state.next_check <= now and len(due) < 1000:
                due.append(state.next_check)
                state.next_check += interval
            if state.next_check <= now:
                state.next_check = now + interval
            app_up = self.app_up_at(ec2, target["Id"])
            real = None
            for moment in due:
                if app_up is None or moment < app_up:
                    outcome = False, "Target.FailedHealthChecks", "Health checks failed"
                else:
                    real = real or self.health_check(ec2, group, target, balancers)
                    outcome = real
                state.record(*outcome, *thresholds)

    def app_up_at(self, ec2, instance_id):
        """When the instance's user data has run, on its region's clock."""
        instance = ec2.get_instance_by_id(instance_id)
        launched = getattr(instance, "_three_tier_launched", None)
        if launched is None:
            return None
        return launched[1] + self.scaled("instance_running") + self.scaled("user_data_boot")

    def health_check(self, ec2, group, target, balancers):
        instance = ec2.get_instance_by_id(target["Id"])
        if instance is None or instance.state != "running":
            return False, "Target.Timeout", "Request timed out"
        port = int(target.get("Port") or group.port) if group.health_check_port in (None, "traffic-port") else int(group.health_check_port)
        me = instance_endpoint(ec2, instance)
        network = Network(ec2)
        for node in alb_nodes(balancers[0]):
            closed = network.tcp(node, me, port)
            if closed:
                return False, "Target.Timeout", f"Request timed out ({closed})"
        address = self.address("instance", instance.id)
        timeout = max(0.2, min(5.0, int(group.health_check_timeout_seconds or 5) * self.scale))
        try:
            connection = http.client.HTTPConnection(address, port, timeout=timeout)
            connection.request("GET", group.health_check_path or "/", headers={"User-Agent": "ELB-HealthChecker/2.0"})
            status = connection.getresponse().status
            connection.close()
        except socket.timeout:
            return False, "Target.Timeout", "Request timed out"
        except OSError:
            return False, "Target.FailedHealthChecks", "Health checks failed"
        if not matches(group.matcher, status):
            return False, "Target.ResponseCodeMismatch", f"Health checks failed with these codes: [{status}]"
        return True, None, None

    def target_health(self, group_arn, target_id):
        state = self.health.get((group_arn, target_id))
        if state is None:
            return "initial", "Elb.InitialHealthChecking", "Initial health checks in progress"
        return state.shown()

    # -- SSM: Run Command --

    def run_command(self, region, account, ec2, command, invocation, instance, script):
        sandbox = Sandbox(self, region, account, ec2, instance)
        threading.Thread(target=sandbox.run, args=(command, invocation, script), daemon=True).start()


def sql_quote(text):
    return text.replace("\\", "\\\\").replace("'", "''")


def master_credentials(db):
    secret = getattr(getattr(db, "master_user_secret", None), "secret", None)
    if secret is not None:
        value = json.loads(secret.secret_string)
        return value["username"], value["password"]
    return db.master_username, getattr(db, "master_user_password", "") or ""


def matches(matcher, status):
    codes = str((matcher or {}).get("HttpCode", "200"))
    for part in codes.split(","):
        if "-" in part:
            low, high = part.split("-")
            if int(low) <= status <= int(high):
                return True
        elif part.strip().isdigit() and int(part) == status:
            return True
    return False


class HealthState:
    """A target's health as AWS keeps it: `initial` until its first check passes, or
    `unhealthy` after the unhealthy threshold of failures; once unhealthy, the healthy
    threshold of passes in a row makes it healthy again."""

    def __init__(self, since):
        self.since = since
        self.next_check = None
        self.status, self.reason, self.description = "initial", "Elb.InitialHealthChecking", "Initial health checks in progress"
        self.passes = self.failures = 0

    def record(self, passed, reason, description, healthy_threshold, unhealthy_threshold):
        if passed:
            self.passes, self.failures = self.passes + 1, 0
            if self.status == "initial" or (self.status == "unhealthy" and self.passes >= healthy_threshold):
                self.status, self.reason, self.description = "healthy", None, None
        else:
            self.passes, self.failures = 0, self.failures + 1
            if self.status == "unhealthy":
                self.reason, self.description = reason, description
            elif self.failures >= unhealthy_threshold:
                self.status, self.reason, self.description = "unhealthy", reason, description

    def shown(self):
        return self.status, self.reason, self.description


AWS_ERROR_PAGES = {
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
    504: "504 Gateway Time-out",
}


def path_matches(pattern, path):
    expression = "^" + re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + "$"
    return re.match(expression, path) is not None


class ListenerHandler(http.server.BaseHTTPRequestHandler):
    """One ALB listener: the way in from the internet, its rules, and its targets."""

    protocol_version = "HTTP/1.1"
    context = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.serve()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def serve(self):
        plane, region, ec2, elbv2, balancer_arn, listener_arn, port = self.context
        plane.clocks.local.region = region
        self.close_connection = True
        balancer = elbv2.load_balancers.get(balancer_arn)
        listener = balancer.listeners.get(listener_arn) if balancer else None
        if listener is None:
            return
        network = Network(ec2)
        client = internet(INTERNET_CLIENT, "a client on the internet")
        for node in alb_nodes(balancer):
            closed = network.tcp(client, Endpoint(node.name, node.ip, node.subnet, node.groups), port) or network.to_internet(node.subnet, f"load balancer {balancer.name}")
            if closed:
                # AWS drops the packets: the client waits, then gives up.
                log(f"{balancer.name}:{port} unreachable: {closed}")
                return
        path = self.path.split("?", 1)[0]
        rules = sorted((r for r in list(listener._non_default_rules.values())), key=lambda r: int(r.priority))
        actions = listener.default_actions
        for rule in rules:
            if all(self.condition_holds(c, path) for c in rule.conditions or []):
                actions = rule.actions
                break
        action = sorted(actions, key=lambda a: int(a.data.get("Order", 0) or 0))[-1]
        kind = action.data.get("Type")
        if kind == "forward":
            self.forward(plane, ec2, elbv2, balancer, action)
        elif kind == "redirect":
            self.redirect(action.data.get("RedirectConfig") or {}, port)
        elif kind == "fixed-response":
            config = action.data.get("FixedResponseConfig") or {}
            self.answer(int(config.get("StatusCode", 200)), config.get("MessageBody", "").encode(), config.get("ContentType", "text/plain"))
        else:
            self.answer(503, AWS_ERROR_PAGES[503].encode())

    def condition_holds(self, condition, path):
        field = condition.get("Field")
        values = condition.get("Values") or []
        if field == "path-pattern":
            values = values or (condition.get("PathPatternConfig") or {}).get("Values") or []
            return any(path_matches(v, path) for v in values)
        if field == "host-header":
            values = values or (condition.get("HostHeaderConfig") or {}).get("Values") or []
            host = (self.headers.get("Host") or "").split(":")[0].lower()
            return any(path_matches(v.lower(), host) for v in values)
        return False

    def forward(self, plane, ec2, elbv2, balancer, action):
        arns = [action.data["TargetGroupArn"]] if action.data.get("TargetGroupArn") else [g["TargetGroupArn"] for g in (action.data.get("ForwardConfig") or {}).get("TargetGroups", [])]
        group = elbv2.target_groups.get(arns[0]) if arns else None
        targets = list(group.targets.values()) if group else []
        if not targets:
            return self.answer(503, error_page(503))
        healthy = [t for t in targets if plane.target_health(group.arn, t["Id"])[0] == "healthy"]
        # With no healthy target AWS fails open: it routes to every registered target.
        target = random.choice(healthy or targets)
        instance = ec2.get_instance_by_id(target["Id"])
        port = int(target.get("Port") or group.port)
        if instance is None or instance.state != "running":
            return self.answer(502, error_page(502))
        me = instance_endpoint(ec2, instance)
        network = Network(ec2)
        node = alb_nodes(balancer)[0]
        closed = network.tcp(node, me, port)
        if closed:
            # The connection to the target times out (10 s on AWS, scaled).
            log(f"{balancer.name} → {instance.id}:{port}: {closed}")
            time.sleep(min(1.0, 10 * plane.scale))
            return self.answer(504, error_page(504))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive", "transfer-encoding")}
        headers["X-Forwarded-For"] = INTERNET_CLIENT
        headers["X-Forwarded-Proto"] = "http"
        headers["X-Forwarded-Port"] = str(self.context[6])
        try:
            connection = http.client.HTTPConnection(plane.address("instance", instance.id), port, timeout=10)
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            connection.close()
        except OSError:
            return self.answer(502, error_page(502))
        self.send_response_only(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def redirect(self, config, port):
        host = (self.headers.get("Host") or "").split(":")[0]
        path, _, query = self.path.partition("?")
        values = {"protocol": "http", "host": host, "port": str(port), "path": path.lstrip("/"), "query": query}

        def fill(template):
            return re.sub(r"#\{(\w+)\}", lambda m: values.get(m.group(1), ""), template)

        protocol = fill(config.get("Protocol", "#{protocol}")).lower()
        target_port = fill(config.get("Port", "#{port}"))
        default_port = {"http": "80", "https": "443"}.get(protocol)
        location = f"{protocol}://{fill(config.get('Host', '#{host}'))}"
        if target_port != default_port:
            location += f":{target_port}"
        location += fill(config.get("Path", "/#{path}"))
        query = fill(config.get("Query", "#{query}"))
        if query:
            location += f"?{query}"
        status = 302 if config.get("StatusCode") == "HTTP_302" else 301
        self.answer(status, b"", extra={"Location": location})

    def answer(self, status, body, content_type="text/html", extra=None):
        self.send_response_only(status)
        self.send_header("Server", "awselb/2.0")
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def error_page(status):
    title = AWS_ERROR_PAGES[status]
    return f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n".encode()


# --- Run Command -----------------------------------------------------------------------


class Sandbox:
    """Stands for the instance a command runs on: the script runs unchanged, with bash, in
    a mount namespace of its own where /tmp, /var/log and /opt are the instance's and
    /etc/hosts resolves the stack's names to the data plane's addresses (or nowhere, where
    the instance's network does not reach). What exists only on EC2 is stood in for by
    programs first on PATH: `docker` (the compose project and its container, whose /tmp is
    its own), `curl` for the RDS CA bundle download, and `apt-get` in the container; the
    instance role's credentials are the emulator's, and the AWS CLI is the real one
    (awscli, in the emulator's virtualenv)."""

    def __init__(self, plane, region, account, ec2, instance):
        self.plane, self.region, self.account, self.ec2, self.instance = plane, region, account, ec2, instance

    def hosts(self):
        from moto.rds.models import rds_backends

        network = Network(self.ec2)
        me = instance_endpoint(self.ec2, self.instance)
        lines = ["127.0.0.1 localhost"]
        for db in list(rds_backends[self.account][self.region].databases.values()):
            server = self.plane.servers.get(("mariadb", f"{self.region}:{db.db_instance_identifier}"))
            there = database_endpoint(self.ec2, db)
            if server is None or there is None:
                continue
            closed = network.tcp(me, there, int(db.port or 3306))
            lines.append(f"{NOWHERE if closed else server.address} {db.address}")
        return "\n".join(lines) + "\n"

    def run(self, command, invocation, script):
        try:
            self.run_script(command, invocation, script)
        except Exception:
            log(f"command {command.command_id} on {self.instance.id} could not run: {traceback.format_exc()}")
            invocation.update({"Status": "Failed", "StatusDetails": "Failed", "ResponseCode": -1, "StandardErrorContent": "the emulator could not run the command (its log says why)"})

    def run_script(self, command, invocation, script):
        directory = os.path.join(self.plane.root, "commands", f"{command.command_id}-{self.instance.id}")
        instance_dir = self.plane.instance_dir(self.instance.id)
        for path in ("root/tmp", "root/var/log", "root/opt", "container/tmp"):
            os.makedirs(os.path.join(instance_dir, path), exist_ok=True)
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "hosts"), "w") as out:
            out.write(self.hosts())
        with open(os.path.join(directory, "script.sh"), "w") as out:
            out.write(script)
        stand_ins = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stand-ins")
        venv_bin = os.path.dirname(sys.executable)
        closed = Network(self.ec2).instance_to_internet(self.instance, 443)
        root = os.path.join(instance_dir, "root")
        keep = [self.plane.root, os.path.dirname(os.path.abspath(__file__)), venv_bin]
        wrapper = (
            "set -e\n"
            # The script is read through a descriptor opened before any mount.
            f"exec 3< {q(directory)}/script.sh\n"
            f"mount --bind {q(directory)}/hosts /etc/hosts\n"
            f"mount --bind {q(root)}/var/log /var/log\n"
            f"mount --bind {q(root)}/opt /opt\n"
            + own_tmp(f"{root}/tmp", keep)
            + "cd /\n"
            "exec bash /dev/fd/3\n"
        )
        with open(os.path.join(directory, "wrapper.sh"), "w") as out:
            out.write(wrapper)
        environment = {
            "PATH": f"{stand_ins}/instance:{venv_bin}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": self.region,
            # Without a way out, the instance reaches no AWS endpoint.
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.plane.moto_port}" if not closed else f"http://{NOWHERE}:9",
            "AWS_MAX_ATTEMPTS": "2",
            "THREE_TIER_INSTANCE_DIR": instance_dir,
            "THREE_TIER_STAND_INS": stand_ins,
            "THREE_TIER_RDS_CA": os.path.join(self.plane.root, "rds-ca", "ca.pem"),
            "THREE_TIER_INTERNET": "closed" if closed else "open",
        }
        unshare = [self.plane.tools["unshare"], "--mount", "--propagation", "private"]
        if os.geteuid() != 0:
            unshare.insert(1, "--map-root-user")
        status, code, output, errors = "Failed", 1, "", ""
        try:
            done = subprocess.run(unshare + ["bash", os.path.join(directory, "wrapper.sh")], env=environment, capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
            code, output, errors = done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
            status = "Success" if code == 0 else "Failed"
        except subprocess.TimeoutExpired as expired:
            status, code = "TimedOut", -1
            output = (expired.stdout or b"").decode("utf-8", "replace")
        except Exception:
            errors = traceback.format_exc()
        # SSM keeps the first 24,000 characters of each stream.
        invocation.update({
            "Status": status,
            "StatusDetails": status,
            "ResponseCode": code,
            "StandardOutputContent": output[:24000],
            "StandardErrorContent": errors[:8000],
        })
        command.status = status
        log(f"command {command.command_id} on {self.instance.id}: {status} ({code})")
        shutil.rmtree(directory, ignore_errors=True)


def own_tmp(directory, keep):
    """Shell lines that make `directory` the namespace's /tmp, while the paths of `keep`
    that lie under /tmp (a cargo target directory there, say) stay where they are."""
    lines = ""
    for top in sorted({path.split("/")[2] for path in keep if path.startswith("/tmp/") and len(path.split("/")) > 2}):
        lines += f"mkdir -p {q(directory)}/{q(top)}\nmount --bind {q('/tmp/' + top)} {q(directory)}/{q(top)}\n"
    return lines + f"mount --rbind {q(directory)} /tmp\n"


def q(path):
    return "'" + path.replace("'", "'\\''") + "'"


DATAPLANE = None


def install(clocks, scaled, scale, root, moto_port):
    """Starts the data plane and wires it into moto's backends (after the strict
    emulator's own rules, which it builds on)."""
    global DATAPLANE
    plane = DATAPLANE = DataPlane(root, clocks, scaled, scale, moto_port)
    plane.start()

    def stop(*_):
        plane.stop_all()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not plane.enabled:
        return plane

    # The managed secret holds a password of its own per instance, for its master user
    # (moto: always admin / P@55w0rd!).
    from moto.rds.models import MasterUserSecret

    def secret_string(self):
        user = getattr(self.resource, "master_username", None) or "admin"
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!#$%^&*()_+-=[]{}|<>?~"
        return json.dumps({"username": user, "password": "".join(secrets.choice(alphabet) for _ in range(28))})

    MasterUserSecret._generate_secret_string = secret_string

    # Target health from the real checks.
    from moto.elbv2.models import FakeTargetGroup

    original_health_for = FakeTargetGroup.health_for

    def health_for(self, target, ec2_backend):
        health = original_health_for(self, target, ec2_backend)
        if health.status != "healthy":
            return health
        if not self.load_balancer_arns:
            health.status, health.reason, health.description = "unused", "Target.NotInUse", "Target group is not configured to receive traffic from the load balancer"
            return health
        plane.catch_up(self)
        health.status, health.reason, health.description = plane.target_health(self.arn, target["Id"])
        return health

    FakeTargetGroup.health_for = health_for

    # Run Command runs.
    from moto.ec2.models import ec2_backends
    from moto.ssm.models import SimpleSystemManagerBackend

    original_send = SimpleSystemManagerBackend.send_command

    def send_command(self, *args, **kwargs):
        command = original_send(self, *args, **kwargs)
        script = "\n".join((command.parameters or {}).get("commands") or [])
        ec2 = ec2_backends[self.account_id][self.region_name]
        command.status = "InProgress"
        # moto 5.2 bug: a command for instance ids also targets every instance of the region
        # (its empty Targets filter matches them all); AWS runs it on the ids asked for.
        asked = set(kwargs.get("instance_ids") or [])
        if asked:
            command.invocations = [i for i in command.invocations if i["InstanceId"] in asked]
            command.instance_ids = [i for i in command.instance_ids if i in asked]
        for invocation in command.invocations:
            instance = ec2.get_instance_by_id(invocation["InstanceId"])
            invocation.update({"Status": "InProgress", "StatusDetails": "InProgress"})
            if instance is None:
                invocation.update({"Status": "Failed", "StatusDetails": "Undeliverable"})
                continue
            plane.run_command(self.region_name, self.account_id, ec2, command, invocation, instance, script)
        return command

    SimpleSystemManagerBackend.send_command = send_command
    return plane
