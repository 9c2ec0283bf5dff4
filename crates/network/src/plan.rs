//! The network tier's plans: from (desired, observed) to deploy steps, and from observed
//! to teardown steps. Pure functions: no I/O, the same answer for the same input.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::NatGatewayState;
use ipnet::Ipv4Net;
use serde::Serialize;
use three_tier_core::naming::{Tags, name_or_id};
use three_tier_core::{
    Bound, Change, Conflict, Facts, Key, Plan, Ready, Ref, RouteTableKey, SecurityGroupRole, Step, SubnetKey, Tier,
    Wait, keys,
};

use crate::desired::{ANYWHERE, DefaultRoute, Desired, IngressFrom, NatGatewaySpec};
use crate::observe::{Observed, ObservedAddress, ObservedNatGateway, ObservedRouteTable, ObservedSubnet};
use crate::rules::{IngressRule, Source};

/// One step of a network plan. `key`s name what a create step makes, so later steps can
/// refer to it (see [`Ref::Planned`]); they equal the resources' role tags.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum NetworkStep {
    CreateVpc {
        key: String,
        name: String,
        cidr: Ipv4Net,
        tags: Tags,
    },
    EnableVpcAttribute {
        vpc: Ref,
        attribute: VpcAttribute,
    },
    CreateInternetGateway {
        key: String,
        name: String,
        tags: Tags,
    },
    AttachInternetGateway {
        internet_gateway: Ref,
        vpc: Ref,
    },
    CreateSubnet {
        key: String,
        name: String,
        cidr: Ipv4Net,
        availability_zone: String,
        vpc: Ref,
        tags: Tags,
    },
    AllocateAddress {
        key: String,
        name: String,
        tags: Tags,
    },
    CreateNatGateway {
        key: String,
        name: String,
        subnet: Ref,
        allocation: Ref,
        tags: Tags,
        /// A gateway being deleted that still holds the address: waited for first.
        #[serde(skip_serializing_if = "Option::is_none")]
        holder: Option<String>,
    },
    WaitNatGatewayAvailable {
        name: String,
        nat_gateway: Ref,
    },
    CreateSecurityGroup {
        key: String,
        name: String,
        description: String,
        vpc: Ref,
        tags: Tags,
    },
    AuthorizeIngress {
        security_group: Ref,
        group_name: String,
        rule: IngressRule,
        description: String,
    },
    RevokeIngress {
        security_group: String,
        group_name: String,
        rule: IngressRule,
    },
    CreateRouteTable {
        key: String,
        name: String,
        vpc: Ref,
        tags: Tags,
    },
    CreateRoute {
        route_table: Ref,
        table_name: String,
        destination: String,
        target: RouteTarget,
    },
    ReplaceRoute {
        route_table: Ref,
        table_name: String,
        destination: String,
        target: RouteTarget,
    },
    DeleteRoute {
        route_table: String,
        table_name: String,
        destination: String,
    },
    AssociateRouteTable {
        route_table: Ref,
        table_name: String,
        subnet: Ref,
        subnet_name: String,
    },
    /// Moves a subnet's association from another table (often the VPC's main one) to ours.
    ReplaceRouteTableAssociation {
        association_id: String,
        route_table: Ref,
        table_name: String,
        subnet_name: String,
    },
    DisassociateRouteTable {
        association_id: String,
        table_name: String,
    },
    TagResource {
        resource_id: String,
        name: String,
        tags: BTreeMap<String, String>,
    },
    DeleteNatGateway {
        name: String,
        id: String,
    },
    WaitNatGatewayDeleted {
        name: String,
        id: String,
    },
    /// Releases the address; `nat_gateway` names the gateway that held it, if one did.
    ReleaseAddress {
        name: String,
        allocation_id: String,
        nat_gateway: Option<String>,
    },
    DeleteSecurityGroup {
        name: String,
        id: String,
    },
    DeleteRouteTable {
        name: String,
        id: String,
    },
    DeleteSubnet {
        name: String,
        id: String,
    },
    DetachInternetGateway {
        name: String,
        id: String,
        vpc_id: String,
    },
    DeleteInternetGateway {
        name: String,
        id: String,
    },
    DeleteVpc {
        name: String,
        id: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VpcAttribute {
    EnableDnsSupport,
    EnableDnsHostnames,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteTarget {
    InternetGateway(Ref),
    NatGateway(Ref),
}

/// What lives in the subnets and security groups: instance, load balancer, database.
const TENANTS_GONE: [Ready; 3] = [Ready::InstanceTerminated, Ready::LoadBalancerReleased, Ready::DbInstanceDeleted];

/// Each step's facts. The order AWS demands beyond the ids a step refers to (SPEC.md,
/// "Order"): a NAT gateway needs the internet gateway attached, routes through it need it
/// available; a teardown frees what each delete needs free first.
impl Step for NetworkStep {
    fn facts(&self) -> Facts {
        use NetworkStep::*;
        match self {
            CreateVpc { key, name, cidr, .. } => Facts {
                change: Change::Create,
                description: format!("VPC {name} ({cidr})"),
                actions: &["ec2:CreateVpc"],
                produces: vec![Key::created(key)],
                after: vec![],
                typical: None,
                wait: None,
            },
            EnableVpcAttribute { vpc, attribute } => {
                let (what, produces, after) = match attribute {
                    VpcAttribute::EnableDnsSupport => ("DNS support", keys([Ready::DnsSupport]), vec![]),
                    VpcAttribute::EnableDnsHostnames => ("DNS hostnames", vec![], keys([Ready::DnsSupport])),
                };
                Facts {
                    change: Change::Update,
                    description: format!("turn on {what} of VPC {vpc}"),
                    actions: &["ec2:ModifyVpcAttribute"],
                    produces,
                    after,
                    typical: None,
                    wait: None,
                }
            }
            CreateInternetGateway { key, name, .. } => Facts {
                change: Change::Create,
                description: format!("internet gateway {name}"),
                actions: &["ec2:CreateInternetGateway"],
                produces: vec![Key::created(key)],
                after: vec![],
                typical: None,
                wait: None,
            },
            AttachInternetGateway { internet_gateway, vpc } => Facts {
                change: Change::Update,
                description: format!("attach internet gateway {internet_gateway} to VPC {vpc}"),
                actions: &["ec2:AttachInternetGateway"],
                produces: keys([Ready::InternetGatewayAttached]),
                after: vec![],
                typical: None,
                wait: None,
            },
            CreateSubnet { key, name, cidr, availability_zone, .. } => Facts {
                change: Change::Create,
                description: format!("subnet {name} ({cidr}, {availability_zone})"),
                actions: &["ec2:CreateSubnet"],
                produces: vec![Key::created(key)],
                after: vec![],
                typical: None,
                wait: None,
            },
            AllocateAddress { key, name, .. } => Facts {
                change: Change::Create,
                description: format!("Elastic IP {name}"),
                actions: &["ec2:AllocateAddress"],
                produces: vec![Key::created(key)],
                after: vec![],
                typical: None,
                wait: None,
            },
            CreateNatGateway { key, name, subnet, holder, .. } => Facts {
                change: Change::Create,
                description: format!("NAT gateway {name} in subnet {subnet}"),
                actions: &["ec2:CreateNatGateway"],
                produces: vec![Key::created(key)],
                // Only the gateway holding its address, not every deletion of the run: a
                // run that also removes a zone's gateway deletes it once the zone's subnet
                // is routed through a gateway this one may be.
                after: keys([Ready::InternetGatewayAttached])
                    .into_iter()
                    .chain(holder.iter().map(|id| Ready::NatGatewayGone(id.clone()).into()))
                    .collect(),
                typical: None,
                wait: None,
            },
            WaitNatGatewayAvailable { name, .. } => Facts {
                change: Change::Wait,
                description: format!("wait for NAT gateway {name} to be available"),
                actions: &["ec2:DescribeNatGateways"],
                produces: keys([Ready::NatGatewayAvailable]),
                after: vec![],
                typical: Some("nat_gateway_available"),
                wait: Some(Wait::until(format!("NAT gateway {name} becoming available"), Bound::NatGateway)),
            },
            CreateSecurityGroup { key, name, .. } => Facts {
                change: Change::Create,
                description: format!("security group {name}"),
                actions: &["ec2:CreateSecurityGroup"],
                produces: vec![Key::created(key)],
                after: vec![],
                // EC2 knows a new group by its id only after a moment (until then
                // `InvalidGroup.NotFound`): what uses it waits that long.
                typical: Some("new_resource_visible"),
                wait: None,
            },
            AuthorizeIngress { group_name, rule, .. } => Facts {
                change: Change::Update,
                description: format!("allow {rule} into {group_name}"),
                actions: &["ec2:AuthorizeSecurityGroupIngress"],
                produces: vec![],
                after: vec![],
                typical: None,
                wait: None,
            },
            RevokeIngress { group_name, rule, .. } => Facts {
                change: Change::Update,
                description: format!("remove rule {rule} from {group_name}"),
                actions: &["ec2:RevokeSecurityGroupIngress"],
                produces: keys([Ready::IngressRevoked]),
                after: vec![],
                typical: None,
                wait: None,
            },
            CreateRouteTable { key, name, .. } => Facts {
                change: Change::Create,
                description: format!("route table {name}"),
                actions: &["ec2:CreateRouteTable"],
                produces: vec![Key::created(key)],
                after: vec![],
                // Known by its id after a moment, as a new security group.
                typical: Some("new_resource_visible"),
                wait: None,
            },
            CreateRoute { table_name, destination, target, .. } => Facts {
                change: Change::Update,
                description: format!("route {destination} → {} in {table_name}", target.describe()),
                actions: &["ec2:CreateRoute"],
                produces: target.routed(),
                after: target.needs(),
                typical: None,
                wait: None,
            },
            ReplaceRoute { table_name, destination, target, .. } => Facts {
                change: Change::Update,
                description: format!("point route {destination} in {table_name} at {}", target.describe()),
                actions: &["ec2:ReplaceRoute"],
                produces: target.routed(),
                after: target.needs(),
                typical: None,
                wait: None,
            },
            DeleteRoute { table_name, destination, .. } => Facts {
                change: Change::Update,
                description: format!("remove route {destination} from {table_name}"),
                actions: &["ec2:DeleteRoute"],
                produces: vec![],
                after: vec![],
                typical: None,
                wait: None,
            },
            AssociateRouteTable { table_name, subnet_name, .. } => Facts {
                change: Change::Update,
                description: format!("associate {table_name} with subnet {subnet_name}"),
                actions: &["ec2:AssociateRouteTable"],
                produces: keys([Ready::SubnetsRouted]),
                after: vec![],
                typical: None,
                wait: None,
            },
            ReplaceRouteTableAssociation { table_name, subnet_name, .. } => Facts {
                change: Change::Update,
                description: format!("move subnet {subnet_name} to route table {table_name}"),
                actions: &["ec2:ReplaceRouteTableAssociation"],
                produces: keys([Ready::SubnetsRouted]),
                // A subnet moved to a new app table keeps its way out: it moves once that
                // table's default route to its NAT gateway exists.
                after: keys([Ready::NatRouted]),
                typical: None,
                wait: None,
            },
            DisassociateRouteTable { table_name, association_id } => Facts {
                change: Change::Update,
                description: format!("remove association {association_id} from {table_name}"),
                actions: &["ec2:DisassociateRouteTable"],
                produces: keys([Ready::RouteTableDisassociated]),
                after: vec![],
                typical: None,
                wait: None,
            },
            TagResource { name, tags, .. } => Facts {
                change: Change::Update,
                description: format!("tag {name}: {}", tags.keys().map(String::as_str).collect::<Vec<_>>().join(", ")),
                actions: &["ec2:CreateTags"],
                produces: vec![],
                after: vec![],
                typical: None,
                wait: None,
            },
            DeleteNatGateway { name, id } => Facts {
                change: Change::Delete,
                description: format!("NAT gateway {name} ({id})"),
                actions: &["ec2:DeleteNatGateway"],
                produces: keys([Ready::NatGatewayDeleting]),
                // In a deploy that removes it, once its subnets are routed elsewhere.
                after: keys([Ready::SubnetsRouted]),
                typical: None,
                wait: None,
            },
            WaitNatGatewayDeleted { name, id } => Facts {
                change: Change::Wait,
                description: format!("wait for NAT gateway {name} to be deleted"),
                actions: &["ec2:DescribeNatGateways"],
                produces: keys([Ready::NatGatewayDeleted, Ready::NatGatewayGone(id.clone())]),
                after: keys([Ready::NatGatewayDeleting]),
                typical: Some("nat_gateway_deleted"),
                wait: Some(Wait::until(format!("NAT gateway {name} ({id}) being deleted"), Bound::NatGateway)),
            },
            ReleaseAddress { name, allocation_id, nat_gateway } => Facts {
                change: Change::Delete,
                description: format!("Elastic IP {name} ({allocation_id})"),
                actions: &["ec2:ReleaseAddress"],
                produces: keys([Ready::AddressReleased]),
                after: keys([Ready::NatGatewayDeleted]),
                // AWS answers AuthFailure for a while after the gateway is deleted.
                typical: Some("address_release_delay"),
                wait: Some(Wait::while_refused(
                    format!("waiting for Elastic IP {name} to be released"),
                    Bound::DependencyViolation,
                    format!(
                        "AWS still counts Elastic IP {name} ({allocation_id}) as {}'s, deleted moments ago (or it is \
                         associated elsewhere: `aws ec2 describe-addresses --allocation-ids {allocation_id}`); run \
                         teardown again in a few minutes",
                        nat_gateway
                            .as_ref()
                            .map_or("the NAT gateway that held it".to_owned(), |g| format!("NAT gateway {g}"))
                    ),
                )),
            },
            DeleteSecurityGroup { name, id } => Facts {
                change: Change::Delete,
                description: format!("security group {name} ({id})"),
                actions: &["ec2:DeleteSecurityGroup"],
                produces: keys([Ready::SecurityGroupDeleted]),
                after: keys([Ready::IngressRevoked]).into_iter().chain(keys(TENANTS_GONE)).collect(),
                typical: None,
                wait: Some(Wait::while_refused(
                    format!("waiting for security group {name} ({id}) to be free"),
                    Bound::DependencyViolation,
                    format!(
                        "something outside the network tier still uses {name}: an instance, a load balancer or \
                         database, or another group's rule (an ALB deleted minutes ago keeps its interfaces for a \
                         while). Find them with `aws ec2 describe-network-interfaces --filters Name=group-id,Values={id}`, \
                         remove them (or tear down the tiers that use it first), and run teardown again"
                    ),
                )),
            },
            DeleteRouteTable { name, id } => Facts {
                change: Change::Delete,
                description: format!("route table {name} ({id})"),
                actions: &["ec2:DeleteRouteTable"],
                produces: keys([Ready::RouteTableDeleted]),
                after: keys([Ready::RouteTableDisassociated, Ready::SubnetsRouted]),
                typical: None,
                wait: None,
            },
            DeleteSubnet { name, id } => Facts {
                change: Change::Delete,
                description: format!("subnet {name} ({id})"),
                actions: &["ec2:DeleteSubnet"],
                produces: keys([Ready::SubnetDeleted]),
                after: keys([Ready::RouteTableDisassociated, Ready::NatGatewayDeleted, Ready::DbSubnetGroupDeleted])
                    .into_iter()
                    .chain(keys(TENANTS_GONE))
                    .collect(),
                typical: None,
                wait: Some(Wait::while_refused(
                    format!("waiting for subnet {name} ({id}) to be free"),
                    Bound::DependencyViolation,
                    format!(
                        "a network interface is still in subnet {name}: an instance, NAT gateway, load balancer or \
                         database (an ALB deleted minutes ago keeps its interfaces for a while). Find it with \
                         `aws ec2 describe-network-interfaces --filters Name=subnet-id,Values={id}`, remove it (or \
                         tear down the tiers that use the subnet first), and run teardown again"
                    ),
                )),
            },
            // No public address may be mapped in the VPC: the NAT gateway's, the ALB's.
            DetachInternetGateway { name, id, vpc_id } => Facts {
                change: Change::Update,
                description: format!("detach internet gateway {name} from {vpc_id}"),
                actions: &["ec2:DetachInternetGateway"],
                produces: keys([Ready::InternetGatewayDetached]),
                after: keys([Ready::NatGatewayDeleted, Ready::AddressReleased, Ready::LoadBalancerReleased]),
                typical: None,
                wait: Some(Wait::while_refused(
                    format!("waiting for internet gateway {name} ({id}) to be detachable"),
                    Bound::DependencyViolation,
                    format!(
                        "a public address is still mapped in {vpc_id} (an Elastic IP, or a public IP of an \
                         instance or load balancer): release or remove it and run teardown again"
                    ),
                )),
            },
            DeleteInternetGateway { name, id } => Facts {
                change: Change::Delete,
                description: format!("internet gateway {name} ({id})"),
                actions: &["ec2:DeleteInternetGateway"],
                produces: keys([Ready::InternetGatewayDeleted]),
                after: keys([Ready::InternetGatewayDetached]),
                typical: None,
                wait: None,
            },
            DeleteVpc { name, id } => Facts {
                change: Change::Delete,
                description: format!("VPC {name} ({id})"),
                actions: &["ec2:DeleteVpc"],
                produces: vec![],
                after: keys([
                    Ready::SubnetDeleted,
                    Ready::SecurityGroupDeleted,
                    Ready::RouteTableDeleted,
                    Ready::InternetGatewayDeleted,
                ]),
                typical: None,
                wait: Some(Wait::while_refused(
                    format!("waiting for VPC {name} ({id}) to be empty"),
                    Bound::DependencyViolation,
                    format!(
                        "VPC {name} still holds something this stack did not create (a subnet, security group, \
                         endpoint or gateway): find it in the VPC console for {id}, remove it, and run teardown again"
                    ),
                )),
            },
        }
    }
}

impl RouteTarget {
    /// A default route through the NAT gateway is what the instance's downloads wait for.
    fn routed(&self) -> Vec<Key> {
        match self {
            RouteTarget::NatGateway(_) => keys([Ready::NatRouted]),
            RouteTarget::InternetGateway(_) => vec![],
        }
    }

    /// A route through the NAT gateway waits for it to be available.
    fn needs(&self) -> Vec<Key> {
        match self {
            RouteTarget::NatGateway(_) => keys([Ready::NatGatewayAvailable]),
            RouteTarget::InternetGateway(_) => vec![],
        }
    }

    fn describe(&self) -> String {
        match self {
            RouteTarget::InternetGateway(id) => format!("internet gateway {id}"),
            RouteTarget::NatGateway(id) => format!("NAT gateway {id}"),
        }
    }

    fn matches(&self, gateway_id: Option<&str>, nat_gateway_id: Option<&str>) -> bool {
        match self {
            RouteTarget::InternetGateway(Ref::Existing(id)) => gateway_id == Some(id),
            RouteTarget::NatGateway(Ref::Existing(id)) => nat_gateway_id == Some(id),
            _ => false,
        }
    }
}

/// The steps that bring what exists to what is desired. Their order is only how the plan
/// reads: the graph runs each once what it needs is done (see [`Step::after`]); the NAT
/// gateway's minutes in `pending` pass while the rest is built, and only the app subnet's
/// default route waits for it.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan<NetworkStep> {
    let mut planner =
        Planner { plan: Plan::new(Tier::Network), observed, kept_nat_gateways: vec![], kept_addresses: vec![] };
    planner.flag_duplicates();
    let vpc = planner.vpc(desired);
    let subnets: BTreeMap<SubnetKey, Ref> =
        desired.subnets.keys().map(|key| (key.clone(), planner.subnet(desired, key, &vpc))).collect();
    planner.removed_subnets(desired);
    let groups: BTreeMap<SecurityGroupRole, Ref> =
        SecurityGroupRole::ALL.iter().map(|&role| (role, planner.security_group(desired, role, &vpc))).collect();
    let internet_gateway = planner.internet_gateway(desired, &vpc);
    let nat_gateways: BTreeMap<&str, NatGatewayRef> = desired
        .nat_gateways
        .iter()
        .map(|spec| (spec.key.as_str(), planner.nat_gateway(desired, spec, &subnets)))
        .collect();
    for &role in SecurityGroupRole::ALL {
        planner.ingress(desired, role, &groups);
    }
    let mut after_nat = Vec::new();
    for (key, spec) in &desired.route_tables {
        let table = planner.route_table(desired, key, &vpc, &subnets);
        let target = match &spec.default_route {
            Some(DefaultRoute::InternetGateway) => Some(RouteTarget::InternetGateway(internet_gateway.clone())),
            Some(DefaultRoute::NatGateway(nat)) => {
                Some(RouteTarget::NatGateway(nat_gateways[nat.as_str()].reference.clone()))
            }
            None => None,
        };
        let route_steps = planner.default_route(desired, key, &table, target);
        if matches!(spec.default_route, Some(DefaultRoute::NatGateway(_))) {
            after_nat.extend(route_steps);
        } else {
            planner.plan.steps.extend(route_steps);
        }
    }
    planner.removed_route_tables(desired, &subnets);
    for spec in &desired.nat_gateways {
        let nat = &nat_gateways[spec.key.as_str()];
        if nat.needs_wait {
            planner.plan.steps.push(NetworkStep::WaitNatGatewayAvailable {
                name: spec.name.clone(),
                nat_gateway: nat.reference.clone(),
            });
        }
    }
    planner.plan.steps.extend(after_nat);
    planner.removed_nat_gateways();
    planner.plan
}

/// Everything the stack's tags find, deleted in an order AWS accepts (the edges are in
/// [`Step::after`]): the NAT gateway before its address (released only once the gateway
/// is `deleted`), group references before the groups, tables and subnets before the VPC,
/// and the internet gateway detached only when no public address is left in the VPC.
pub fn teardown_plan(observed: &Observed) -> Plan<NetworkStep> {
    let mut plan = Plan::new(Tier::Network);
    let steps = &mut plan.steps;
    steps.extend(delete_nat_gateways(&observed.nat_gateways));
    steps.extend(observed.nat_addresses.iter().map(|address| release_address(observed, address)));
    for group in &observed.security_groups {
        let group = &group.resource;
        for rule in group.ingress.iter().filter(|rule| matches!(rule.source, Source::Group(_))) {
            steps.push(NetworkStep::RevokeIngress {
                security_group: group.id.clone(),
                group_name: group.name.clone(),
                rule: rule.clone(),
            });
        }
    }
    for group in &observed.security_groups {
        steps.push(NetworkStep::DeleteSecurityGroup {
            name: group.resource.name.clone(),
            id: group.resource.id.clone(),
        });
    }
    for table in observed.route_tables.iter().filter(|t| t.key.is_some()) {
        steps.extend(delete_route_table(table, |_| true));
    }
    steps.extend(observed.subnets.iter().map(|subnet| delete_subnet(&subnet.resource)));
    for gateway in &observed.internet_gateways {
        let name = name_or_id(&gateway.tags, &gateway.id);
        for vpc_id in &gateway.attached_vpcs {
            steps.push(NetworkStep::DetachInternetGateway {
                name: name.clone(),
                id: gateway.id.clone(),
                vpc_id: vpc_id.clone(),
            });
        }
        steps.push(NetworkStep::DeleteInternetGateway { name, id: gateway.id.clone() });
    }
    for vpc in &observed.vpcs {
        steps.push(NetworkStep::DeleteVpc { name: name_or_id(&vpc.tags, &vpc.id), id: vpc.id.clone() });
    }
    plan
}

struct Planner<'a> {
    plan: Plan<NetworkStep>,
    observed: &'a Observed,
    /// The ids of the NAT gateways and addresses a spec took: the others are removed.
    kept_nat_gateways: Vec<String>,
    kept_addresses: Vec<String>,
}

