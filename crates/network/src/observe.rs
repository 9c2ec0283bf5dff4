//! What of the network tier exists in AWS, found by the stack's tags.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, IpPermission, NatGatewayState, Tag, VpcAttributeName};
use ipnet::Ipv4Net;
use three_tier_core::error::required;
use three_tier_core::naming::{ROLE_TAG, STACK_TAG, TIER_TAG, belongs_to};
use three_tier_core::{AwsContext, AwsResultExt, Result, RouteTableKey, SecurityGroupRole, SubnetKey, Tier};

use crate::rules::{IngressRule, Source};

/// The network tier's resources in AWS. Each list holds every resource tagged with the
/// stack and tier, sorted by id: more than one for a role is a conflict for deploy, and
/// all of them are deleted by teardown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub vpcs: Vec<ObservedVpc>,
    pub internet_gateways: Vec<ObservedInternetGateway>,
    pub subnets: Vec<Tagged<SubnetKey, ObservedSubnet>>,
    pub nat_addresses: Vec<ObservedAddress>,
    pub nat_gateways: Vec<ObservedNatGateway>,
    pub security_groups: Vec<Tagged<SecurityGroupRole, ObservedSecurityGroup>>,
    /// Every route table of the stack's VPCs, the main one and foreign ones included:
    /// a subnet can be associated with only one table, whoever owns it.
    pub route_tables: Vec<ObservedRouteTable>,
}

