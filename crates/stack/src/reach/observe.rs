//! The snapshot of what AWS holds: the tiers' observations name the stack's VPC, load
//! balancer, instance (with its user data) and DB instance; the rest is read here by VPC,
//! every table, ACL and group in it (a path crosses whatever AWS applies, the stack's or
//! not), with read-only describes in flight together.

use aws_sdk_ec2::types::{Filter, IpPermission, NetworkAclEntry, RouteState, RuleAction};
use aws_sdk_elasticloadbalancingv2::types::TargetHealthDescription;
use ipnet::Ipv4Net;
use three_tier_core::error::required;
use three_tier_core::{AwsContext, AwsResultExt, Config, Result};

use super::*;
use crate::Observations;

/// The calls the paths' reads make, as IAM names them.
pub const READS: &[&str] = &[
    "ec2:DescribeSubnets",
    "ec2:DescribeRouteTables",
    "ec2:DescribeNetworkAcls",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeInternetGateways",
    "ec2:DescribeNatGateways",
    "elasticloadbalancing:DescribeTargetHealth",
];

/// What AWS holds of the stack's paths. Nothing of a tier that does not stand is read.
pub async fn observe(ctx: &AwsContext, config: &Config, observed: &Observations) -> Result<Snapshot> {
    three_tier_core::calls::declared(READS, read(ctx, config, observed)).await
}