struct NatGatewayRef {
    reference: Ref,
    needs_wait: bool,
}

impl<'a> Planner<'a> {
    fn conflict(&mut self, resource: String, problem: String, fix: String) {
        self.plan.conflicts.push(Conflict { resource, problem, fix });
    }

    fn push(&mut self, step: NetworkStep) {
        self.plan.steps.push(step);
    }

    /// Tags are how the stack finds its resources: restore any that drifted.
    fn retag(&mut self, id: &str, wanted: &Tags, present: &BTreeMap<String, String>) {
        let step = |tags| NetworkStep::TagResource { resource_id: id.to_owned(), name: wanted.name().to_owned(), tags };
        self.plan.steps.extend(wanted.retag(present, step));
    }

    fn flag_duplicates(&mut self) {
        let observed = self.observed;
        let mut counts: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut count = |what: String, id: &str| counts.entry(what).or_default().push(id.to_owned());
        observed.vpcs.iter().for_each(|v| count("VPC".into(), &v.id));
        observed.internet_gateways.iter().for_each(|g| count("internet gateway".into(), &g.id));
        observed.subnets.iter().for_each(|s| count(format!("subnet {}", s.role), &s.resource.id));
        observed.security_groups.iter().for_each(|g| count(format!("security group {}", g.role), &g.resource.id));
        let role = |role: &Option<String>| role.as_deref().unwrap_or("untagged").to_owned();
        observed.nat_addresses.iter().for_each(|a| count(format!("Elastic IP {}", role(&a.role)), &a.allocation_id));
        observed.live_nat_gateways().for_each(|n| count(format!("NAT gateway {}", role(&n.role)), &n.id));
        for table in &observed.route_tables {
            if let Some(key) = &table.key {
                count(format!("route table {key}"), &table.id);
            }
        }
        for (what, ids) in counts.into_iter().filter(|(_, ids)| ids.len() > 1) {
            self.conflict(
                what,
                format!("exists {} times ({}), tagged for the same role", ids.len(), ids.join(", ")),
                "a second run or a copy made them; delete all but one by hand, or tear the network tier down and deploy it again".into(),
            );
        }
    }

