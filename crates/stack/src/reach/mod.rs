//! Reachability: whether the paths the stack exists for are open, hop by hop, evaluated
//! the way AWS evaluates them, on a snapshot of the network.
//!
//! 1. **internet → ALB → nginx**: the internet gateway, each ALB subnet's route, the ALB's
//!    groups, each listener and rule to a target group holding the instance, the groups
//!    and routes between the ALB and the instance, what the compose file publishes.
//! 2. **nginx → MySQL**: the instance's egress, the routes between the app and DB subnets,
//!    the DB's group on the endpoint's port.
//! 3. **instance → internet**: what the user data needs at boot (dnf, the compose download,
//!    the image pull): the app subnet's route to an available NAT gateway with an address,
//!    its subnet's route to the internet gateway, the instance's egress on 443 and 80.
//!
//! AWS's rules as they apply here: security groups are stateful (ingress on the receiving
//! side, egress on the sending side; a group as source means the members of that group);
//! network ACLs are stateless (each direction checked, replies on ephemeral ports, first
//! matching rule by number wins); a route is the longest prefix that holds the
//! destination. Addresses are reasoned about by subnet: a rule opens a path when its block
//! holds the whole sending subnet, as it then holds any address AWS gives there.
//!
//! The analysis is pure: [`paths`] over a [`Snapshot`], built from the config
//! ([`desired`], for plan) or from what AWS holds ([`observe`], for verify).

pub mod desired;
pub mod observe;

use three_tier_core::{AwsContext, Config, Error, Result};
#[cfg(test)]
mod tests;

use std::fmt;

use ipnet::Ipv4Net;
use serde::Serialize;
use three_tier_core::Tier;

