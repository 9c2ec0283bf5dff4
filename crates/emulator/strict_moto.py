"""three-tier's strict emulator: moto, with the AWS rules and the time this stack meets.

moto answers like AWS but is lenient and instantaneous (the project's EMULATOR.md). This
launcher wraps moto's backends, in this process, before it serves:

- Rules that AWS enforces and moto does not, with AWS's error codes: deleting a subnet,
  security group or VPC that is still in use, or the VPC's default group; detaching an
  internet gateway while public addresses are mapped, or attaching a second one;
  associating a subnet that has a route table already; a route to a NAT gateway that does
  not exist; releasing an Elastic IP that a NAT gateway still holds; an instance with an
  unknown image or type or another VPC's security group; an ALB in fewer than two zones,
  with another VPC's security group, or internet-facing in a VPC without an attached
  internet gateway; a second listener on a port; registering an instance
  EC2 does not know; a DB subnet group in one zone; RDS password, storage and final
  snapshot parameters; an instance type its subnet's zone does not offer. RDS reports its
  account quotas (DescribeAccountAttributes) and what it offers for MySQL
  (DescribeOrderableDBInstanceOptions), Service Quotas EC2's vCPU quota, as AWS does.
- Time: NAT gateways are `pending` and then `deleting` for a while, load balancers
  `provisioning`, their network interfaces linger after deletion, RDS instances are
  `creating`. Durations are SPEC.md's typical AWS times times THREE_TIER_TIME_SCALE
  (default 0.01: a 6-minute RDS instance takes 3.6 seconds).
- Eventual consistency: a new instance profile (or one just given its role) is refused by
  RunInstances for a while, and a new instance is unknown by its id to DescribeInstances,
  TerminateInstances and RegisterTargets for a moment.
- Idempotency: RunInstances and CreateNatGateway sent again with a ClientToken already
  used answer with what the first made.
- A log of every request (service, action, region, status), served at GET
  /three-tier/requests, fault injection per region (a call refused, or done with its
  answer lost), and a clock per region that tests
  freeze, advance or speed up (see RequestLog and Clocks).

It is pinned to the moto version in requirements.txt: it reaches into moto's models.
"""

import functools
import io
import json
import os
import random
import sys
import threading
import time
from urllib.parse import parse_qs

import dataplane

SCALE = float(os.environ.get("THREE_TIER_TIME_SCALE", "0.01"))

# Typical AWS durations in seconds: durations.json beside this file, which the tool's plans
# read too for their predictions (and so the benchmark's critical path).
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "durations.json")) as durations:
    DURATIONS = {k: v for k, v in json.load(durations).items() if not k.startswith("_")}


def scaled(name):
    return DURATIONS[name] * SCALE


class Clocks:
    """AWS time, one clock per region, which tests control (POST /three-tier/clock).

    A region's clock runs with the real one until a test freezes it, advances it by some
    seconds of AWS time, or runs it faster: a state then holds, or ends, exactly when the
    test says, however loaded the machine. Every moment the emulator keeps is a stamp of
    the clock of the region whose request made it (a thread-local set per request), and
    is read against that same clock.
    """

    def __init__(self):
        self.lock = threading.Lock()
        # region -> (real time at the last change, clock time then, rate)
        self.regions = {}
        self.local = threading.local()

    def now(self, region):
        real = time.monotonic()
        with self.lock:
            base_real, base_clock, rate = self.regions.get(region, (0.0, 0.0, 1.0))
        return base_clock + (real - base_real) * rate

    def set(self, region, change):
        """`change`: {"freeze": true} | {"rate": R} (1 runs it as real time again, from
        where it stands) | {"advance": seconds of AWS time}."""
        with self.lock:
            real = time.monotonic()
            base_real, base_clock, rate = self.regions.get(region, (0.0, 0.0, 1.0))
            now = base_clock + (real - base_real) * rate
            if change.get("freeze"):
                rate = 0.0
            if "rate" in change:
                rate = float(change["rate"])
            now += float(change.get("advance", 0.0)) * SCALE
            self.regions[region] = (real, now, rate)
            return {"region": region, "rate": rate}

    def region(self):
        return getattr(self.local, "region", "")


CLOCKS = Clocks()


def stamp():
    """Now, on the clock of the region whose request is being answered."""
    region = CLOCKS.region()
    return (region, CLOCKS.now(region))


def age(stamped):
    """How long ago `stamped` was, on the clock it was taken with."""
    region, at = stamped
    return CLOCKS.now(region) - at


def timed_attribute(cls, attribute, young):
    """Makes `cls.attribute` show an earlier value while the stored one is young.

    `young` maps a stored value to (the value shown meanwhile, the duration's name, or a
    function of the object giving its names): a NAT gateway stored `available` shows
    `pending` for the first 105 seconds (scaled).
    """
    store = "_three_tier_" + attribute

    def get(self):
        value, since = getattr(self, store, (None, None))
        shown = young.get(value)
        if shown and since is not None:
            names = shown[1](self) if callable(shown[1]) else [shown[1]]
            if age(since) < sum(scaled(name) for name in names):
                return shown[0]
        return value

    def set(self, value):
        # Setting the value it already has (moto "activates" a load balancer on every
        # describe) does not restart its clock.
        if getattr(self, store, (None, None))[0] != value:
            setattr(self, store, (value, stamp()))

    setattr(cls, attribute, property(get, set))


# Quotas a test raised: (region, service code, quota code) -> the applied value.
RAISED_QUOTAS = {}

# EC2's quotas Service Quotas reports (moto 5.2 knows VPC's only), as an account a few
# years old has them: Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances,
# in vCPUs.
EC2_QUOTAS = {
    "L-1216C47A": {"QuotaName": "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", "Value": 64.0},
}

# What RDS offers for MySQL, as DescribeOrderableDBInstanceOptions lists it: a few current
# releases and classes (the ones the tests use), every storage type. A class not listed
# (db.r6gd.xlarge, say) stands for one RDS does not offer for MySQL 8.4.
ORDERABLE_MYSQL_ENGINES = ("mysql",)
ORDERABLE_MYSQL_VERSIONS = ("8.0.40", "8.4.3", "8.4.4", "8.4.5")
ORDERABLE_MYSQL_CLASSES = ("db.t3.micro", "db.t3.small", "db.t3.medium", "db.t4g.micro", "db.t4g.small", "db.m5.large", "db.m6g.large", "db.r5.large")
ORDERABLE_STORAGE = ("gp2", "gp3", "io1", "standard")