    fn vpc(&mut self, desired: &Desired) -> Ref {
        let spec = &desired.vpc;
        let Some(vpc) = self.observed.vpc() else {
            self.push(NetworkStep::CreateVpc {
                key: "vpc".into(),
                name: spec.name.clone(),
                cidr: spec.cidr,
                tags: spec.tags.clone(),
            });
            let vpc = Ref::planned("vpc");
            // A new VPC has DNS support but not DNS hostnames; both are set, assuming nothing.
            for attribute in [VpcAttribute::EnableDnsSupport, VpcAttribute::EnableDnsHostnames] {
                self.push(NetworkStep::EnableVpcAttribute { vpc: vpc.clone(), attribute });
            }
            return vpc;
        };
        if vpc.cidr != spec.cidr {
            self.conflict(
                format!("VPC {} ({})", spec.name, vpc.id),
                format!("has CIDR {}, but network.vpc_cidr is {}; a VPC's CIDR cannot change", vpc.cidr, spec.cidr),
                format!(
                    "set network.vpc_cidr back to {}, or run `cargo xtask teardown network` and deploy again",
                    vpc.cidr
                ),
            );
        }
        let vpc_ref = Ref::existing(&vpc.id);
        for (on, attribute) in
            [(vpc.dns_support, VpcAttribute::EnableDnsSupport), (vpc.dns_hostnames, VpcAttribute::EnableDnsHostnames)]
        {
            if !on {
                self.push(NetworkStep::EnableVpcAttribute { vpc: vpc_ref.clone(), attribute });
            }
        }
        self.retag(&vpc.id, &spec.tags, &vpc.tags);
        vpc_ref
    }

