//! What the network tier should look like, computed from the config alone.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use serde::Serialize;
use three_tier_core::naming::Tags;
use three_tier_core::{Config, RouteTableKey, RouteTableRole, SecurityGroupRole, SubnetKey, Tier};

/// The whole network tier as SPEC.md's network table describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Desired {
    pub vpc: VpcSpec,
    pub internet_gateway: Named,
    pub subnets: BTreeMap<SubnetKey, SubnetSpec>,
    /// One, or with `network.nat_gateways = "per-zone"` one per zone with an app subnet.
    pub nat_gateways: Vec<NatGatewaySpec>,
    pub security_groups: BTreeMap<SecurityGroupRole, SecurityGroupSpec>,
    pub route_tables: BTreeMap<RouteTableKey, RouteTableSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Named {
    pub name: String,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VpcSpec {
    pub name: String,
    pub cidr: Ipv4Net,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubnetSpec {
    pub name: String,
    pub cidr: Ipv4Net,
    pub availability_zone: String,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NatGatewaySpec {
    /// Its role tag and planned reference: `nat-gateway`, or `nat-gateway/ZONE` for a
    /// zone's own (see [`three_tier_core::NatPlacement::zone`]).
    pub key: String,
    pub name: String,
    /// A public subnet: the NAT gateway reaches the internet through the internet gateway.
    pub subnet: SubnetKey,
    pub tags: Tags,
    /// Its Elastic IP, keyed `nat-address` or `nat-address/ZONE`.
    pub address: KeyedName,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyedName {
    pub key: String,
    pub name: String,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecurityGroupSpec {
    pub name: String,
    pub description: String,
    pub ingress: Vec<IngressSpec>,
    pub tags: Tags,
}

/// An inbound rule: TCP on one port, from an address block or from another of the
/// stack's groups (a group reference, not an address).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngressSpec {
    pub port: u16,
    pub from: IngressFrom,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IngressFrom {
    Cidr(Ipv4Net),
    Group(SecurityGroupRole),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteTableSpec {
    pub name: String,
    pub subnets: Vec<SubnetKey>,
    /// Where 0.0.0.0/0 goes; `None` keeps the table's traffic inside the VPC.
    pub default_route: Option<DefaultRoute>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultRoute {
    InternetGateway,
    /// The NAT gateway of this key.
    NatGateway(String),
}

pub const ANYWHERE: &str = "0.0.0.0/0";

pub fn desired(config: &Config) -> Desired {
    let names = config.names();
    let stack = names.stack();
    let tags = |role: &str, name: &str| Tags::new(stack, Tier::Network, role, name, &config.stack.tags);
    let named = |role: &str, name: String| Named { tags: tags(role, &name), name };
    let network = &config.network;

    let vpc_name = names.unnamed("vpc");
    let subnets = network
        .subnets
        .iter()
        .map(|(key, subnet)| {
            let spec = SubnetSpec {
                name: subnet.name.clone(),
                cidr: subnet.cidr,
                availability_zone: subnet.availability_zone.clone(),
                tags: tags(&format!("subnet/{key}"), &subnet.name),
            };
            (key.clone(), spec)
        })
        .collect();

    let groups = &network.security_groups;
    let mut ingress = ingress(config);
    let mut group = |role: SecurityGroupRole, name: &str, description: &str| {
        let spec = SecurityGroupSpec {
            name: name.to_owned(),
            description: description.to_owned(),
            ingress: ingress.remove(&role).unwrap_or_default(),
            tags: tags(&format!("security-group/{role}"), name),
        };
        (role, spec)
    };
    let security_groups = BTreeMap::from([
        group(SecurityGroupRole::Alb, &groups.alb, "three-tier ALB: HTTP from the internet"),
        group(SecurityGroupRole::App, &groups.app, "three-tier app instance: nginx from the ALB"),
        group(SecurityGroupRole::Db, &groups.db, "three-tier database: MySQL from the app instance"),
    ]);

    // A zone's own gateway, table and address carry its zone in their key and name.
    let zoned = |base: &str, separator: char, zone: Option<&str>| match zone {
        Some(zone) => format!("{base}{separator}{zone}"),
        None => base.to_owned(),
    };
    let placements = network.nat_placements();
    let nat_gateways: Vec<NatGatewaySpec> = placements
        .iter()
        .map(|placement| {
            let name = zoned(&network.nat_gateway_name, '-', placement.zone);
            let key = zoned("nat-gateway", '/', placement.zone);
            let address_key = zoned("nat-address", '/', placement.zone);
            let address_name = names.unnamed(&zoned("nat-eip", '-', placement.zone));
            NatGatewaySpec {
                tags: tags(&key, &name),
                key,
                name,
                subnet: placement.subnet.clone(),
                address: KeyedName { tags: tags(&address_key, &address_name), key: address_key, name: address_name },
            }
        })
        .collect();

    let table = |role: RouteTableRole, zone: Option<&str>, subnets: Vec<SubnetKey>, default_route| {
        let key = RouteTableKey { role, zone: zone.map(str::to_owned) };
        let name = names.unnamed(&zoned(&format!("{role}-rt"), '-', zone));
        let spec = RouteTableSpec { tags: tags(&format!("route-table/{key}"), &name), name, subnets, default_route };
        (key, spec)
    };
    let of_role = |role: RouteTableRole| network.subnets.of(role.serves()).map(|(key, _)| key.clone()).collect();
    let mut route_tables: BTreeMap<RouteTableKey, RouteTableSpec> = BTreeMap::from([
        table(RouteTableRole::Public, None, of_role(RouteTableRole::Public), Some(DefaultRoute::InternetGateway)),
        table(RouteTableRole::Db, None, of_role(RouteTableRole::Db), None),
    ]);
    for (placement, nat) in placements.iter().zip(&nat_gateways) {
        let serves = placement.serves.iter().map(|&key| key.clone()).collect();
        let route = Some(DefaultRoute::NatGateway(nat.key.clone()));
        route_tables.extend([table(RouteTableRole::App, placement.zone, serves, route)]);
    }

    Desired {
        vpc: VpcSpec { tags: tags("vpc", &vpc_name), name: vpc_name, cidr: network.vpc_cidr },
        internet_gateway: named("internet-gateway", names.unnamed("igw")),
        subnets,
        nat_gateways,
        security_groups,
        route_tables,
    }
}

/// Every security group's ingress, derived in one place from what crosses each hop: the
/// internet to every listener's port, the ALB to every target group's port (a listener
/// rule's group too: a port no one opened answers 502), the app to the database's port.
pub fn ingress(config: &Config) -> BTreeMap<SecurityGroupRole, Vec<IngressSpec>> {
    let rule = |port: u16, from: IngressFrom, description: &str| IngressSpec {
        port,
        from,
        description: description.to_owned(),
    };
    let internet = || IngressFrom::Cidr(ANYWHERE.parse().expect("literal CIDR"));
    BTreeMap::from([
        (
            SecurityGroupRole::Alb,
            config.listener_ports().into_iter().map(|port| rule(port, internet(), "HTTP from the internet")).collect(),
        ),
        (
            SecurityGroupRole::App,
            config
                .target_ports()
                .into_iter()
                .map(|port| rule(port, IngressFrom::Group(SecurityGroupRole::Alb), "nginx from the ALB"))
                .collect(),
        ),
        (
            SecurityGroupRole::Db,
            vec![rule(
                config.ports.database.get(),
                IngressFrom::Group(SecurityGroupRole::App),
                "MySQL from the app instance",
            )],
        ),
    ])
}