async fn read(ctx: &AwsContext, config: &Config, observed: &Observations) -> Result<Snapshot> {
    let network = observed.network.as_ref();
    let Some(vpc) = network.and_then(|n| n.vpc()) else {
        return Ok(Snapshot::default());
    };
    let by_vpc = |name: &str| Filter::builder().name(name).values(&vpc.id).build();
    let ec2 = &ctx.ec2;
    let subnets = async {
        let answer = ec2.describe_subnets().filters(by_vpc("vpc-id")).send().await.aws("DescribeSubnets")?;
        Ok(answer.subnets().iter().filter_map(subnet).collect::<Vec<_>>())
    };
    let route_tables = async {
        let pages = ec2.describe_route_tables().filters(by_vpc("vpc-id")).into_paginator().items().send();
        let tables = pages.try_collect().await.aws("DescribeRouteTables")?;
        tables.iter().map(route_table).collect::<Result<Vec<_>>>()
    };
    let network_acls = async {
        let pages = ec2.describe_network_acls().filters(by_vpc("vpc-id")).into_paginator().items().send();
        let acls = pages.try_collect().await.aws("DescribeNetworkAcls")?;
        acls.iter().map(network_acl).collect::<Result<Vec<_>>>()
    };
    let security_groups = async {
        let pages = ec2.describe_security_groups().filters(by_vpc("vpc-id")).into_paginator().items().send();
        let groups = pages.try_collect().await.aws("DescribeSecurityGroups")?;
        groups.iter().map(security_group).collect::<Result<Vec<_>>>()
    };
    let gateways = async {
        let answer = ec2
            .describe_internet_gateways()
            .filters(by_vpc("attachment.vpc-id"))
            .send()
            .await
            .aws("DescribeInternetGateways")?;
        let attached = |g: &aws_sdk_ec2::types::InternetGateway| {
            g.attachments().iter().any(|a| {
                a.vpc_id() == Some(vpc.id.as_str())
                    && a.state().is_some_and(|s| s.as_str() == "available" || s.as_str() == "attached")
            })
        };
        let internet_gateways = answer
            .internet_gateways()
            .iter()
            .map(|g| {
                Ok(InternetGateway {
                    id: required(g.internet_gateway_id(), "DescribeInternetGateways", "InternetGatewayId")?.to_owned(),
                    attached: attached(g),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let answer = ec2.describe_nat_gateways().filter(by_vpc("vpc-id")).send().await.aws("DescribeNatGateways")?;
        let nat_gateways = answer
            .nat_gateways()
            .iter()
            .map(|nat| {
                Ok(NatGateway {
                    id: required(nat.nat_gateway_id(), "DescribeNatGateways", "NatGatewayId")?.to_owned(),
                    state: required(nat.state(), "DescribeNatGateways", "State")?.as_str().to_owned(),
                    subnet: required(nat.subnet_id(), "DescribeNatGateways", "SubnetId")?.to_owned(),
                    public_ip: nat.nat_gateway_addresses().iter().find_map(|a| a.public_ip()).map(str::to_owned),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((internet_gateways, nat_gateways))
    };
    let (
        (subnets, route_tables),
        ((network_acls, security_groups), ((internet_gateways, nat_gateways), target_groups)),
    ) = Box::pin(ctx.both(
        ctx.both(subnets, route_tables),
        ctx.both(ctx.both(network_acls, security_groups), ctx.both(gateways, target_groups(ctx, observed))),
    ))
    .await?;
    Ok(Snapshot {
        internet_gateways,
        nat_gateways,
        subnets,
        route_tables,
        network_acls,
        security_groups,
        load_balancer: load_balancer(observed),
        target_groups,
        instance: instance(observed),
        database: database(config, observed),
    })
}

fn name_tag(tags: &[aws_sdk_ec2::types::Tag]) -> Option<&str> {
    tags.iter().find(|t| t.key() == Some("Name")).and_then(|t| t.value())
}

fn subnet(subnet: &aws_sdk_ec2::types::Subnet) -> Option<Subnet> {
    let id = subnet.subnet_id()?.to_owned();
    Some(Subnet {
        name: name_tag(subnet.tags()).unwrap_or(&id).to_owned(),
        cidr: subnet.cidr_block()?.parse().ok()?,
        id,
    })
}

fn route_table(table: &aws_sdk_ec2::types::RouteTable) -> Result<RouteTable> {
    let id = required(table.route_table_id(), "DescribeRouteTables", "RouteTableId")?.to_owned();
    let routes = table
        .routes()
        .iter()
        .filter_map(|route| {
            let destination: Ipv4Net = route.destination_cidr_block()?.parse().ok()?;
            let target = match (route.gateway_id(), route.nat_gateway_id()) {
                (Some("local"), _) => RouteTarget::Local,
                (Some(id), _) if id.starts_with("igw-") => RouteTarget::InternetGateway(id.to_owned()),
                (_, Some(id)) => RouteTarget::NatGateway(id.to_owned()),
                (Some(id), _) => RouteTarget::Other(id.to_owned()),
                (None, None) => RouteTarget::Other(
                    [
                        route.network_interface_id(),
                        route.instance_id(),
                        route.vpc_peering_connection_id(),
                        route.transit_gateway_id(),
                    ]
                    .into_iter()
                    .flatten()
                    .next()
                    .unwrap_or("an unknown target")
                    .to_owned(),
                ),
            };
            Some(Route { destination, target, active: route.state() != Some(&RouteState::Blackhole) })
        })
        .collect();
    Ok(RouteTable {
        name: name_tag(table.tags()).unwrap_or(&id).to_owned(),
        main: table.associations().iter().any(|a| a.main() == Some(true)),
        subnets: table.associations().iter().filter_map(|a| a.subnet_id().map(str::to_owned)).collect(),
        routes,
        id,
    })
}

fn network_acl(acl: &aws_sdk_ec2::types::NetworkAcl) -> Result<NetworkAcl> {
    let entry = |entry: &NetworkAclEntry| {
        Some(AclEntry {
            number: entry.rule_number()?,
            egress: entry.egress()?,
            protocol: entry.protocol()?.to_owned(),
            ports: entry
                .port_range()
                .and_then(|r| Some((u16::try_from(r.from()?).ok()?, u16::try_from(r.to()?).ok()?))),
            cidr: entry.cidr_block()?.parse().ok()?,
            allow: entry.rule_action() == Some(&RuleAction::Allow),
        })
    };
    Ok(NetworkAcl {
        id: required(acl.network_acl_id(), "DescribeNetworkAcls", "NetworkAclId")?.to_owned(),
        default: acl.is_default() == Some(true),
        subnets: acl.associations().iter().filter_map(|a| a.subnet_id().map(str::to_owned)).collect(),
        entries: acl.entries().iter().filter_map(entry).collect(),
    })
}

fn security_group(group: &aws_sdk_ec2::types::SecurityGroup) -> Result<SecurityGroup> {
    Ok(SecurityGroup {
        id: required(group.group_id(), "DescribeSecurityGroups", "GroupId")?.to_owned(),
        name: required(group.group_name(), "DescribeSecurityGroups", "GroupName")?.to_owned(),
        ingress: group.ip_permissions().iter().flat_map(permissions).collect(),
        egress: group.ip_permissions_egress().iter().flat_map(permissions).collect(),
    })
}

/// One permission per peer: AWS groups the peers of one protocol and port range.
fn permissions(permission: &IpPermission) -> Vec<Permission> {
    let rule = |peer| Permission {
        protocol: permission.ip_protocol().unwrap_or("-1").to_owned(),
        from_port: permission.from_port().unwrap_or(-1),
        to_port: permission.to_port().unwrap_or(-1),
        peer,
    };
    let cidrs = permission.ip_ranges().iter().filter_map(|r| r.cidr_ip()?.parse().ok()).map(|c| rule(Peer::Cidr(c)));
    let groups =
        permission.user_id_group_pairs().iter().filter_map(|p| p.group_id()).map(|g| rule(Peer::Group(g.to_owned())));
    cidrs.chain(groups).collect()
}

fn load_balancer(observed: &Observations) -> Option<LoadBalancer> {
    let alb = observed.alb.as_ref()?;
    let balancer = alb.load_balancer()?;
    let listeners = alb
        .listeners
        .iter()
        .filter(|l| l.load_balancer_arn == balancer.arn)
        .map(|listener| Listener {
            port: listener.port,
            default_target_group: listener.default_target_group().map(str::to_owned),
            rules: listener
                .rules
                .iter()
                .map(|rule| ListenerRule {
                    priority: rule.priority,
                    path_pattern: rule.path_patterns.join(", "),
                    target_group: rule.target_group.clone(),
                })
                .collect(),
        })
        .collect();
    Some(LoadBalancer {
        name: balancer.name.clone(),
        subnets: balancer.subnets.clone(),
        security_groups: balancer.security_groups.clone(),
        listeners,
    })
}

/// The stack's target groups, each with its targets' health.
async fn target_groups(ctx: &AwsContext, observed: &Observations) -> Result<Vec<TargetGroup>> {
    let Some(alb) = &observed.alb else { return Ok(Vec::new()) };
    let mut groups = Vec::new();
    for group in &alb.target_groups {
        let answer =
            ctx.elbv2.describe_target_health().target_group_arn(&group.arn).send().await.aws("DescribeTargetHealth")?;
        let target = |d: &TargetHealthDescription| {
            let target = d.target()?;
            Some(Target {
                id: target.id()?.to_owned(),
                port: target.port().and_then(|p| u16::try_from(p).ok()).unwrap_or(group.port),
                health: d.target_health().and_then(|h| h.state()).map(|s| s.as_str().to_owned()),
            })
        };
        groups.push(TargetGroup {
            key: group.arn.clone(),
            name: group.name.clone(),
            port: group.port,
            health_check_port: group.health_check_port.parse().unwrap_or(group.port),
            targets: answer.target_health_descriptions().iter().filter_map(target).collect(),
        });
    }
    Ok(groups)
}

/// The stack's first instance, with what its user data's compose file publishes (the
/// compute tier's observation read the user data). The model holds one instance: the
/// others differ only in their subnet, which their role's route table and ACLs treat alike.
fn instance(observed: &Observations) -> Option<Instance> {
    let instance = observed.compute.as_ref()?.instances.first()?;
    Some(Instance {
        id: instance.id.clone(),
        subnet: instance.subnet_id.clone(),
        security_groups: instance.security_groups.clone(),
        published: instance.user_data.as_deref().map(compute::user_data::published).unwrap_or_default(),
    })
}

fn database(config: &Config, observed: &Observations) -> Option<Database> {
    let database = observed.database.as_ref()?;
    let instance = database.instance.as_ref()?;
    Some(Database {
        id: instance.arn.rsplit(':').next().unwrap_or(&instance.arn).to_owned(),
        subnets: database.subnet_group.as_ref().map(|g| g.subnet_ids.clone()).unwrap_or_default(),
        security_groups: instance.security_groups.clone(),
        // Until RDS has made the endpoint, the port it will have.
        port: instance.endpoint.as_ref().map_or(config.ports.database.get(), |(_, port)| *port),
    })
}