    fn internet_gateway(&mut self, desired: &Desired, vpc: &Ref) -> Ref {
        let spec = &desired.internet_gateway;
        let Some(gateway) = self.observed.internet_gateway() else {
            self.push(NetworkStep::CreateInternetGateway {
                key: "internet-gateway".into(),
                name: spec.name.clone(),
                tags: spec.tags.clone(),
            });
            let gateway = Ref::planned("internet-gateway");
            self.push(NetworkStep::AttachInternetGateway { internet_gateway: gateway.clone(), vpc: vpc.clone() });
            return gateway;
        };
        let gateway_ref = Ref::existing(&gateway.id);
        self.retag(&gateway.id, &spec.tags, &gateway.tags);
        let attached_here = matches!(vpc, Ref::Existing(id) if gateway.attached_vpcs.contains(id));
        if !attached_here {
            if gateway.attached_vpcs.is_empty() {
                self.push(NetworkStep::AttachInternetGateway {
                    internet_gateway: gateway_ref.clone(),
                    vpc: vpc.clone(),
                });
            } else {
                self.conflict(
                    format!("internet gateway {} ({})", spec.name, gateway.id),
                    format!("is attached to {}, not to the stack's VPC", gateway.attached_vpcs.join(", ")),
                    "detach it from that VPC, or run `cargo xtask teardown network` and deploy again".into(),
                );
            }
        }
        gateway_ref
    }