# Deleted load balancers whose interfaces still hold their subnets and groups:
# (subnet ids, security group ids, deleted at).
LINGERING = []
LINGERING_LOCK = threading.Lock()


# Set while moto deletes a VPC (and its default security group) on this thread.
VPC_DELETION = threading.local()


def lingering_interfaces():
    with LINGERING_LOCK:
        LINGERING[:] = [entry for entry in LINGERING if age(entry[2]) < scaled("load_balancer_interfaces_linger")]
        return list(LINGERING)


def install():
    from moto.ec2.exceptions import DependencyViolationError, EC2ClientError
    from moto.ec2.models import EC2Backend
    from moto.ec2.models.nat_gateways import NatGateway
    from moto.elbv2.exceptions import ELBClientError
    from moto.elbv2.models import ELBv2Backend, FakeLoadBalancer, elbv2_backends
    from moto.rds.exceptions import RDSClientError
    from moto.rds.models import DBInstance, RDSBackend, rds_backends

    def purge_deleted(backend):
        """Forgets RDS instances whose deletion has taken its time."""
        for identifier, database in list(backend.databases.items()):
            since = getattr(database, "_three_tier_deleting", None)
            if since is not None and age(since) >= scaled("db_instance_deleted"):
                backend.databases.pop(identifier, None)

    # --- speed ---
    # moto lists a response class's methods with `inspect` on every request, a tenth of
    # its time per call (measured with py-spy); the classes do not change once installed.
    from moto.core import responses as moto_responses

    moto_responses.method_names_from_class = functools.lru_cache(maxsize=None)(moto_responses.method_names_from_class)

    # --- time ---
    timed_attribute(NatGateway, "state", {"available": ("pending", "nat_gateway_available"), "deleted": ("deleting", "nat_gateway_deleted")})
    timed_attribute(FakeLoadBalancer, "state", {"active": ("provisioning", "load_balancer_active")})
    # moto activates a load balancer on its first describe: it is active from its creation
    # on, shown `provisioning` while young.
    original_lb_init = FakeLoadBalancer.__init__

    def lb_init(self, *args, **kwargs):
        original_lb_init(self, *args, **kwargs)
        self.state = "active"

    FakeLoadBalancer.__init__ = lb_init
    # A Multi-AZ instance is created, then given its standby before it is available.
    def db_creation(db):
        created = getattr(db, "_three_tier_created_multi_az", None)
        standby = created is not None and created is getattr(db, "_three_tier_status", (None, None))[1]
        return ["db_instance_available"] + (["db_standby_added"] if standby else [])

    timed_attribute(DBInstance, "status", {"available": ("creating", db_creation)})

    from moto.ec2.models.instances import InstanceState

    timed_attribute(
        InstanceState,
        "name",
        {"running": ("pending", "instance_running"), "terminated": ("shutting-down", "instance_terminated")},
    )
    codes = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
    InstanceState.code = property(lambda self: codes.get(self.name, 0), lambda self, value: None)

    from moto.elbv2.models import FakeTargetGroup

    original_register = FakeTargetGroup.register

    def register(self, targets):
        registered = self.__dict__.setdefault("_three_tier_registered", {})
        for target in targets:
            registered[target["Id"]] = stamp()
        return original_register(self, targets)

    FakeTargetGroup.register = register

    # Without the data plane's servers (their packages missing), target health follows
    # AWS's typical timeline; with them, it comes from real health checks (dataplane.py).
    if dataplane.missing_packages():
        original_health_for = FakeTargetGroup.health_for

        def health_for(self, target, ec2_backend):
            """As AWS: `initial` through the first checks; then, while the instance's user data
            is still starting the app, `unhealthy`; a target that failed meanwhile needs five
            passing checks 30 s apart after the app is up."""
            health = original_health_for(self, target, ec2_backend)
            since = self.__dict__.get("_three_tier_registered", {}).get(target["Id"])
            if health.status != "healthy" or since is None:
                return health
            instance = ec2_backend.get_instance_by_id(target["Id"])
            launched = getattr(instance, "_three_tier_launched", None)
            # How long ago the checks began, and the app came up (negative: not yet).
            checked = age(since) - scaled("target_healthy")
            app_up = age(since) if launched is None else age(launched) - scaled("instance_running") - scaled("user_data_boot")
            if checked < 0:
                health.status, health.reason, health.description = "initial", "Elb.InitialHealthChecking", "Initial health checks in progress"
            elif app_up < checked and app_up < scaled("target_recovery"):
                health.status, health.reason, health.description = "unhealthy", "Target.FailedHealthChecks", "Health checks failed"
            return health

        FakeTargetGroup.health_for = health_for

    def gateways_in_use(ec2, subnet_id=None):
        return [
            nat
            for nat in ec2.nat_gateways.values()
            if nat.state != "deleted" and (subnet_id is None or nat.subnet_id == subnet_id)
        ]

    def live_instances(ec2):
        return [i for i in ec2.all_instances() if i.state not in ("terminated",)]

    def instance_groups(instance):
        groups = set()
        for group in getattr(instance, "security_groups", None) or []:
            groups.add(getattr(group, "id", group))
        for nic in (getattr(instance, "nics", None) or {}).values():
            for group in getattr(nic, "group_set", None) or []:
                groups.add(getattr(group, "id", group))
        return groups

    def load_balancers(ec2):
        return list(elbv2_backends[ec2.account_id][ec2.region_name].load_balancers.values())

    def databases(ec2):
        backend = rds_backends[ec2.account_id][ec2.region_name]
        purge_deleted(backend)
        return list(backend.databases.values())

    def database_subnets(db):
        group = getattr(db, "db_subnet_group", None)
        return {s.id for s in getattr(group, "_subnets", None) or []}

    def database_groups(db):
        return set(getattr(db, "vpc_security_group_ids", None) or [])

    # moto 5.2 bug: a revoke matches a group-sourced rule only with the same description;
    # AWS matches by protocol, ports and source alone, as it does for address ranges.
    from moto.ec2.models.security_groups import SecurityGroupRule

    def rule_eq(self, other):
        def source(rule):
            return {k: v for k, v in (rule.source_group or {}).items() if k in ("GroupId", "GroupName")}

        if self.ip_protocol != other.ip_protocol or source(self) != source(other):
            return False
        for key in ("CidrIp", "CidrIpv6"):
            if key in self.ip_range and self.ip_range.get(key) != other.ip_range.get(key):
                return False
        if self.prefix_list_id != other.prefix_list_id:
            return False
        return self.ip_protocol == "-1" or (self.from_port, self.to_port) == (other.from_port, other.to_port)

    SecurityGroupRule.__eq__ = rule_eq

    # --- EC2 rules ---
    original_delete_subnet = EC2Backend.delete_subnet

    def delete_subnet(self, subnet_id):
        users = [f"NAT gateway {n.id}" for n in gateways_in_use(self, subnet_id)]
        users += [f"instance {i.id}" for i in live_instances(self) if i.subnet_id == subnet_id]
        users += [f"load balancer {lb.name}" for lb in load_balancers(self) if subnet_id in {s.id for s in lb.subnets}]
        users += ["the interfaces of a deleted load balancer" for entry in lingering_interfaces() if subnet_id in entry[0]]
        users += [f"RDS instance {db.db_instance_identifier}" for db in databases(self) if subnet_id in database_subnets(db)]
        if users:
            raise DependencyViolationError(f"The subnet '{subnet_id}' has dependencies and cannot be deleted ({', '.join(users)}).")
        return original_delete_subnet(self, subnet_id)

    EC2Backend.delete_subnet = delete_subnet

    original_delete_group = EC2Backend.delete_security_group

    def delete_security_group(self, name=None, group_id=None):
        group = self.get_security_group_from_id(group_id) if group_id else self.get_security_group_by_name_or_id(name)
        if group is not None:
            users = []
            for others in self.groups.values():
                for other in others.values():
                    if other.id == group.id:
                        continue
                    for rule in list(other.ingress_rules) + list(other.egress_rules):
                        if (rule.source_group or {}).get("GroupId") == group.id:
                            users.append(f"a rule of {other.id}")
            users += [f"instance {i.id}" for i in live_instances(self) if group.id in instance_groups(i)]
            users += [f"load balancer {lb.name}" for lb in load_balancers(self) if group.id in (lb.security_groups or [])]
            users += ["the interfaces of a deleted load balancer" for entry in lingering_interfaces() if group.id in entry[1]]
            users += [f"RDS instance {db.db_instance_identifier}" for db in databases(self) if group.id in database_groups(db)]
            if users:
                raise DependencyViolationError(
                    f"resource {group.id} has a dependent object ({', '.join(sorted(set(users)))})"
                )
        return original_delete_group(self, name=name, group_id=group_id)

    EC2Backend.delete_security_group = delete_security_group

    original_delete_vpc = EC2Backend.delete_vpc

    def delete_vpc(self, vpc_id):
        attached = [g.id for g in self.internet_gateways.values() if g.vpc and g.vpc.id == vpc_id]
        groups = [g.id for g in self.groups.get(vpc_id, {}).values() if g.name != "default"]
        if attached or groups:
            raise DependencyViolationError(
                f"The vpc '{vpc_id}' has dependencies and cannot be deleted ({', '.join(attached + groups)})."
            )
        VPC_DELETION.active = True
        try:
            return original_delete_vpc(self, vpc_id)
        finally:
            VPC_DELETION.active = False

    EC2Backend.delete_vpc = delete_vpc

    original_delete_group_inner = EC2Backend._delete_security_group

    def _delete_security_group(self, vpc_id, group_id):
        group = self.get_security_group_from_id(group_id)
        # moto's DeleteVpc deletes the default group itself, as AWS does.
        if group is not None and group.name == "default" and not getattr(VPC_DELETION, "active", False):
            raise EC2ClientError("CannotDelete", f'the specified group: "{group_id}" name: "default" cannot be deleted by a user')
        return original_delete_group_inner(self, vpc_id, group_id)

    EC2Backend._delete_security_group = _delete_security_group

    original_attach = EC2Backend.attach_internet_gateway

    def attach_internet_gateway(self, internet_gateway_id, vpc_id):
        for other in self.internet_gateways.values():
            if other.id != internet_gateway_id and other.vpc is not None and other.vpc.id == vpc_id:
                raise EC2ClientError(
                    "Resource.AlreadyAssociated", f"resource {vpc_id} is already attached to network gateway {other.id}"
                )
        return original_attach(self, internet_gateway_id, vpc_id)

    EC2Backend.attach_internet_gateway = attach_internet_gateway

    # moto answers with the existing association, wherever it is.
    original_associate = EC2Backend.associate_route_table

    def associate_route_table(self, route_table_id, gateway_id=None, subnet_id=None):
        if subnet_id is not None:
            for table in self.route_tables.values():
                if subnet_id in table._associations.values():
                    raise EC2ClientError(
                        "Resource.AlreadyAssociated",
                        f"the specified association for route table {route_table_id} conflicts with an existing association",
                    )
        return original_associate(self, route_table_id, gateway_id=gateway_id, subnet_id=subnet_id)

    EC2Backend.associate_route_table = associate_route_table

    # --- EC2's eventual consistency: a new NAT gateway, security group or route table is
    # unknown by its id, to describes and to calls that use it, for a moment. ---
    def unknown_while_young(thing, code, kind, thing_id):
        if thing is not None and young(thing, "_three_tier_created", "new_resource_visible"):
            raise EC2ClientError(code, f"The {kind} ID '{thing_id}' does not exist")

    def young_group(ec2, group_id):
        unknown_while_young(ec2.get_security_group_from_id(group_id), "InvalidGroup.NotFound", "security group", group_id)

    def young_table(ec2, table_id):
        unknown_while_young(ec2.route_tables.get(table_id), "InvalidRouteTableID.NotFound", "route table", table_id)

    def young_nat(ec2, nat_id):
        unknown_while_young(ec2.nat_gateways.get(nat_id), "NatGatewayNotFound", "NAT gateway", nat_id)

    def stamped(original, skip=lambda kwargs: False):
        def create(self, *args, **kwargs):
            made = original(self, *args, **kwargs)
            if not skip(kwargs):
                made._three_tier_created = stamp()
            return made

        return create

    # The VPC's own default group and main table are there from the VPC's creation on.
    EC2Backend.create_security_group = stamped(EC2Backend.create_security_group, lambda kw: kw.get("is_default"))
    EC2Backend.create_route_table = stamped(EC2Backend.create_route_table, lambda kw: kw.get("main"))
    EC2Backend.create_nat_gateway = stamped(EC2Backend.create_nat_gateway)

    original_describe_groups = EC2Backend.describe_security_groups

    def describe_security_groups(self, group_ids=None, groupnames=None, filters=None):
        for group_id in group_ids or []:
            young_group(self, group_id)
        return original_describe_groups(self, group_ids, groupnames, filters)

    EC2Backend.describe_security_groups = describe_security_groups
    original_authorize = EC2Backend.authorize_security_group_ingress

    def authorize_security_group_ingress(self, group_name_or_id, *args, **kwargs):
        young_group(self, group_name_or_id)
        for source in kwargs.get("source_groups") or []:
            if source.get("GroupId"):
                young_group(self, source["GroupId"])
        return original_authorize(self, group_name_or_id, *args, **kwargs)

    EC2Backend.authorize_security_group_ingress = authorize_security_group_ingress
    original_describe_tables = EC2Backend.describe_route_tables

    def describe_route_tables(self, route_table_ids=None, filters=None):
        for table_id in route_table_ids or []:
            young_table(self, table_id)
        return original_describe_tables(self, route_table_ids, filters)

    EC2Backend.describe_route_tables = describe_route_tables
    strict_associate = EC2Backend.associate_route_table

    def associate_young_table(self, route_table_id, gateway_id=None, subnet_id=None):
        young_table(self, route_table_id)
        return strict_associate(self, route_table_id, gateway_id=gateway_id, subnet_id=subnet_id)

    EC2Backend.associate_route_table = associate_young_table
    original_describe_nats = EC2Backend.describe_nat_gateways

    def describe_nat_gateways(self, filters, nat_gateway_ids):
        for nat_id in nat_gateway_ids or []:
            young_nat(self, nat_id)
        return original_describe_nats(self, filters, nat_gateway_ids)

    EC2Backend.describe_nat_gateways = describe_nat_gateways

    original_create_route = EC2Backend.create_route

    def create_route(self, *args, **kwargs):
        young_table(self, kwargs.get("route_table_id") or args[0])
        nat_id = kwargs.get("nat_gateway_id")
        if nat_id is not None:
            young_nat(self, nat_id)
        if nat_id is not None:
            nat = self.nat_gateways.get(nat_id)
            if nat is None or nat.state in ("deleting", "deleted"):
                raise EC2ClientError("InvalidNatGatewayID.NotFound", f"The natGateway ID '{nat_id}' does not exist")
        return original_create_route(self, *args, **kwargs)

    EC2Backend.create_route = create_route

    original_detach = EC2Backend.detach_internet_gateway

    def detach_internet_gateway(self, internet_gateway_id, vpc_id):
        mapped = [n.id for n in self.nat_gateways.values() if n.state != "deleted" and n.vpc_id == vpc_id and n.address_set]
        if mapped:
            raise DependencyViolationError(
                f"Network {vpc_id} has some mapped public address(es). Please unmap those public address(es) before detaching the gateway."
            )
        return original_detach(self, internet_gateway_id, vpc_id)

    EC2Backend.detach_internet_gateway = detach_internet_gateway

    original_release = EC2Backend.release_address

    def release_address(self, *args, **kwargs):
        allocation_id = kwargs.get("allocation_id") or (args[1] if len(args) > 1 else None)
        holders = [
            n.id
            for n in self.nat_gateways.values()
            if n.state != "deleted" and any(a.get("allocationId") == allocation_id for a in n.address_set)
        ]
        if allocation_id and holders:
            raise EC2ClientError("InvalidIPAddress.InUse", f"Address {allocation_id} is in use by {holders[0]}.")
        # As AWS, for a while after the NAT gateway that held it is `deleted`, the address
        # is refused as if it were not the caller's.
        just_deleted = [
            n.id
            for n in self.nat_gateways.values()
            if n.state == "deleted"
            and any(a.get("allocationId") == allocation_id for a in n.address_set)
            and age(n._three_tier_state[1]) < scaled("nat_gateway_deleted") + scaled("address_release_delay")
        ]
        if allocation_id and just_deleted:
            raise EC2ClientError("AuthFailure", "You do not have permission to access the specified resource.")
        return original_release(self, *args, **kwargs)

    EC2Backend.release_address = release_address

    # --- RDS account quotas (moto 5.2 answers DescribeAccountAttributes with a 500) ---
    from moto.core.responses import ActionResult
    from moto.rds.responses import RDSResponse

    def describe_account_attributes(self):
        used = len([db for db in self.backend.databases.values() if db.status != "deleted"])
        return ActionResult({"AccountQuotas": [{"AccountQuotaName": "DBInstances", "Used": used, "Max": 40}]})

    RDSResponse.describe_account_attributes = describe_account_attributes

    # --- RDS orderable options (moto 5.2 lists none for MySQL; AWS lists thousands) ---
    from moto.rds.models import RDSBackend as OrderableBackend

    original_orderable = OrderableBackend.describe_orderable_db_instance_options

    def describe_orderable_db_instance_options(self, engine, engine_version):
        if engine not in ORDERABLE_MYSQL_ENGINES:
            return original_orderable(self, engine, engine_version)
        options = []
        for version in ORDERABLE_MYSQL_VERSIONS:
            if engine_version and version != engine_version:
                continue
            for db_class in ORDERABLE_MYSQL_CLASSES:
                for storage in ORDERABLE_STORAGE:
                    options.append({
                        "Engine": engine, "EngineVersion": version, "DBInstanceClass": db_class,
                        "LicenseModel": "general-public-license", "StorageType": storage,
                        "AvailabilityZones": [], "MultiAZCapable": True, "ReadReplicaCapable": True,
                        "Vpc": True, "SupportsStorageEncryption": True,
                    })
        return options

    OrderableBackend.describe_orderable_db_instance_options = describe_orderable_db_instance_options

    # moto 5.2 ignores the DBInstanceClass filter; AWS lists that class's options only.
    from moto.core.responses import PaginatedResult

    def describe_orderable_options_response(self):
        options = self.backend.describe_orderable_db_instance_options(self.params.get("Engine"), self.params.get("EngineVersion"))
        wanted = self.params.get("DBInstanceClass")
        if wanted:
            options = [o for o in options if o.get("DBInstanceClass") == wanted]
        return PaginatedResult({"OrderableDBInstanceOptions": options})

    RDSResponse.describe_orderable_db_instance_options = describe_orderable_options_response

    # --- Idempotency tokens: a create sent again with the ClientToken of one that was
    # made answers with what that one made, as AWS does (moto would make a second). The SDK
    # sends the same token when it retries a call whose answer was lost. ---
    from moto.ec2.responses.instances import InstanceResponse
    from moto.ec2.responses.nat_gateways import NatGateways

    made_with_token = {}
    tokens_lock = threading.Lock()

    def idempotent(action, original):
        def create(self):
            token = self._get_param("ClientToken")
            if not token:
                return original(self)
            key = (self.current_account, self.region, action, token)
            with tokens_lock:
                if key in made_with_token:
                    return made_with_token[key]
            result = original(self)
            with tokens_lock:
                return made_with_token.setdefault(key, result)

        return create

    InstanceResponse.run_instances = idempotent("RunInstances", InstanceResponse.run_instances)
    NatGateways.create_nat_gateway = idempotent("CreateNatGateway", NatGateways.create_nat_gateway)

    # --- ELBv2 rules ---
    original_create_lb = ELBv2Backend.create_load_balancer

    def create_load_balancer(self, name, security_groups, subnet_ids, *args, **kwargs):
        from moto.ec2.models import ec2_backends

        ec2 = ec2_backends[self.account_id][self.region_name]
        zones = {ec2.get_subnet(s).availability_zone for s in subnet_ids or []}
        if len(zones) < 2:
            raise ELBClientError(
                "ValidationError",
                "At least two subnets in two different Availability Zones must be specified",
            )
        vpcs = {ec2.get_subnet(s).vpc_id for s in subnet_ids}
        for group_id in security_groups or []:
            group = ec2.get_security_group_from_id(group_id)
            if group is None or group.vpc_id not in vpcs:
                raise ELBClientError("InvalidSecurityGroup", f"Security group '{group_id}' does not exist in the load balancer's VPC")
        # An internet-facing load balancer needs its VPC's internet gateway attached (AWS
        # answers InvalidSubnet); an internal one does not.
        scheme = kwargs.get("scheme", args[1] if len(args) > 1 else "internet-facing")
        if scheme != "internal":
            attached = {g.vpc.id for g in ec2.internet_gateways.values() if g.vpc is not None}
            for vpc_id in sorted(vpcs - attached):
                raise ELBClientError("InvalidSubnet", f"VPC {vpc_id} has no internet gateway")
        return original_create_lb(self, name, security_groups, subnet_ids, *args, **kwargs)

    ELBv2Backend.create_load_balancer = create_load_balancer

    # moto looks the port up among listener ARNs, so never finds it.
    original_create_listener = ELBv2Backend.create_listener

    def create_listener(self, load_balancer_arn, protocol, port, *args, **kwargs):
        balancer = self.load_balancers.get(load_balancer_arn)
        if balancer is not None and any(str(listener.port) == str(port) for listener in balancer.listeners.values()):
            raise ELBClientError("DuplicateListener", "A listener already exists on this port for this load balancer")
        return original_create_listener(self, load_balancer_arn, protocol, port, *args, **kwargs)

    ELBv2Backend.create_listener = create_listener

    original_delete_lb = ELBv2Backend.delete_load_balancer

    def delete_load_balancer(self, arn):
        lb = self.load_balancers.get(arn)
        if lb is not None:
            with LINGERING_LOCK:
                LINGERING.append(({s.id for s in lb.subnets}, set(lb.security_groups or []), stamp()))
        return original_delete_lb(self, arn)

    ELBv2Backend.delete_load_balancer = delete_load_balancer

    # --- RDS rules ---
    original_create_subnet_group = RDSBackend.create_subnet_group

    def create_subnet_group(self, subnet_name, description, subnets, tags):
        if len({s.availability_zone for s in subnets}) < 2:
            raise RDSClientError(
                "DBSubnetGroupDoesNotCoverEnoughAZs",
                "The DB subnet group doesn't meet Availability Zone (AZ) coverage requirement. Current AZ coverage: "
                + ", ".join(sorted({s.availability_zone for s in subnets}))
                + ". Add subnets to cover at least 2 AZs.",
            )
        return original_create_subnet_group(self, subnet_name, description, subnets, tags)

    RDSBackend.create_subnet_group = create_subnet_group

    original_create_db = RDSBackend.create_db_instance

    def create_db_instance(self, db_kwargs):
        managed = bool(db_kwargs.get("manage_master_user_password"))
        password = db_kwargs.get("master_user_password")
        if db_kwargs.get("db_cluster_identifier") is None:
            if managed and password:
                raise RDSClientError("InvalidParameterCombination", "Password can't be specified if ManageMasterUserPassword is turned on.")
            if not managed and not password:
                raise RDSClientError("InvalidParameterValue", "The parameter MasterUserPassword must be provided and must not be blank.")
            storage = db_kwargs.get("allocated_storage")
            if storage is not None and int(storage) < 20:
                raise RDSClientError("InvalidParameterValue", "Invalid storage size for engine name mysql and storage type gp2: " + str(storage))
        created = original_create_db(self, db_kwargs)
        # Created Multi-AZ: `creating` until its standby is added too. Kept as the stamp of
        # the creation's status, so neither Multi-AZ turned on later nor a start (a status
        # stamped anew) waits for a standby.
        if getattr(created, "multi_az", False):
            created._three_tier_created_multi_az = getattr(created, "_three_tier_status", (None, None))[1]
        return created

    RDSBackend.create_db_instance = create_db_instance

    # --- RDS Multi-AZ (moto 5.2 stores MultiAZ and names no standby): AWS keeps the
    # standby in another zone of the DB subnet group and names it SecondaryAvailabilityZone.
    def secondary_availability_zone(db):
        if not getattr(db, "multi_az", False):
            return None
        group = getattr(db, "db_subnet_group", None)
        zones = sorted({subnet.availability_zone for subnet in getattr(group, "_subnets", None) or []})
        others = [zone for zone in zones if zone != db.availability_zone]
        return others[0] if others else None

    DBInstance.secondary_availability_zone = property(secondary_availability_zone)

    original_delete_db = RDSBackend.delete_db_instance

    def delete_db_instance(self, db_instance_identifier, final_db_snapshot_identifier=None, skip_final_snapshot=False, delete_automated_backups=True):
        purge_deleted(self)
        database = self.databases.get(db_instance_identifier)
        if database is not None and getattr(database, "_three_tier_deleting", None):
            raise RDSClientError("InvalidDBInstanceState", f"Instance {db_instance_identifier} is already being deleted.")
        if not skip_final_snapshot and not final_db_snapshot_identifier:
            raise RDSClientError(
                "InvalidParameterCombination",
                "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.",
            )
        deleted = original_delete_db(self, db_instance_identifier, final_db_snapshot_identifier, skip_final_snapshot, delete_automated_backups)
        # The data plane dumps the server's data into it before stopping the server.
        deleted._three_tier_final_snapshot = None if skip_final_snapshot else final_db_snapshot_identifier
        # AWS takes minutes: the instance stays, `deleting`, until then.
        deleted.status = "deleting"
        deleted._three_tier_deleting = stamp()
        self.databases[db_instance_identifier] = deleted
        return deleted

    RDSBackend.delete_db_instance = delete_db_instance
    original_describe_dbs = RDSBackend.describe_db_instances

    def describe_db_instances(self, *args, **kwargs):
        purge_deleted(self)
        return original_describe_dbs(self, *args, **kwargs)

    RDSBackend.describe_db_instances = describe_db_instances

    original_delete_subnet_group = RDSBackend.delete_subnet_group

    def delete_subnet_group(self, subnet_name):
        purge_deleted(self)
        users = [
            db.db_instance_identifier
            for db in self.databases.values()
            if getattr(getattr(db, "db_subnet_group", None), "name", None) == subnet_name.lower()
        ]
        if users:
            raise RDSClientError("InvalidDBSubnetGroupStateFault", f"Cannot delete the subnet group '{subnet_name}' because at least one database instance: {users[0]} is still using it.")
        return original_delete_subnet_group(self, subnet_name)

    RDSBackend.delete_subnet_group = delete_subnet_group

    # --- eventual consistency ---
    from moto.ec2.exceptions import InvalidInstanceIdError
    from moto.ec2.utils import filter_iam_instance_profiles
    from moto.iam.models import IAMBackend

    def touch_profile(profile):
        profile._three_tier_changed = stamp()
        return profile

    original_create_profile = IAMBackend.create_instance_profile

    def create_instance_profile(self, *args, **kwargs):
        return touch_profile(original_create_profile(self, *args, **kwargs))

    IAMBackend.create_instance_profile = create_instance_profile
    original_add_role = IAMBackend.add_role_to_instance_profile

    def add_role_to_instance_profile(self, profile_name, role_name):
        original_add_role(self, profile_name, role_name)
        touch_profile(self.get_instance_profile(profile_name))

    IAMBackend.add_role_to_instance_profile = add_role_to_instance_profile

    def young(thing, stamp, duration):
        since = getattr(thing, stamp, None)
        return since is not None and age(since) < scaled(duration)

    original_run = EC2Backend.run_instances

    from moto.ec2.exceptions import InvalidInstanceTypeError
    from moto.ec2.models.instance_types import INSTANCE_TYPES

    def run_instances(self, image_id, count, user_data, security_group_names, **kwargs):
        subnet_id, group_ids = kwargs.get("subnet_id"), list(kwargs.get("security_group_ids") or [])
        for nic in kwargs.get("nics") or []:
            subnet_id = nic.get("SubnetId") or subnet_id
            group_ids += nic.get("Groups") or []
        if subnet_id:
            vpc_id = self.get_subnet(subnet_id).vpc_id
            for group_id in group_ids:
                group = self.get_security_group_from_id(group_id)
                if group is not None and group.vpc_id != vpc_id:
                    raise EC2ClientError("InvalidParameter", f"Security group {group_id} and subnet {subnet_id} belong to different networks.")
        name, arn = kwargs.get("iam_instance_profile_name"), kwargs.get("iam_instance_profile_arn")
        if name or arn:
            profile = filter_iam_instance_profiles(self.account_id, self.partition, arn, name)
            if young(profile, "_three_tier_changed", "instance_profile_usable"):
                raise EC2ClientError(
                    "InvalidParameterValue",
                    f"Value ({name or arn}) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name",
                )
        wanted = kwargs.get("instance_type")
        if subnet_id and wanted in INSTANCE_TYPES:
            zone = self.get_subnet(subnet_id).availability_zone
            offered = self.describe_instance_type_offerings("availability-zone", {"location": [zone], "instance-type": [wanted]})
            # A zone moto has no offerings data for is not judged.
            known = self.describe_instance_type_offerings("availability-zone", {"location": [zone]})
            if known and not offered:
                raise EC2ClientError(
                    "Unsupported",
                    f"Your requested instance type ({wanted}) is not supported in your requested Availability Zone ({zone}). "
                    "Please retry your request by not specifying an Availability Zone or choosing another one.",
                )
        try:
            reservation = original_run(self, image_id, count, user_data, security_group_names, **kwargs)
        except InvalidInstanceTypeError:
            # moto answers InvalidInstanceType.NotFound; AWS refuses a type it does not know
            # as a bad parameter, and one its zone does not offer as Unsupported.
            wanted = kwargs.get("instance_type")
            if wanted in INSTANCE_TYPES:
                zone = self.get_subnet(subnet_id).availability_zone if subnet_id else self.region_name
                raise EC2ClientError(
                    "Unsupported",
                    f"Your requested instance type ({wanted}) is not supported in your requested Availability Zone ({zone}).",
                )
            raise EC2ClientError("InvalidParameterValue", f"Invalid value '{wanted}' for InstanceType.")
        for instance in reservation.instances:
            instance._three_tier_launched = stamp()
        return reservation

    EC2Backend.run_instances = run_instances
    original_replace_association = EC2Backend.replace_iam_instance_profile_association

    def replace_iam_instance_profile_association(self, association_id, iam_instance_profile_name=None, iam_instance_profile_arn=None):
        name, arn = iam_instance_profile_name, iam_instance_profile_arn
        profile = filter_iam_instance_profiles(self.account_id, self.partition, arn, name)
        if young(profile, "_three_tier_changed", "instance_profile_usable"):
            raise EC2ClientError(
                "InvalidParameterValue",
                f"Value ({name or arn}) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name",
            )
        association = original_replace_association(self, association_id, name, arn)
        # moto 5.2 keeps the old profile in DescribeInstances after a replace; AWS shows the new one.
        self.modify_instance_attribute(
            association.instance_id, "iam_instance_profile", {"Arn": profile.arn, "Id": association_id}
        )
        return association

    EC2Backend.replace_iam_instance_profile_association = replace_iam_instance_profile_association

    def refuse_young_instances(ec2, instance_ids):
        wanted = set(instance_ids)
        for reservation in ec2.reservations.values():
            for instance in reservation.instances:
                if instance.id in wanted and young(instance, "_three_tier_launched", "instance_visible"):
                    raise InvalidInstanceIdError(instance.id)

    original_reservations_by_ids = EC2Backend.get_reservations_by_instance_ids

    def get_reservations_by_instance_ids(self, instance_ids, filters=None):
        refuse_young_instances(self, instance_ids)
        return original_reservations_by_ids(self, instance_ids, filters)

    EC2Backend.get_reservations_by_instance_ids = get_reservations_by_instance_ids
    original_instances_by_ids = EC2Backend.get_multi_instances_by_id

    def get_multi_instances_by_id(self, instance_ids, filters=None):
        refuse_young_instances(self, instance_ids)
        return original_instances_by_ids(self, instance_ids, filters)

    EC2Backend.get_multi_instances_by_id = get_multi_instances_by_id

    # ELB knows an instance only once EC2 does (moto registers any id; it already refuses
    # one that is not running).
    original_register_targets = ELBv2Backend.register_targets

    def register_targets(self, target_group_arn, instances):
        group = self.target_groups.get(target_group_arn)
        if group is not None and group.target_type == "instance":
            for target in instances:
                instance = self.ec2_backend.get_instance_by_id(target["Id"])
                if instance is None or young(instance, "_three_tier_launched", "instance_visible"):
                    raise ELBClientError("InvalidTarget", f"The following targets are not valid instances: '{target['Id']}'")
        return original_register_targets(self, target_group_arn, instances)

    ELBv2Backend.register_targets = register_targets

    # The SSM agent registers about a minute after the instance boots: until then
    # SendCommand refuses the instance.
    from moto.ec2.models import ec2_backends
    from moto.ssm.exceptions import SSMException
    from moto.ssm.models import SimpleSystemManagerBackend

    original_send_command = SimpleSystemManagerBackend.send_command

    def send_command(self, *args, **kwargs):
        ec2 = ec2_backends[self.account_id][self.region_name]
        for instance_id in kwargs.get("instance_ids") or []:
            instance = ec2.get_instance_by_id(instance_id)
            launched = getattr(instance, "_three_tier_launched", None)
            agent_online = launched is None or age(launched) >= scaled("instance_running") + scaled("ssm_agent_registered")
            if instance is None or not agent_online:
                raise SSMException("InvalidInstanceId", f"Instances [[{instance_id}]] not in a valid state for account {self.account_id}")
        return original_send_command(self, *args, **kwargs)

    SimpleSystemManagerBackend.send_command = send_command

    # Service Quotas: moto answers AWS's defaults (service code vpc only); a test raises a
    # quota of a region as an account's support case would (POST /three-tier/quota).
    from moto.servicequotas.models import ServiceQuotasBackend

    original_get_service_quota = ServiceQuotasBackend.get_service_quota

    def get_service_quota(self, service_code, quota_code):
        if service_code == "ec2" and quota_code in EC2_QUOTAS:
            quota = {"ServiceCode": "ec2", "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)", "QuotaCode": quota_code,
                     "Unit": "None", "Adjustable": True, "GlobalQuota": False, **EC2_QUOTAS[quota_code]}
        else:
            quota = dict(original_get_service_quota(self, service_code, quota_code))
        raised = RAISED_QUOTAS.get((self.region_name, service_code, quota_code))
        if raised is not None:
            quota["Value"] = float(raised)
        return quota

    ServiceQuotasBackend.get_service_quota = get_service_quota