/// What the analysis reads: the stack's network as AWS holds it (or will).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    pub internet_gateways: Vec<InternetGateway>,
    pub nat_gateways: Vec<NatGateway>,
    pub subnets: Vec<Subnet>,
    pub route_tables: Vec<RouteTable>,
    pub network_acls: Vec<NetworkAcl>,
    pub security_groups: Vec<SecurityGroup>,
    pub load_balancer: Option<LoadBalancer>,
    pub target_groups: Vec<TargetGroup>,
    pub instance: Option<Instance>,
    pub database: Option<Database>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InternetGateway {
    pub id: String,
    /// Attached to the stack's VPC.
    pub attached: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NatGateway {
    pub id: String,
    /// `pending`, `available`, `deleting`, `deleted` or `failed`.
    pub state: String,
    pub subnet: String,
    pub public_ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subnet {
    pub id: String,
    pub name: String,
    pub cidr: Ipv4Net,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteTable {
    pub id: String,
    pub name: String,
    /// The VPC's main table: it serves every subnet associated with no other.
    pub main: bool,
    pub subnets: Vec<String>,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    pub destination: Ipv4Net,
    pub target: RouteTarget,
    /// `false` for a `blackhole` route: its target is gone.
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteTarget {
    Local,
    InternetGateway(String),
    NatGateway(String),
    /// Anything else (an instance, a peering, an endpoint): named by its id.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkAcl {
    pub id: String,
    /// The VPC's default ACL: it serves every subnet associated with no other.
    pub default: bool,
    pub subnets: Vec<String>,
    pub entries: Vec<AclEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AclEntry {
    pub number: i32,
    pub egress: bool,
    /// `-1` (all), `6` (TCP) or another protocol number.
    pub protocol: String,
    /// `None` for every port.
    pub ports: Option<(u16, u16)>,
    pub cidr: Ipv4Net,
    pub allow: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub ingress: Vec<Permission>,
    pub egress: Vec<Permission>,
}

/// One rule of a security group, one peer each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Permission {
    /// `-1` (all traffic), `tcp` or `6`, or another protocol.
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    pub peer: Peer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Peer {
    Cidr(Ipv4Net),
    /// The members of another group, by its id.
    Group(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadBalancer {
    pub name: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub listeners: Vec<Listener>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listener {
    pub port: u16,
    /// The target group (its key) the default action forwards to, if it forwards.
    pub default_target_group: Option<String>,
    pub rules: Vec<ListenerRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListenerRule {
    pub priority: u32,
    pub path_pattern: String,
    pub target_group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetGroup {
    /// What listeners name it by: its ARN in AWS, its name in a plan.
    pub key: String,
    pub name: String,
    pub port: u16,
    /// The port the health checks use; the traffic port unless set.
    pub health_check_port: u16,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub id: String,
    pub port: u16,
    /// As DescribeTargetHealth says (`healthy`, `unhealthy`, `initial`...); `None` in a plan.
    pub health: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instance {
    pub id: String,
    pub subnet: String,
    pub security_groups: Vec<String>,
    /// What its compose file publishes: host port to nginx's container port.
    pub published: Vec<(u16, u16)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Database {
    pub id: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub port: u16,
}

/// One of the stack's paths: open when every hop is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Path {
    pub name: &'static str,
    pub hops: Vec<Hop>,
}

/// One step of a path: the resource it crosses and what lets it through, or what is
/// missing and what repairs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hop {
    pub resource: String,
    pub detail: String,
    pub open: bool,
    /// What repairs a closed hop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair: Option<String>,
    /// The stretch of the path it is on: where a diagram marks it.
    pub segment: Segment,
}

/// A stretch of a path, between two of the stack's pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    InternetToAlb,
    AlbToInstance,
    InstanceToDatabase,
    InstanceToNat,
    NatToInternet,
}

pub const INTERNET_TO_NGINX: &str = "internet → ALB → nginx";
pub const NGINX_TO_MYSQL: &str = "nginx → MySQL";
pub const INSTANCE_TO_INTERNET: &str = "instance → internet";

/// Replies come back on these ports (NAT gateways and ALBs use 1024-65535).
const EPHEMERAL: (u16, u16) = (1024, 65535);

/// The ports the user data needs out: HTTPS (dnf, the compose download, the image pull)
/// and HTTP (some mirrors).
const BOOT_PORTS: [u16; 2] = [443, 80];

/// The container port nginx listens on.
const NGINX_PORT: u16 = 80;

impl Path {
    pub fn open(&self) -> bool {
        self.hops.iter().all(|hop| hop.open)
    }

    pub fn first_closed(&self) -> Option<&Hop> {
        self.hops.iter().find(|hop| !hop.open)
    }

    /// The path like a traceroute: a line a hop.
    pub fn render(&self) -> String {
        let mut out = format!("{} — {}\n", self.name, if self.open() { "open" } else { "CLOSED" });
        let width = self.hops.iter().map(|hop| hop.resource.chars().count()).max().unwrap_or(0).min(44);
        for (number, hop) in self.hops.iter().enumerate() {
            let mark = if hop.open { "✓" } else { "✗" };
            out.push_str(&format!("  {:>2} {mark} {:<width$}  {}\n", number + 1, hop.resource, hop.detail));
            if let Some(repair) = hop.repair.as_ref().filter(|_| !hop.open) {
                out.push_str(&format!("       fix: {repair}\n"));
            }
        }
        out
    }
}

/// The paths of the deployed stack, on what AWS holds: refused, with the command that
/// deploys it, when its network is not there.
pub async fn deployed(ctx: &AwsContext, config: &Config) -> Result<Vec<Path>> {
    let observed = crate::Observations::read(ctx, config, crate::TIERS).await?;
    let paths = of_observed(ctx, config, &observed).await?;
    paths.ok_or_else(|| Error::NotDeployed { tier: Tier::Network, stack: config.stack.name.clone() })
}

/// The paths of what `observed` holds; `None` without the stack's network.
pub async fn of_observed(
    ctx: &AwsContext,
    config: &Config,
    observed: &crate::Observations,
) -> Result<Option<Vec<Path>>> {
    if observed.network.as_ref().and_then(|n| n.vpc()).is_none() {
        return Ok(None);
    }
    Ok(Some(paths(&observe::observe(ctx, config, observed).await?)))
}

/// The three paths, each hop evaluated.
pub fn paths(snapshot: &Snapshot) -> Vec<Path> {
    let network = Network { snapshot };
    let path = |name, mut hops: Vec<Hop>| {
        dedup(&mut hops);
        Path { name, hops }
    };
    vec![
        path(INTERNET_TO_NGINX, network.internet_to_nginx()),
        path(NGINX_TO_MYSQL, on(Segment::InstanceToDatabase, network.nginx_to_mysql()).collect()),
        // The way out never crosses the ALB: hops not put beyond the NAT gateway are before it.
        path(
            INSTANCE_TO_INTERNET,
            network
                .instance_to_internet()
                .into_iter()
                .map(|hop| match hop.segment {
                    Segment::InternetToAlb => Hop { segment: Segment::InstanceToNat, ..hop },
                    _ => hop,
                })
                .collect(),
        ),
    ]
}

/// A resource by its name and id; by its name alone in a plan, where the id is a
/// planned key such as `(new security-group/app)`.
fn label(id: &str, name: Option<&str>) -> String {
    match name {
        Some(name) if name != id && !id.starts_with('(') => format!("{name} ({id})"),
        Some(name) => name.to_owned(),
        None => id.to_owned(),
    }
}

fn repair(tier: Tier) -> Option<String> {
    Some(format!("cargo xtask deploy {tier}"))
}

/// An open hop, on the path's first stretch until [`on`] says otherwise.
fn open(resource: impl Into<String>, detail: impl Into<String>) -> Hop {
    Hop { resource: resource.into(), detail: detail.into(), open: true, repair: None, segment: Segment::InternetToAlb }
}

fn closed(resource: impl Into<String>, detail: impl Into<String>, repair: Option<String>) -> Hop {
    Hop { resource: resource.into(), detail: detail.into(), open: false, repair, segment: Segment::InternetToAlb }
}

/// `hops`, on `segment`.
fn on(segment: Segment, hops: impl IntoIterator<Item = Hop>) -> impl Iterator<Item = Hop> {
    hops.into_iter().map(move |hop| Hop { segment, ..hop })
}

const INTERNET: Ipv4Net = Ipv4Net::new_assert(std::net::Ipv4Addr::UNSPECIFIED, 0);

/// Where a party's addresses are: a subnet (by id) and its block, or the internet.
type Place = (Option<String>, Ipv4Net);

/// Who sends or receives: where its addresses are and the groups it is a member of.
#[derive(Debug, Clone)]
struct Party<'a> {
    what: &'a str,
    places: Vec<Place>,
    groups: Vec<String>,
}

impl Party<'_> {
    fn internet() -> Party<'static> {
        Party { what: "the internet", places: vec![(None, INTERNET)], groups: Vec::new() }
    }

    fn cidrs(&self) -> Vec<Ipv4Net> {
        self.places.iter().map(|(_, cidr)| *cidr).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

struct Network<'a> {
    snapshot: &'a Snapshot,
}

impl<'a> Network<'a> {
    fn subnet(&self, id: &str) -> Option<&'a Subnet> {
        self.snapshot.subnets.iter().find(|s| s.id == id)
    }

    fn group(&self, id: &str) -> Option<&'a SecurityGroup> {
        self.snapshot.security_groups.iter().find(|g| g.id == id)
    }

    /// A subnet by its name: the stack's names are unique in its VPC, and shorter.
    fn subnet_label(&self, id: &str) -> String {
        self.subnet(id).map_or_else(|| id.to_owned(), |s| s.name.clone())
    }

    fn group_label(&self, id: &str) -> String {
        label(id, self.group(id).map(|g| g.name.as_str()))
    }

    fn places(&self, subnets: &[String]) -> Vec<Place> {
        subnets.iter().filter_map(|id| self.subnet(id)).map(|s| (Some(s.id.clone()), s.cidr)).collect()
    }

    fn internet_gateway(&self) -> Hop {
        match self.snapshot.internet_gateways.iter().find(|g| g.attached) {
            Some(gateway) => open(&gateway.id, "internet gateway attached to the VPC"),
            None => closed("internet gateway", "no internet gateway is attached to the VPC", repair(Tier::Network)),
        }
    }

    /// The table that routes `subnet`'s traffic: its own association, else the main table.
    fn route_table(&self, subnet: &str) -> Option<&'a RouteTable> {
        let tables = &self.snapshot.route_tables;
        tables.iter().find(|t| t.subnets.iter().any(|s| s == subnet)).or_else(|| tables.iter().find(|t| t.main))
    }

    /// The route `subnet`'s traffic to `destination` takes: the longest prefix holding it.
    fn route(&self, subnet: &str, destination: Ipv4Net) -> Option<(&'a RouteTable, &'a Route)> {
        let table = self.route_table(subnet)?;
        let route = table
            .routes
            .iter()
            .filter(|r| r.destination.contains(&destination))
            .max_by_key(|r| r.destination.prefix_len())?;
        Some((table, route))
    }

    /// `subnet` routes the internet to an attached internet gateway.
    fn route_to_internet_gateway(&self, subnet: &str) -> Hop {
        let resource = format!("{} route", self.subnet_label(subnet));
        let Some((table, route)) = self.route(subnet, INTERNET) else {
            return closed(resource, "no route for 0.0.0.0/0", repair(Tier::Network));
        };
        match &route.target {
            RouteTarget::InternetGateway(id) if !route.active => closed(
                resource,
                format!("{} → {id} is a blackhole in {}", route.destination, table.id),
                repair(Tier::Network),
            ),
            RouteTarget::InternetGateway(id)
                if self.snapshot.internet_gateways.iter().any(|g| &g.id == id && g.attached) =>
            {
                open(resource, format!("{} → {id} in {}", route.destination, table.id))
            }
            target => closed(
                resource,
                format!(
                    "{} goes to {} in {}, not to the attached internet gateway",
                    route.destination, target, table.id
                ),
                repair(Tier::Network),
            ),
        }
    }

    /// Traffic from `subnet` to the blocks `to` stays in the VPC: for each, the longest
    /// prefix is the `local` route.
    fn local_routes(&self, subnet: &str, to: &[Ipv4Net]) -> Hop {
        let resource = format!("{} route", self.subnet_label(subnet));
        let mut through = Vec::new();
        let mut tables = Vec::new();
        for &to in to {
            match self.route(subnet, to) {
                Some((table, route)) if route.target == RouteTarget::Local => {
                    through.push(to.to_string());
                    if !tables.contains(&table.id) {
                        tables.push(table.id.clone());
                    }
                }
                Some((table, route)) => {
                    let detail = format!(
                        "{to} goes to {} ({} in {}), not within the VPC",
                        route.target, route.destination, table.id
                    );
                    return closed(resource, detail, repair(Tier::Network));
                }
                None => return closed(resource, format!("no route for {to}"), repair(Tier::Network)),
            }
        }
        open(resource, format!("{} → local in {}", through.join(", "), tables.join(", ")))
    }

    /// The ACL that filters `subnet`'s traffic: its association, else the default.
    fn network_acl(&self, subnet: &str) -> Option<&'a NetworkAcl> {
        let acls = &self.snapshot.network_acls;
        acls.iter().find(|a| a.subnets.iter().any(|s| s == subnet)).or_else(|| acls.iter().find(|a| a.default))
    }

    /// Whether `subnet`'s ACL lets TCP on `ports` cross in `direction` from or to `peer`:
    /// for each port the lowest-numbered entry that matches decides.
    fn acl_allows(
        &self,
        acl: &NetworkAcl,
        direction: Direction,
        peer: Ipv4Net,
        ports: (u16, u16),
    ) -> Result<Vec<i32>, String> {
        let way = if direction == Direction::Egress { "egress to" } else { "ingress from" };
        let mut entries: Vec<&AclEntry> =
            acl.entries.iter().filter(|e| e.egress == (direction == Direction::Egress)).collect();
        entries.sort_by_key(|e| e.number);
        // Which entry decides changes only where an entry's port range starts or ends:
        // one port of each stretch between those bounds stands for the stretch.
        let mut stretches: Vec<u16> = entries
            .iter()
            .filter_map(|e| e.ports)
            .flat_map(|(low, high)| [low, high.saturating_add(1)])
            .filter(|port| (ports.0..=ports.1).contains(port))
            .chain([ports.0])
            .collect();
        stretches.sort_unstable();
        stretches.dedup();
        let mut deciding = Vec::new();
        for port in stretches {
            let mut decided = None;
            for entry in &entries {
                let protocol = matches!(entry.protocol.as_str(), "-1" | "6" | "tcp");
                let port_matches = entry.ports.is_none_or(|(low, high)| (low..=high).contains(&port));
                let overlaps = entry.cidr.contains(&peer.network()) || peer.contains(&entry.cidr.network());
                if !(protocol && port_matches && overlaps) {
                    continue;
                }
                if !entry.allow {
                    let within =
                        if entry.cidr == peer { String::new() } else { format!(" (as part of {})", entry.cidr) };
                    return Err(format!("entry {} denies {way} {peer}{within} on port {port}", entry.number));
                }
                if entry.cidr.contains(&peer) {
                    decided = Some(entry.number);
                    break;
                }
                // An allow for part of the peer's addresses: the rest is up to later entries.
            }
            match decided {
                Some(number) => deciding.push(number),
                None => {
                    return Err(format!("no entry allows {way} {peer} on port {port}: the final * entry denies it"));
                }
            }
        }
        Ok(deciding)
    }

    /// A TCP flow on `port` from `from` to `to`, and its replies on ephemeral ports,
    /// through the ACL of each subnet on either side (traffic within one subnet meets
    /// none): one hop per subnet, naming the entries that let it through.
    fn acls_between(&self, from: &[Place], to: &[Place], ports: &[u16]) -> Vec<Hop> {
        let mut hops = Vec::new();
        let sides = [(from, to, Direction::Egress, "out to"), (to, from, Direction::Ingress, "in from")];
        for (own, peers, direction, way) in sides {
            for (subnet, _) in own {
                let Some(subnet) = subnet else { continue };
                let peers: Vec<Ipv4Net> =
                    peers.iter().filter(|(other, _)| other.as_ref() != Some(subnet)).map(|(_, cidr)| *cidr).collect();
                // A subnet always has an ACL in AWS; a snapshot without one has no say.
                let (Some(acl), false) = (self.network_acl(subnet), peers.is_empty()) else { continue };
                let label = self.subnet_label(subnet);
                let resource = format!("{label} ACL {}", acl.id);
                let reply = if direction == Direction::Egress { Direction::Ingress } else { Direction::Egress };
                let mut numbers = Vec::new();
                let checked: Result<(), String> = peers.iter().try_for_each(|&peer| {
                    for &port in ports {
                        numbers.extend(self.acl_allows(acl, direction, peer, (port, port))?);
                    }
                    numbers.extend(self.acl_allows(acl, reply, peer, EPHEMERAL)?);
                    Ok(())
                });
                let port: Vec<String> = ports.iter().map(ToString::to_string).collect();
                let port = port.join(", ");
                let peers: Vec<String> = peers.iter().map(ToString::to_string).collect();
                match checked {
                    Ok(()) => {
                        numbers.sort_unstable();
                        numbers.dedup();
                        let numbers: Vec<String> = numbers.iter().map(ToString::to_string).collect();
                        hops.push(open(
                            resource,
                            format!(
                                "entry {} let tcp {port} {way} {} and the replies back",
                                numbers.join(", "),
                                peers.join(", ")
                            ),
                        ));
                    }
                    Err(why) => {
                        let fix = format!(
                            "allow it in {}, or associate {label} with the VPC's default ACL, which the stack relies on",
                            acl.id
                        );
                        hops.push(closed(resource, why, Some(fix)));
                    }
                }
            }
        }
        hops
    }

    /// A rule of `groups` (in `direction`) that lets TCP `port` from or to every one of
    /// `peer`'s subnets, or its groups: the rule, or `None`.
    fn groups_allow(&self, groups: &[String], direction: Direction, port: u16, peer: &Party) -> Result<String, String> {
        let rules = |group: &'a SecurityGroup| {
            let list = if direction == Direction::Ingress { &group.ingress } else { &group.egress };
            list.iter().map(move |rule| (group, rule))
        };
        let covers_port = |rule: &Permission| {
            rule.protocol == "-1"
                || (matches!(rule.protocol.as_str(), "tcp" | "6")
                    && (rule.from_port..=rule.to_port).contains(&i32::from(port)))
        };
        // The hop names the groups: a rule names its own only when there are several.
        let named = |group: &SecurityGroup, rule: String| {
            if groups.len() > 1 { format!("{} {rule}", group.name) } else { rule }
        };
        let candidates: Vec<(&SecurityGroup, &Permission)> = groups
            .iter()
            .filter_map(|id| self.group(id))
            .flat_map(rules)
            .filter(|(_, rule)| covers_port(rule))
            .collect();
        // Through membership of one of the peer's groups...
        if let Some((group, rule)) =
            candidates.iter().find(|(_, rule)| matches!(&rule.peer, Peer::Group(g) if peer.groups.contains(g)))
        {
            return Ok(named(group, self.rule_text(rule, direction)));
        }
        // ...or by address: each of the peer's subnets inside some rule's block.
        let mut through = Vec::new();
        for cidr in &peer.cidrs() {
            let found =
                candidates.iter().find(|(_, rule)| matches!(&rule.peer, Peer::Cidr(block) if block.contains(cidr)));
            match found {
                Some((group, rule)) => through.push(named(group, self.rule_text(rule, direction))),
                None => {
                    let names: Vec<String> = groups.iter().map(|g| self.group_label(g)).collect();
                    let way = if direction == Direction::Ingress { "in from" } else { "out to" };
                    let peer_groups: Vec<String> = peer
                        .groups
                        .iter()
                        .map(|g| self.group(g).map_or_else(|| g.clone(), |g| g.name.clone()))
                        .collect();
                    let by = if peer_groups.is_empty() {
                        cidr.to_string()
                    } else {
                        format!("its group {}, or {cidr}", peer_groups.join(", "))
                    };
                    // The hop names a single group already.
                    let of = if names.len() > 1 { format!(" of {}", names.join(", ")) } else { String::new() };
                    return Err(format!("no rule{of} lets tcp {port} {way} {} ({by})", peer.what));
                }
            }
        }
        through.dedup();
        Ok(through.join("; "))
    }

    fn rule_text(&self, rule: &Permission, direction: Direction) -> String {
        let ports = match (rule.protocol.as_str(), rule.from_port == rule.to_port) {
            ("-1", _) => "all traffic".to_owned(),
            (_, true) => format!("tcp {}", rule.from_port),
            (_, false) => format!("tcp {}-{}", rule.from_port, rule.to_port),
        };
        let peer = match &rule.peer {
            Peer::Cidr(cidr) => cidr.to_string(),
            Peer::Group(id) => self.group(id).map_or_else(|| id.clone(), |g| g.name.clone()),
        };
        let way = if direction == Direction::Ingress { "from" } else { "to" };
        format!("allows {ports} {way} {peer}")
    }

    /// The security-group hop of one side of a flow.
    fn group_hop(
        &self,
        party: &str,
        groups: &[String],
        direction: Direction,
        port: u16,
        peer: &Party,
        tier: Tier,
    ) -> Hop {
        let names: Vec<String> = groups.iter().map(|g| self.group_label(g)).collect();
        let resource = if names.is_empty() { format!("{party}'s security groups") } else { names.join(", ") };
        match self.groups_allow(groups, direction, port, peer) {
            Ok(rule) => open(resource, rule),
            Err(why) => closed(resource, why, repair(tier)),
        }
    }

    fn instance_party(&self, instance: &'a Instance) -> Party<'a> {
        Party {
            what: "the instance",
            places: self.places(std::slice::from_ref(&instance.subnet)),
            groups: instance.security_groups.clone(),
        }
    }

    fn internet_to_nginx(&self) -> Vec<Hop> {
        let mut hops = vec![self.internet_gateway()];
        let Some(balancer) = &self.snapshot.load_balancer else {
            hops.push(closed("load balancer", "the stack has no load balancer", repair(Tier::Alb)));
            return hops;
        };
        let alb =
            Party { what: "the ALB", places: self.places(&balancer.subnets), groups: balancer.security_groups.clone() };
        for subnet in &balancer.subnets {
            hops.push(self.route_to_internet_gateway(subnet));
        }
        if balancer.listeners.is_empty() {
            hops.push(closed(&balancer.name, "the load balancer has no listener", repair(Tier::Alb)));
            return hops;
        }
        let mut forwarded: Vec<&TargetGroup> = Vec::new();
        for listener in &balancer.listeners {
            let port = listener.port;
            hops.extend(self.acls_between(&Party::internet().places, &alb.places, &[port]));
            hops.push(self.group_hop(
                "the ALB",
                &balancer.security_groups,
                Direction::Ingress,
                port,
                &Party::internet(),
                Tier::Network,
            ));
            let routes = std::iter::once((format!("listener :{port} default action"), &listener.default_target_group))
                .chain(listener.rules.iter().map(|rule| {
                    (format!("listener :{port} rule {} {}", rule.priority, rule.path_pattern), &rule.target_group)
                }));
            for (what, target_group) in routes {
                let found =
                    target_group.as_ref().and_then(|key| self.snapshot.target_groups.iter().find(|g| &g.key == key));
                match (target_group, found) {
                    (None, _) => hops.push(open(what, "answers without forwarding (fixed response or redirect)")),
                    (Some(key), None) => {
                        hops.push(closed(what, format!("forwards to {key}, which does not exist"), repair(Tier::Alb)))
                    }
                    (Some(_), Some(group)) => {
                        hops.push(open(what, format!("forwards to {} (port {})", group.name, group.port)));
                        if !forwarded.iter().any(|g| g.key == group.key) {
                            forwarded.push(group);
                        }
                    }
                }
            }
        }
        let Some(instance) = &self.snapshot.instance else {
            let missing = closed("instance", "the stack has no instance", repair(Tier::Compute));
            hops.extend(on(Segment::AlbToInstance, [missing]));
            return hops;
        };
        let app = self.instance_party(instance);
        for group in forwarded {
            hops.extend(on(Segment::AlbToInstance, self.alb_to_instance(balancer, &alb, group, instance, &app)));
        }
        hops
    }

    fn alb_to_instance(
        &self,
        balancer: &LoadBalancer,
        alb: &Party,
        group: &TargetGroup,
        instance: &Instance,
        app: &Party,
    ) -> Vec<Hop> {
        let mut hops = Vec::new();
        let Some(target) = group.targets.iter().find(|t| t.id == instance.id) else {
            hops.push(closed(
                format!("target group {}", group.name),
                format!("{} is not registered in it", instance.id),
                repair(Tier::Compute),
            ));
            return hops;
        };
        let health = target.health.as_ref().map(|h| format!(", {h}")).unwrap_or_default();
        hops.push(open(
            format!("target group {}", group.name),
            format!("{}:{} registered{health}", instance.id, target.port),
        ));
        let mut ports = vec![target.port];
        if group.health_check_port != target.port && group.health_check_port != 0 {
            ports.push(group.health_check_port);
        }
        for &port in &ports {
            hops.push(self.group_hop(
                "the ALB",
                &balancer.security_groups,
                Direction::Egress,
                port,
                app,
                Tier::Network,
            ));
            for subnet in &balancer.subnets {
                hops.push(self.local_routes(subnet, &app.cidrs()));
            }
            hops.push(self.local_routes(&instance.subnet, &alb.cidrs()));
            hops.extend(self.acls_between(&alb.places, &app.places, &[port]));
            hops.push(self.group_hop(
                "the instance",
                &instance.security_groups,
                Direction::Ingress,
                port,
                alb,
                Tier::Network,
            ));
        }
        let resource = format!("{} compose file", instance.id);
        match instance.published.iter().find(|(host, _)| *host == target.port) {
            Some((host, NGINX_PORT)) => hops.push(open(resource, format!("publishes {host} to nginx's port 80"))),
            Some((host, container)) => hops.push(closed(
                resource,
                format!(
                    "publishes {host} to container port {container}, where nginx does not listen (it listens on 80)"
                ),
                repair(Tier::Compute),
            )),
            None => {
                let published: Vec<String> = instance.published.iter().map(|(h, c)| format!("{h}:{c}")).collect();
                hops.push(closed(
                    resource,
                    format!(
                        "publishes {} but not port {} of target group {}",
                        if published.is_empty() { "nothing".to_owned() } else { published.join(", ") },
                        target.port,
                        group.name
                    ),
                    Some("the instance runs an older user data: replace it (`cargo xtask teardown compute` then `cargo xtask deploy compute`)".into()),
                ));
            }
        }
        hops
    }

    fn nginx_to_mysql(&self) -> Vec<Hop> {
        let Some(instance) = &self.snapshot.instance else {
            return vec![closed("instance", "the stack has no instance", repair(Tier::Compute))];
        };
        let Some(database) = &self.snapshot.database else {
            return vec![closed("DB instance", "the stack has no DB instance", repair(Tier::Database))];
        };
        let app = self.instance_party(instance);
        let db = Party {
            what: "the DB instance",
            places: self.places(&database.subnets),
            groups: database.security_groups.clone(),
        };
        let port = database.port;
        let mut hops = vec![self.group_hop(
            "the instance",
            &instance.security_groups,
            Direction::Egress,
            port,
            &db,
            Tier::Network,
        )];
        hops.push(self.local_routes(&instance.subnet, &db.cidrs()));
        for subnet in &database.subnets {
            hops.push(self.local_routes(subnet, &app.cidrs()));
        }
        hops.extend(self.acls_between(&app.places, &db.places, &[port]));
        hops.push(self.group_hop(
            "the DB instance",
            &database.security_groups,
            Direction::Ingress,
            port,
            &app,
            Tier::Network,
        ));
        hops.push(open(&database.id, format!("MySQL listens on port {port}")));
        hops
    }

    fn instance_to_internet(&self) -> Vec<Hop> {
        let Some(instance) = &self.snapshot.instance else {
            return vec![closed("instance", "the stack has no instance", repair(Tier::Compute))];
        };
        let app = self.instance_party(instance);
        let mut hops = Vec::new();
        for port in BOOT_PORTS {
            hops.push(self.group_hop(
                "the instance",
                &instance.security_groups,
                Direction::Egress,
                port,
                &Party::internet(),
                Tier::Network,
            ));
        }
        let resource = format!("{} route", self.subnet_label(&instance.subnet));
        let Some((table, route)) = self.route(&instance.subnet, INTERNET) else {
            hops.push(closed(
                resource,
                "no route for 0.0.0.0/0: the instance cannot reach the internet",
                repair(Tier::Network),
            ));
            return hops;
        };
        let RouteTarget::NatGateway(nat_id) = &route.target else {
            hops.push(closed(
                resource,
                format!("{} goes to {} in {}, not to a NAT gateway: a private instance reaches the internet only through one", route.destination, route.target, table.id),
                repair(Tier::Network),
            ));
            return hops;
        };
        let nat = self.snapshot.nat_gateways.iter().find(|n| &n.id == nat_id);
        let Some(nat) = nat.filter(|n| route.active && n.state != "deleted" && n.state != "failed") else {
            let state = nat.map_or("not found".to_owned(), |n| n.state.clone());
            hops.push(closed(
                resource,
                format!(
                    "{} → {nat_id} in {}, but that NAT gateway is {state} (a blackhole route)",
                    route.destination, table.id
                ),
                repair(Tier::Network),
            ));
            return hops;
        };
        hops.push(open(resource, format!("{} → {nat_id} in {}", route.destination, table.id)));
        let nat_resource = format!("NAT gateway {nat_id}");
        match (nat.state.as_str(), &nat.public_ip) {
            ("available", Some(ip)) => hops.push(open(nat_resource, format!("available, public address {ip}"))),
            ("available", None) => hops.push(closed(nat_resource, "holds no Elastic IP", repair(Tier::Network))),
            (state, _) => hops.push(closed(nat_resource, format!("is {state}, not available"), repair(Tier::Network))),
        }
        let nat_places = self.places(std::slice::from_ref(&nat.subnet));
        let nat_cidrs: Vec<Ipv4Net> = nat_places.iter().map(|(_, cidr)| *cidr).collect();
        hops.push(self.local_routes(&instance.subnet, &nat_cidrs));
        hops.push(self.local_routes(&nat.subnet, &app.cidrs()));
        hops.extend(self.acls_between(&app.places, &nat_places, &BOOT_PORTS));
        let mut hops: Vec<Hop> = on(Segment::InstanceToNat, hops).collect();
        let beyond = self.acls_between(&nat_places, &Party::internet().places, &BOOT_PORTS).into_iter();
        let beyond = beyond.chain([self.route_to_internet_gateway(&nat.subnet), self.internet_gateway()]);
        hops.extend(on(Segment::NatToInternet, beyond));
        hops
    }
}

/// A hop found twice (one ACL entry on two ports, one group rule for two subnets) shows once.
fn dedup(hops: &mut Vec<Hop>) {
    let mut seen = Vec::new();
    hops.retain(|hop| {
        if seen.contains(hop) {
            return false;
        }
        seen.push(hop.clone());
        true
    });
}

impl fmt::Display for RouteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteTarget::Local => f.write_str("local"),
            RouteTarget::InternetGateway(id) | RouteTarget::NatGateway(id) | RouteTarget::Other(id) => f.write_str(id),
        }
    }
}