    fn subnet(&mut self, desired: &Desired, key: &SubnetKey, vpc: &Ref) -> Ref {
        let spec = &desired.subnets[key];
        let Some(subnet) = self.observed.subnet(key) else {
            self.push(NetworkStep::CreateSubnet {
                key: format!("subnet/{key}"),
                name: spec.name.clone(),
                cidr: spec.cidr,
                availability_zone: spec.availability_zone.clone(),
                vpc: vpc.clone(),
                tags: spec.tags.clone(),
            });
            return Ref::planned(format!("subnet/{key}"));
        };
        let mismatch = if subnet.cidr != spec.cidr {
            Some(format!("has CIDR {}, but config says {}", subnet.cidr, spec.cidr))
        } else if subnet.availability_zone != spec.availability_zone {
            Some(format!("is in {}, but config says {}", subnet.availability_zone, spec.availability_zone))
        } else if !matches!(vpc, Ref::Existing(id) if *id == subnet.vpc_id) {
            Some(format!("is in VPC {}, not the stack's VPC", subnet.vpc_id))
        } else {
            None
        };
        if let Some(problem) = mismatch {
            self.conflict(
                format!("subnet {} ({})", spec.name, subnet.id),
                format!("{problem}; a subnet's CIDR, zone and VPC cannot change"),
                format!("restore network.subnets.{key} in the config, or run `cargo xtask teardown network` and deploy again"),
            );
        }
        self.retag(&subnet.id, &spec.tags, &subnet.tags);
        Ref::existing(&subnet.id)
    }