/// A resource and the role its `three-tier:role` tag gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tagged<R, T> {
    pub role: R,
    pub resource: T,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedVpc {
    pub id: String,
    pub cidr: Ipv4Net,
    pub dns_support: bool,
    pub dns_hostnames: bool,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedInternetGateway {
    pub id: String,
    pub attached_vpcs: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedSubnet {
    pub id: String,
    pub cidr: Ipv4Net,
    pub availability_zone: String,
    pub vpc_id: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedAddress {
    /// Its role tag: `nat-address`, or `nat-address/ZONE` for a zone's gateway.
    pub role: Option<String>,
    pub allocation_id: String,
    pub public_ip: String,
    pub association_id: Option<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedNatGateway {
    /// Its role tag: `nat-gateway`, or `nat-gateway/ZONE` for a zone's own.
    pub role: Option<String>,
    pub id: String,
    /// `pending`, `available` or `deleting`; `failed` and `deleted` ones are left out.
    /// Pending, available or deleting: the others are gone.
    pub state: NatGatewayState,
    pub subnet_id: String,
    pub allocation_ids: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedSecurityGroup {
    pub id: String,
    pub name: String,
    pub vpc_id: String,
    pub ingress: Vec<IngressRule>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedRouteTable {
    pub id: String,
    /// `None` for tables that are not this stack's (the VPC's main table, foreign ones).
    pub key: Option<RouteTableKey>,
    pub routes: Vec<ObservedRoute>,
    pub associations: Vec<ObservedAssociation>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedRoute {
    pub destination: String,
    pub gateway_id: Option<String>,
    pub nat_gateway_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedAssociation {
    pub id: String,
    /// `None` for the main table's implicit association with the VPC.
    pub subnet_id: Option<String>,
}

impl Observed {
    pub fn vpc(&self) -> Option<&ObservedVpc> {
        self.vpcs.first()
    }

    pub fn internet_gateway(&self) -> Option<&ObservedInternetGateway> {
        self.internet_gateways.first()
    }

    pub fn subnet(&self, key: &SubnetKey) -> Option<&ObservedSubnet> {
        self.subnets.iter().find(|s| s.role == *key).map(|s| &s.resource)
    }

    pub fn security_group(&self, role: SecurityGroupRole) -> Option<&ObservedSecurityGroup> {
        self.security_groups.iter().find(|g| g.role == role).map(|g| &g.resource)
    }

    pub fn route_table(&self, key: &RouteTableKey) -> Option<&ObservedRouteTable> {
        self.route_tables.iter().find(|t| t.key.as_ref() == Some(key))
    }

    pub fn nat_address(&self, key: &str) -> Option<&ObservedAddress> {
        self.nat_addresses.iter().find(|a| a.role.as_deref() == Some(key))
    }

    /// The NAT gateway of `key` that is or will be usable; one being deleted does not count.
    pub fn nat_gateway(&self, key: &str) -> Option<&ObservedNatGateway> {
        self.live_nat_gateways().find(|n| n.role.as_deref() == Some(key))
    }

    pub fn live_nat_gateways(&self) -> impl Iterator<Item = &ObservedNatGateway> {
        self.nat_gateways.iter().filter(|n| n.state != NatGatewayState::Deleting)
    }
}

/// Finds the stack's network resources: first what the stack's tags find, all at once,
/// then what is found by the VPCs (their attributes, NAT gateways, route tables).
pub async fn observe(ctx: &AwsContext, stack: &str) -> Result<Observed> {
    let ((vpcs, internet_gateways), ((subnets, nat_addresses), security_groups)) = ctx
        .both(
            ctx.both(tagged_vpcs(ctx, stack), internet_gateways(ctx, stack)),
            ctx.both(ctx.both(subnets(ctx, stack), addresses(ctx, stack)), security_groups(ctx, stack)),
        )
        .await?;
    let vpc_ids: Vec<String> =
        vpcs.iter().map(|v| Ok(required(v.vpc_id(), "DescribeVpcs", "VpcId")?.to_owned())).collect::<Result<_>>()?;
    let (vpcs, (nat_gateways, route_tables)) = if vpc_ids.is_empty() {
        (Vec::new(), (Vec::new(), Vec::new()))
    } else {
        ctx.both(
            with_attributes(ctx, &vpcs),
            ctx.both(nat_gateways(ctx, stack, &vpc_ids), route_tables(ctx, stack, &vpc_ids)),
        )
        .await?
    };
    Ok(Observed { vpcs, internet_gateways, subnets, nat_addresses, nat_gateways, security_groups, route_tables })
}

fn tagged(stack: &str) -> Option<Vec<Filter>> {
    Some(vec![tag_filter(STACK_TAG, stack), tag_filter(TIER_TAG, Tier::Network.as_str())])
}

async fn tagged_vpcs(ctx: &AwsContext, stack: &str) -> Result<Vec<aws_sdk_ec2::types::Vpc>> {
    let answer = ctx.ec2.describe_vpcs().set_filters(tagged(stack)).send().await.aws("DescribeVpcs")?;
    Ok(answer.vpcs().to_vec())
}

/// The VPCs with their DNS attributes, sorted by id.
async fn with_attributes(ctx: &AwsContext, vpcs: &[aws_sdk_ec2::types::Vpc]) -> Result<Vec<ObservedVpc>> {
    let attribute = |id: String, name: VpcAttributeName| async move {
        let answer =
            ctx.ec2.describe_vpc_attribute().vpc_id(id).attribute(name).send().await.aws("DescribeVpcAttribute")?;
        let value = answer.enable_dns_support().or(answer.enable_dns_hostnames()).and_then(|a| a.value());
        Ok(value.unwrap_or(false))
    };
    let mut observed = Vec::new();
    for vpc in vpcs {
        let id = required(vpc.vpc_id(), "DescribeVpcs", "VpcId")?.to_owned();
        let (dns_support, dns_hostnames) = ctx
            .both(
                attribute(id.clone(), VpcAttributeName::EnableDnsSupport),
                attribute(id.clone(), VpcAttributeName::EnableDnsHostnames),
            )
            .await?;
        observed.push(ObservedVpc {
            id,
            cidr: cidr(vpc.cidr_block(), "DescribeVpcs")?,
            dns_support,
            dns_hostnames,
            tags: tag_map(vpc.tags()),
        });
    }
    observed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(observed)
}

async fn internet_gateways(ctx: &AwsContext, stack: &str) -> Result<Vec<ObservedInternetGateway>> {
    let answer =
        ctx.ec2.describe_internet_gateways().set_filters(tagged(stack)).send().await.aws("DescribeInternetGateways")?;
    let mut internet_gateways: Vec<_> = answer
        .internet_gateways()
        .iter()
        .map(|igw| {
            Ok(ObservedInternetGateway {
                id: required(igw.internet_gateway_id(), "DescribeInternetGateways", "InternetGatewayId")?.to_owned(),
                attached_vpcs: igw.attachments().iter().filter_map(|a| a.vpc_id().map(str::to_owned)).collect(),
                tags: tag_map(igw.tags()),
            })
        })
        .collect::<Result<_>>()?;
    internet_gateways.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(internet_gateways)
}

async fn subnets(ctx: &AwsContext, stack: &str) -> Result<Vec<Tagged<SubnetKey, ObservedSubnet>>> {
    let answer = ctx.ec2.describe_subnets().set_filters(tagged(stack)).send().await.aws("DescribeSubnets")?;
    let mut subnets: Vec<_> = answer
        .subnets()
        .iter()
        .filter_map(|subnet| {
            let tags = tag_map(subnet.tags());
            let role = role_of(&tags, "subnet/").and_then(SubnetKey::parse)?;
            Some((role, subnet, tags))
        })
        .map(|(role, subnet, tags)| {
            let resource = ObservedSubnet {
                id: required(subnet.subnet_id(), "DescribeSubnets", "SubnetId")?.to_owned(),
                cidr: cidr(subnet.cidr_block(), "DescribeSubnets")?,
                availability_zone: required(subnet.availability_zone(), "DescribeSubnets", "AvailabilityZone")?
                    .to_owned(),
                vpc_id: required(subnet.vpc_id(), "DescribeSubnets", "VpcId")?.to_owned(),
                tags,
            };
            Ok(Tagged { role, resource })
        })
        .collect::<Result<_>>()?;
    subnets.sort_by(|a, b| (&a.role, &a.resource.id).cmp(&(&b.role, &b.resource.id)));
    Ok(subnets)
}

async fn addresses(ctx: &AwsContext, stack: &str) -> Result<Vec<ObservedAddress>> {
    let answer = ctx.ec2.describe_addresses().set_filters(tagged(stack)).send().await.aws("DescribeAddresses")?;
    let mut nat_addresses: Vec<_> = answer
        .addresses()
        .iter()
        .map(|address| {
            let tags = tag_map(address.tags());
            Ok(ObservedAddress {
                role: role_of(&tags, "").map(str::to_owned),
                allocation_id: required(address.allocation_id(), "DescribeAddresses", "AllocationId")?.to_owned(),
                public_ip: required(address.public_ip(), "DescribeAddresses", "PublicIp")?.to_owned(),
                association_id: address.association_id().map(str::to_owned),
                tags,
            })
        })
        .collect::<Result<_>>()?;
    nat_addresses.sort_by(|a, b| a.allocation_id.cmp(&b.allocation_id));
    Ok(nat_addresses)
}

/// The stack's NAT gateways in its VPCs. They are found by VPC and their tags checked
/// here: the emulator (moto 5.2) ignores tag filters on this call.
async fn nat_gateways(ctx: &AwsContext, stack: &str, vpc_ids: &[String]) -> Result<Vec<ObservedNatGateway>> {
    let answer = ctx
        .ec2
        .describe_nat_gateways()
        .filter(Filter::builder().name("vpc-id").set_values(Some(vpc_ids.to_vec())).build())
        .send()
        .await
        .aws("DescribeNatGateways")?;
    let mut nat_gateways = Vec::new();
    for nat in answer.nat_gateways() {
        let tags = tag_map(nat.tags());
        let state = required(nat.state(), "DescribeNatGateways", "State")?.clone();
        let live = matches!(state, NatGatewayState::Pending | NatGatewayState::Available | NatGatewayState::Deleting);
        if !belongs_to(&tags, stack, Some(Tier::Network)) || !live {
            continue;
        }
        nat_gateways.push(ObservedNatGateway {
            role: role_of(&tags, "").map(str::to_owned),
            id: required(nat.nat_gateway_id(), "DescribeNatGateways", "NatGatewayId")?.to_owned(),
            state,
            subnet_id: required(nat.subnet_id(), "DescribeNatGateways", "SubnetId")?.to_owned(),
            allocation_ids: nat
                .nat_gateway_addresses()
                .iter()
                .filter_map(|a| a.allocation_id().map(str::to_owned))
                .collect(),
            tags,
        });
    }
    nat_gateways.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(nat_gateways)
}

/// Every route table of the stack's VPCs, the main one and foreign ones included.
async fn route_tables(ctx: &AwsContext, stack: &str, vpc_ids: &[String]) -> Result<Vec<ObservedRouteTable>> {
    let answer = ctx
        .ec2
        .describe_route_tables()
        .filters(Filter::builder().name("vpc-id").set_values(Some(vpc_ids.to_vec())).build())
        .send()
        .await
        .aws("DescribeRouteTables")?;
    let mut route_tables = Vec::new();
    for table in answer.route_tables() {
        let tags = tag_map(table.tags());
        let ours = belongs_to(&tags, stack, None);
        route_tables.push(ObservedRouteTable {
            id: required(table.route_table_id(), "DescribeRouteTables", "RouteTableId")?.to_owned(),
            key: role_of(&tags, "route-table/").filter(|_| ours).and_then(RouteTableKey::parse),
            routes: table
                .routes()
                .iter()
                .filter_map(|route| {
                    Some(ObservedRoute {
                        destination: route.destination_cidr_block()?.to_owned(),
                        gateway_id: route.gateway_id().map(str::to_owned),
                        nat_gateway_id: route.nat_gateway_id().map(str::to_owned),
                    })
                })
                .collect(),
            associations: table
                .associations()
                .iter()
                .map(|a| {
                    Ok(ObservedAssociation {
                        id: required(a.route_table_association_id(), "DescribeRouteTables", "RouteTableAssociationId")?
                            .to_owned(),
                        subnet_id: a.subnet_id().map(str::to_owned),
                    })
                })
                .collect::<Result<_>>()?,
            tags,
        });
    }
    route_tables.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(route_tables)
}

async fn security_groups(
    ctx: &AwsContext,
    stack: &str,
) -> Result<Vec<Tagged<SecurityGroupRole, ObservedSecurityGroup>>> {
    let answer =
        ctx.ec2.describe_security_groups().set_filters(tagged(stack)).send().await.aws("DescribeSecurityGroups")?;
    let mut security_groups = Vec::new();
    for group in answer.security_groups() {
        let tags = tag_map(group.tags());
        let Some(role) = role_of(&tags, "security-group/").and_then(SecurityGroupRole::from_tag) else {
            continue;
        };
        security_groups.push(Tagged {
            role,
            resource: ObservedSecurityGroup {
                id: required(group.group_id(), "DescribeSecurityGroups", "GroupId")?.to_owned(),
                name: required(group.group_name(), "DescribeSecurityGroups", "GroupName")?.to_owned(),
                vpc_id: required(group.vpc_id(), "DescribeSecurityGroups", "VpcId")?.to_owned(),
                ingress: group.ip_permissions().iter().flat_map(ingress_rules).collect(),
                tags,
            },
        });
    }
    security_groups.sort_by(|a, b| (a.role, &a.resource.id).cmp(&(b.role, &b.resource.id)));
    Ok(security_groups)
}

/// An IPv4 block as AWS gives it; one that does not parse is an answer without it.
fn cidr(block: Option<&str>, operation: &'static str) -> Result<Ipv4Net> {
    required(block.and_then(|b| b.parse().ok()), operation, "CidrBlock")
}

pub(crate) fn tag_filter(key: &str, value: &str) -> Filter {
    Filter::builder().name(format!("tag:{key}")).values(value).build()
}

pub(crate) fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter().filter_map(|tag| Some((tag.key()?.to_owned(), tag.value().unwrap_or_default().to_owned()))).collect()
}

fn role_of<'t>(tags: &'t BTreeMap<String, String>, prefix: &str) -> Option<&'t str> {
    tags.get(ROLE_TAG)?.strip_prefix(prefix)
}

/// One rule per source: AWS groups the sources of one protocol and port range together.
fn ingress_rules(permission: &IpPermission) -> Vec<IngressRule> {
    let rule = |source| IngressRule {
        protocol: permission.ip_protocol().unwrap_or("-1").to_owned(),
        from_port: permission.from_port().unwrap_or(-1),
        to_port: permission.to_port().unwrap_or(-1),
        source,
    };
    let cidrs = permission.ip_ranges().iter().filter_map(|r| r.cidr_ip()).map(|c| rule(Source::Cidr(c.to_owned())));
    let cidrs_v6 =
        permission.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6()).map(|c| rule(Source::Ipv6Cidr(c.to_owned())));
    let groups = permission
        .user_id_group_pairs()
        .iter()
        .filter_map(|pair| pair.group_id())
        .map(|g| rule(Source::Group(three_tier_core::Ref::existing(g))));
    let prefix_lists = permission
        .prefix_list_ids()
        .iter()
        .filter_map(|p| p.prefix_list_id())
        .map(|p| rule(Source::PrefixList(p.to_owned())));
    cidrs.chain(cidrs_v6).chain(groups).chain(prefix_lists).collect()
}