READS = ("Describe", "List", "Get")


def error_response(start_response, service_kind, code, message, status="400 Bad Request"):
    if service_kind == "json":
        body = json.dumps({"__type": code, "message": message}).encode()
        content_type = "application/x-amz-json-1.1"
    elif service_kind == "ec2":
        body = (
            f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code>"
            f"<Message>{message}</Message></Error></Errors><RequestID>three-tier-fault</RequestID></Response>"
        ).encode()
        content_type = "text/xml"
    else:
        body = (
            f"<ErrorResponse><Error><Type>{'Receiver' if status.startswith('5') else 'Sender'}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>three-tier-fault</RequestId></ErrorResponse>"
        ).encode()
        content_type = "text/xml"
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


class RequestLog:
    """WSGI middleware: records each request's service, action, region and status, in
    order, and injects faults when asked.

    GET /three-tier/requests lists them; `?since=N` from the Nth on (N from an earlier
    `/three-tier/requests/count`), `&region=R` only a region's, so a test counts its own.

    POST /three-tier/faults sets one region's faults (tests share one emulator, each in a
    region of its own), a JSON object:

    - "region": the region (required); `{"region": R}` alone clears its faults, `{}` all;
    - "throttle_every": N: every Nth request is throttled, as AWS does under load (the
      SDK retries these);
    - "throttle_fraction" and "server_error_fraction": that share of requests, drawn from a
      random sequence seeded by "seed" (default 0), is throttled or answered with a 500 or
      503, as AWS does on a bad day. A fault is answered before the request reaches moto:
      the call did nothing, as when AWS refuses it at the door;
    - "fail_nth_mutating": N: the Nth call that changes something fails for good, as if
      the run died there.
    - "latency_ms": N: every request of the region is answered N ms late, as AWS answers
      from across a network (80 ms is a typical round trip to a nearby region).
    - "answer_500": ["rds:DescribeAccountAttributes", ...]: these calls (service:action)
      always answer 500, as an emulator or endpoint that lacks them does (plain moto 5.2
      answers RDS's DescribeAccountAttributes so).
    - "deny": ["ec2:DescribeAccountAttributes", ...]: these calls are refused as an
      identity without the permission is (403, UnauthorizedOperation on EC2, AccessDenied
      on the query services);
    - "apply_then_500": ["ec2:RunInstances", ...]: the first of each of these calls that
      succeeds is answered with a 500 instead, as when AWS's answer is lost on the way: a
      retry must not make a second (the idempotency tokens above are what prevent it).

    POST /three-tier/clock sets a region's clock (see Clocks): {"region": R, "freeze":
    true}, {"region": R, "advance": 120}, {"region": R, "rate": 10}.

    POST /three-tier/quota raises a quota of a region, as Service Quotas then applies it:
    {"region": R, "service_code": "vpc", "quota_code": "L-F678F1CE", "value": 10}.
    """

    def __init__(self, app):
        self.app = app
        self.entries = []
        self.lock = threading.Lock()
        # region -> (faults, counts, random)
        self.faults = {}

    def set_faults(self, faults):
        region = faults.get("region")
        if region is None:
            self.faults.clear()
        elif len(faults) == 1:
            self.faults.pop(region, None)
        else:
            self.faults[region] = (faults, {"requests": 0, "mutating": 0}, random.Random(faults.get("seed", 0)))

    def inject(self, service, region, action, start_response):
        with self.lock:
            faults, counts, draws = self.faults.get(region, (None, None, None))
        if not faults:
            return None
        if faults.get("latency_ms"):
            # Outside the lock: requests in flight together wait together, as on AWS.
            time.sleep(faults["latency_ms"] / 1000)
        kind = "json" if service in ("ssm", "secretsmanager") else ("ec2" if service == "ec2" else "query")
        with self.lock:
            counts["requests"] += 1
            requests = counts["requests"]
            mutating = not action.startswith(READS)
            if mutating:
                counts["mutating"] += 1
            nth_mutating = counts["mutating"] if mutating else None
            roll = draws.random()
        if f"{service}:{action}" in (faults.get("deny") or []):
            code = {"ec2": "UnauthorizedOperation", "json": "AccessDeniedException"}.get(kind, "AccessDenied")
            message = f"User: arn:aws:iam::123456789012:user/three-tier is not authorized to perform: {service}:{action}"
            return 403, code, error_response(start_response, kind, code, message, "403 Forbidden")
        if f"{service}:{action}" in (faults.get("answer_500") or []):
            code = "InternalError" if kind == "ec2" else "InternalFailure"
            return 500, code, error_response(start_response, kind, code, f"three-tier: {action} is not answered here", "500 Internal Server Error")
        every = faults.get("throttle_every")
        throttle_fraction = faults.get("throttle_fraction", 0.0)
        server_error_fraction = faults.get("server_error_fraction", 0.0)
        if (every and requests % every == 0) or roll < throttle_fraction:
            code = {"json": "ThrottlingException", "ec2": "RequestLimitExceeded"}.get(kind, "Throttling")
            return 429 if kind == "json" else 400, code, error_response(start_response, kind, code, "Rate exceeded")
        if roll < throttle_fraction + server_error_fraction:
            # Half of them 500, half 503, with each service's own codes.
            if roll < throttle_fraction + server_error_fraction / 2:
                status, code = "500 Internal Server Error", ("InternalError" if kind == "ec2" else "InternalFailure")
            else:
                status, code = "503 Service Unavailable", ("Unavailable" if kind == "ec2" else "ServiceUnavailable")
            return int(status.split()[0]), code, error_response(start_response, kind, code, "three-tier: injected server error", status)
        if nth_mutating is not None and nth_mutating == faults.get("fail_nth_mutating"):
            return 400, "InjectedFailure", error_response(start_response, kind, "InjectedFailure", f"three-tier: {action} failed on purpose")
        return None

    def answer_to_lose(self, service, region, action):
        """Whether this call's answer is to be lost if it succeeds (apply_then_500)."""
        with self.lock:
            faults, counts, _ = self.faults.get(region, (None, None, None))
            call = f"{service}:{action}"
            return bool(faults) and call in (faults.get("apply_then_500") or []) and call not in counts.get("lost", set())

    def answer_lost(self, service, region, action):
        """Marks this call's answer as lost; false when another request lost it meanwhile."""
        with self.lock:
            _, counts, _ = self.faults.get(region, (None, {}, None))
            lost = counts.setdefault("lost", set())
            call = f"{service}:{action}"
            if call in lost:
                return False
            lost.add(call)
            return True

    def answer(self, start_response, document):
        body = json.dumps(document).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/three-tier/requests":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            since = int((query.get("since") or ["0"])[0])
            region = (query.get("region") or [None])[0]
            with self.lock:
                entries = [e for e in self.entries[since:] if region is None or e["region"] == region]
            return self.answer(start_response, entries)
        if path == "/three-tier/dataplane":
            return self.answer(start_response, dataplane.DATAPLANE.status())
        if path == "/three-tier/dataplane/resolve":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            found = dataplane.DATAPLANE.resolve((query.get("host") or [""])[0], int((query.get("port") or ["80"])[0]))
            if found is None:
                return error_response(start_response, "json", "NotFound", "no server of the data plane has this name", "404 Not Found")
            return self.answer(start_response, found)
        if path == "/three-tier/requests/count":
            with self.lock:
                return self.answer(start_response, len(self.entries))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        if path == "/three-tier/faults":
            with self.lock:
                self.set_faults(json.loads(body or b"{}"))
            return self.answer(start_response, {})
        if path == "/three-tier/clock":
            change = json.loads(body or b"{}")
            return self.answer(start_response, CLOCKS.set(change["region"], change))
        if path == "/three-tier/quota":
            quota = json.loads(body or b"{}")
            RAISED_QUOTAS[(quota["region"], quota["service_code"], quota["quota_code"])] = quota["value"]
            return self.answer(start_response, quota)
        service = region = ""
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        if "Credential=" in authorization:
            scope = authorization.split("Credential=", 1)[1].split(",", 1)[0].split("/")
            region = scope[2] if len(scope) > 2 else ""
            service = scope[3] if len(scope) > 3 else ""
        # Whatever this request stamps or reads of time is on its region's clock.
        CLOCKS.local.region = region
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        action = target.split(".")[-1] if target else (parse_qs(body.decode("utf-8", "replace")).get("Action") or [""])[0]
        def record(status, injected=None):
            entry = {"service": service, "action": action, "region": region, "status": status}
            if injected:
                # The error code a fault answered with, moto never seeing the request.
                entry["injected"] = injected
            with self.lock:
                self.entries.append(entry)

        injected = self.inject(service, region, action, start_response) if service and action else None
        if injected is not None:
            code, error, response = injected
            record(code, error)
            return response
        if service and action and self.answer_to_lose(service, region, action):
            # Done by moto; a success's answer is dropped, once, and a 500 sent instead.
            done = {}

            def capture(status_line, headers, exc_info=None):
                done["status"], done["headers"] = status_line, headers

            answer = self.app(environ, capture)
            body = b"".join(answer)
            if hasattr(answer, "close"):
                answer.close()
            if done["status"].startswith("2") and self.answer_lost(service, region, action):
                code = "InternalError" if service == "ec2" else "InternalFailure"
                record(500, code)
                kind = "ec2" if service == "ec2" else "query"
                return error_response(start_response, kind, code, "three-tier: done, but the answer was lost", "500 Internal Server Error")
            record(int(done["status"].split()[0]))
            start_response(done["status"], done["headers"])
            return [body]
        status = {}

        def recording_start_response(status_line, headers, exc_info=None):
            status["code"] = int(status_line.split()[0])
            return start_response(status_line, headers, exc_info)

        result = self.app(environ, recording_start_response)
        if service and action:
            record(status.get("code", 0))
        return result


def main():
    # moto's own checks of RunInstances' image and instance type, off by default.
    os.environ.setdefault("MOTO_ENABLE_AMI_VALIDATION", "true")
    os.environ.setdefault("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", "true")
    install()
    from werkzeug.serving import run_simple

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    host, port = "127.0.0.1", 5000
    args = sys.argv[1:]
    for flag, value in zip(args, args[1:]):
        if flag == "-H":
            host = value
        if flag == "-p":
            port = int(value)
    os.environ.setdefault("MOTO_PORT", str(port))
    here = os.path.dirname(os.path.abspath(__file__))
    dataplane.install(CLOCKS, scaled, SCALE, os.path.join(here, "dataplane"), port)
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, RequestLog(app), threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