    /// A subnet of the stack whose key the config no longer has is deleted, as Terraform
    /// destroys a resource taken out of its configuration. The tiers above move off it in
    /// the same run (the ALB's SetSubnets, the DB subnet group's modification), and the
    /// deletion's DependencyViolation wait lasts until their interfaces have left it.
    fn removed_subnets(&mut self, desired: &Desired) {
        for subnet in &self.observed.subnets {
            if !desired.subnets.contains_key(&subnet.role) {
                self.push(delete_subnet(&subnet.resource));
            }
        }
    }

    fn nat_gateway(
        &mut self,
        desired: &Desired,
        spec: &NatGatewaySpec,
        subnets: &BTreeMap<SubnetKey, Ref>,
    ) -> NatGatewayRef {
        // The NAT gateway's own address, if its tags were lost, is re-tagged rather than a
        // second, unused (and billed) one allocated.
        let subnet = &subnets[&spec.subnet];
        // One whose role tag was lost, in the spec's subnet, is taken for it (and re-tagged).
        let observed = self.observed.nat_gateway(&spec.key).or_else(|| {
            let Ref::Existing(subnet_id) = subnet else { return None };
            self.observed.live_nat_gateways().find(|n| n.role.is_none() && n.subnet_id == *subnet_id)
        });
        let nat_held = observed.and_then(|n| n.allocation_ids.first());
        let address = match (self.observed.nat_address(&spec.address.key), nat_held) {
            (Some(address), _) => {
                self.retag(&address.allocation_id, &spec.address.tags, &address.tags);
                Ref::existing(&address.allocation_id)
            }
            (None, Some(allocation_id)) => {
                let tags = self.observed.nat_addresses.iter().find(|a| a.allocation_id == *allocation_id);
                self.retag(allocation_id, &spec.address.tags, &tags.map(|a| a.tags.clone()).unwrap_or_default());
                Ref::existing(allocation_id)
            }
            (None, None) => {
                self.push(NetworkStep::AllocateAddress {
                    key: spec.address.key.clone(),
                    name: spec.address.name.clone(),
                    tags: spec.address.tags.clone(),
                });
                Ref::planned(&spec.address.key)
            }
        };
        if let Ref::Existing(id) = &address {
            self.kept_addresses.push(id.clone());
        }
        if let Some(nat) = observed {
            self.kept_nat_gateways.push(nat.id.clone());
            if !matches!(subnet, Ref::Existing(id) if *id == nat.subnet_id) {
                self.conflict(
                    format!("NAT gateway {} ({})", spec.name, nat.id),
                    format!("is in subnet {}, not in {}", nat.subnet_id, desired.subnets[&spec.subnet].name),
                    "run `cargo xtask teardown network` and deploy again".into(),
                );
            }
            self.retag(&nat.id, &spec.tags, &nat.tags);
            return NatGatewayRef {
                reference: Ref::existing(&nat.id),
                needs_wait: nat.state == NatGatewayState::Pending,
            };
        }
        // A gateway still being deleted holds its address until it is gone.
        let holder = self.observed.nat_gateways.iter().find(|n| {
            n.state == NatGatewayState::Deleting
                && matches!(&address, Ref::Existing(id) if n.allocation_ids.contains(id))
        });
        if let Some(holder) = holder {
            self.push(NetworkStep::WaitNatGatewayDeleted { name: spec.name.clone(), id: holder.id.clone() });
        }
        self.push(NetworkStep::CreateNatGateway {
            key: spec.key.clone(),
            name: spec.name.clone(),
            subnet: subnet.clone(),
            allocation: address,
            tags: spec.tags.clone(),
            holder: holder.map(|h| h.id.clone()),
        });
        NatGatewayRef { reference: Ref::planned(&spec.key), needs_wait: true }
    }

    /// The stack's NAT gateways and addresses no spec kept (`"per-zone"` turned back to
    /// `"one"`, an app subnet taken out): deleted once the subnets they served are routed
    /// elsewhere, each address released once its gateway is gone.
    fn removed_nat_gateways(&mut self) {
        let removed: Vec<&ObservedNatGateway> =
            self.observed.live_nat_gateways().filter(|n| !self.kept_nat_gateways.contains(&n.id)).collect();
        self.plan.steps.extend(delete_nat_gateways(removed));
        let released: Vec<_> = self
            .observed
            .nat_addresses
            .iter()
            .filter(|a| !self.kept_addresses.contains(&a.allocation_id))
            .map(|address| release_address(self.observed, address))
            .collect();
        self.plan.steps.extend(released);
    }

    fn security_group(&mut self, desired: &Desired, role: SecurityGroupRole, vpc: &Ref) -> Ref {
        let spec = &desired.security_groups[&role];
        let Some(group) = self.observed.security_group(role) else {
            self.push(NetworkStep::CreateSecurityGroup {
                key: format!("security-group/{role}"),
                name: spec.name.clone(),
                description: spec.description.clone(),
                vpc: vpc.clone(),
                tags: spec.tags.clone(),
            });
            return Ref::planned(format!("security-group/{role}"));
        };
        if group.name != spec.name || !matches!(vpc, Ref::Existing(id) if *id == group.vpc_id) {
            self.conflict(
                format!("security group {} ({})", group.name, group.id),
                format!("should be named {} in the stack's VPC; a group's name and VPC cannot change", spec.name),
                format!(
                    "restore network.security_groups.{role}, or run `cargo xtask teardown network` and deploy again"
                ),
            );
        }
        self.retag(&group.id, &spec.tags, &group.tags);
        Ref::existing(&group.id)
    }

    /// Each group holds exactly its rules: a missing rule is added, any other removed.
    fn ingress(&mut self, desired: &Desired, role: SecurityGroupRole, groups: &BTreeMap<SecurityGroupRole, Ref>) {
        let spec = &desired.security_groups[&role];
        let wanted: Vec<(IngressRule, &str)> = spec
            .ingress
            .iter()
            .map(|ingress| {
                let source = match &ingress.from {
                    IngressFrom::Cidr(cidr) => Source::Cidr(cidr.to_string()),
                    IngressFrom::Group(from) => Source::Group(groups[from].clone()),
                };
                (IngressRule::tcp(ingress.port, source), ingress.description.as_str())
            })
            .collect();
        let observed = self.observed.security_group(role).filter(|_| matches!(groups[&role], Ref::Existing(_)));
        let present = observed.map(|g| g.ingress.as_slice()).unwrap_or_default();
        for (rule, description) in wanted.iter().filter(|(rule, _)| !present.contains(rule)) {
            self.push(NetworkStep::AuthorizeIngress {
                security_group: groups[&role].clone(),
                group_name: spec.name.clone(),
                rule: rule.clone(),
                description: (*description).to_owned(),
            });
        }
        if let Some(group) = observed {
            for rule in group.ingress.iter().filter(|rule| !wanted.iter().any(|(w, _)| w == *rule)) {
                self.push(NetworkStep::RevokeIngress {
                    security_group: group.id.clone(),
                    group_name: group.name.clone(),
                    rule: rule.clone(),
                });
            }
        }
    }

    fn route_table(
        &mut self,
        desired: &Desired,
        key: &RouteTableKey,
        vpc: &Ref,
        subnets: &BTreeMap<SubnetKey, Ref>,
    ) -> Option<&'a ObservedRouteTable> {
        let spec = &desired.route_tables[key];
        let observed = self.observed.route_table(key);
        let table = match observed {
            Some(table) => {
                self.retag(&table.id, &spec.tags, &table.tags);
                Ref::existing(&table.id)
            }
            None => {
                self.push(NetworkStep::CreateRouteTable {
                    key: format!("route-table/{key}"),
                    name: spec.name.clone(),
                    vpc: vpc.clone(),
                    tags: spec.tags.clone(),
                });
                Ref::planned(format!("route-table/{key}"))
            }
        };
        let mut wanted_subnet_ids = Vec::new();
        for subnet_key in &spec.subnets {
            let subnet = &subnets[subnet_key];
            let subnet_name = desired.subnets[subnet_key].name.clone();
            let current = match subnet {
                Ref::Existing(subnet_id) => {
                    wanted_subnet_ids.push(subnet_id.clone());
                    self.observed.route_tables.iter().find_map(|t| {
                        let association = t.associations.iter().find(|a| a.subnet_id.as_ref() == Some(subnet_id))?;
                        Some((t.id.clone(), association.id.clone()))
                    })
                }
                Ref::Planned(_) => None,
            };
            match current {
                Some((table_id, _)) if matches!(&table, Ref::Existing(id) if *id == table_id) => {}
                Some((_, association_id)) => self.push(NetworkStep::ReplaceRouteTableAssociation {
                    association_id,
                    route_table: table.clone(),
                    table_name: spec.name.clone(),
                    subnet_name,
                }),
                None => self.push(NetworkStep::AssociateRouteTable {
                    route_table: table.clone(),
                    table_name: spec.name.clone(),
                    subnet: subnet.clone(),
                    subnet_name,
                }),
            }
        }
        if let Some(observed) = observed {
            for association in &observed.associations {
                let stray = association
                    .subnet_id
                    .as_ref()
                    .is_some_and(|id| !wanted_subnet_ids.contains(id) && !wanted_elsewhere(subnets, id));
                if stray {
                    self.push(NetworkStep::DisassociateRouteTable {
                        association_id: association.id.clone(),
                        table_name: spec.name.clone(),
                    });
                }
            }
        }
        observed
    }

    /// A table of the stack whose key the config no longer has (a zone's app table once
    /// `"per-zone"` is off) is deleted once its subnets are routed by the tables that want
    /// them now.
    fn removed_route_tables(&mut self, desired: &Desired, subnets: &BTreeMap<SubnetKey, Ref>) {
        for table in &self.observed.route_tables {
            if table.key.as_ref().is_some_and(|key| !desired.route_tables.contains_key(key)) {
                let steps = delete_route_table(table, |id| !wanted_elsewhere(subnets, id));
                self.plan.steps.extend(steps);
            }
        }
    }

    fn default_route(
        &self,
        desired: &Desired,
        key: &RouteTableKey,
        observed: &Option<&ObservedRouteTable>,
        target: Option<RouteTarget>,
    ) -> Vec<NetworkStep> {
        let spec = &desired.route_tables[key];
        let table_name = spec.name.clone();
        let table = match observed {
            Some(table) => Ref::existing(&table.id),
            None => Ref::planned(format!("route-table/{key}")),
        };
        // The default route present, with the table that holds it.
        let present = observed.and_then(|t| Some((t, t.routes.iter().find(|r| r.destination == ANYWHERE)?)));
        let destination = ANYWHERE.to_owned();
        match (present, target) {
            (None, None) => vec![],
            (None, Some(target)) => {
                vec![NetworkStep::CreateRoute { route_table: table, table_name, destination, target }]
            }
            (Some((_, route)), Some(target)) => {
                if target.matches(route.gateway_id.as_deref(), route.nat_gateway_id.as_deref()) {
                    vec![]
                } else {
                    vec![NetworkStep::ReplaceRoute { route_table: table, table_name, destination, target }]
                }
            }
            (Some((holder, _)), None) => {
                vec![NetworkStep::DeleteRoute { route_table: holder.id.clone(), table_name, destination }]
            }
        }
    }
}

/// A subnet another of the stack's tables wants is moved there by that table's
/// ReplaceRouteTableAssociation: disassociating it from the table it leaves would pull the
/// association out from under that step.
fn wanted_elsewhere(subnets: &BTreeMap<SubnetKey, Ref>, subnet_id: &str) -> bool {
    subnets.values().any(|s| matches!(s, Ref::Existing(id) if id == subnet_id))
}

/// Deletes a table, disassociated first from the subnets `disassociate` accepts.
fn delete_route_table(table: &ObservedRouteTable, disassociate: impl Fn(&str) -> bool) -> Vec<NetworkStep> {
    let table_name = name_or_id(&table.tags, &table.id);
    let mut steps: Vec<NetworkStep> = table
        .associations
        .iter()
        .filter(|a| a.subnet_id.as_deref().is_some_and(&disassociate))
        .map(|association| NetworkStep::DisassociateRouteTable {
            association_id: association.id.clone(),
            table_name: table_name.clone(),
        })
        .collect();
    steps.push(NetworkStep::DeleteRouteTable { name: table_name, id: table.id.clone() });
    steps
}

/// Deletes `nats` (those not `deleting` already), then waits for each to be deleted.
fn delete_nat_gateways<'a>(nats: impl IntoIterator<Item = &'a ObservedNatGateway> + Clone) -> Vec<NetworkStep> {
    let name = |nat: &ObservedNatGateway| name_or_id(&nat.tags, &nat.id);
    let mut steps: Vec<NetworkStep> = nats
        .clone()
        .into_iter()
        .filter(|nat| nat.state != NatGatewayState::Deleting)
        .map(|nat| NetworkStep::DeleteNatGateway { name: name(nat), id: nat.id.clone() })
        .collect();
    steps
        .extend(nats.into_iter().map(|nat| NetworkStep::WaitNatGatewayDeleted { name: name(nat), id: nat.id.clone() }));
    steps
}

/// Releases an address, naming the gateway that holds it (if one does) for the wait.
fn release_address(observed: &Observed, address: &ObservedAddress) -> NetworkStep {
    let holder = observed.nat_gateways.iter().find(|n| n.allocation_ids.contains(&address.allocation_id));
    NetworkStep::ReleaseAddress {
        name: name_or_id(&address.tags, &address.allocation_id),
        allocation_id: address.allocation_id.clone(),
        nat_gateway: holder.map(|n| format!("{} ({})", name_or_id(&n.tags, &n.id), n.id)),
    }
}

fn delete_subnet(subnet: &ObservedSubnet) -> NetworkStep {
    NetworkStep::DeleteSubnet { name: name_or_id(&subnet.tags, &subnet.id), id: subnet.id.clone() }
}
