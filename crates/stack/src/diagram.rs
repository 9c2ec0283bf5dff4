//! `cargo xtask diagram`: the stack as the seed's architecture picture, with the real ids
//! and addresses of what is deployed, or only the config's names and addresses for a
//! stack still to be built. One drawing, two renderings: Mermaid text (for Markdown, e.g.
//! a pull request) and SVG, laid out as the seed's picture (see `svg`).

mod svg;

use std::fmt::Write;

use network::IngressFrom;
use three_tier_core::{AwsContext, Config, Result, SecurityGroupRole, SubnetKey, SubnetRole};

use crate::reach::{Path, Segment};
use crate::{Observations, StackOutputs, TIERS};

/// A drawing: boxes nested in boxes (VPC, zones), the resources in them, and the edges
/// between resources.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagram {
    pub title: String,
    pub top: Group,
    pub edges: Vec<Edge>,
}

/// A box around resources: the region, the VPC, an availability zone, a subnet.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: String,
    pub kind: GroupKind,
    pub label: Vec<String>,
    pub nodes: Vec<Node>,
    pub groups: Vec<Group>,
}

/// What a group is: the SVG places each kind where the seed's picture has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    Region,
    Vpc,
    Zone,
    Subnet(SubnetRole),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: String,
    /// Its lines: what it is, then its name, id and address.
    pub label: Vec<String>,
    pub shape: Shape,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Box,
    Circle,
    Cylinder,
    /// Words without a frame, e.g. a subnet's address inside its box.
    Text,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub label: Option<String>,
    pub line: Line,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// Traffic a security group lets in.
    Allowed,
    /// Traffic out to the internet.
    Egress,
    /// A resource in a subnet.
    Placed,
    /// None drawn: keeps a zone's subnets in one column, public above private above isolated.
    Layout,
    /// A stretch of a path that is closed (see [`crate::reach`]), drawn red and crossed.
    Closed,
}

/// Draws the stack of `config`. With `deployed`, each resource shows its id and address,
/// and a tier that does not stand shows "not deployed"; without, the drawing is the
/// config's alone (`--plan`), offline.
pub fn diagram(config: &Config, deployed: Option<&StackOutputs>) -> Diagram {
    let names = config.names();
    let network = network::desired(config);
    let live = |tier: Option<Vec<String>>| -> Vec<String> {
        match (deployed, tier) {
            (None, _) => Vec::new(),
            (Some(_), Some(lines)) => lines,
            (Some(_), None) => vec!["(not deployed)".to_owned()],
        }
    };
    let net = deployed.and_then(|d| d.network.as_ref());
    let alb = deployed.and_then(|d| d.alb.as_ref());
    let compute = deployed.and_then(|d| d.compute.as_ref());
    let database = deployed.and_then(|d| d.database.as_ref());

    let node = |id: &str, shape: Shape, head: Vec<String>, tail: Vec<String>| Node {
        id: id.to_owned(),
        label: head.into_iter().chain(tail).collect(),
        shape,
    };
    let subnet_id = |key: &SubnetKey| format!("subnet_{}", key.as_str().replace('-', "_"));
    // A subnet is a box holding its address and what lives in it: the NAT gateway, the
    // instance. The ALB and the database span two zones, so they stand beside the zones.
    let subnet = |key: &SubnetKey, residents: Vec<Node>| {
        let spec = &network.subnets[key];
        let kind = match key.role() {
            SubnetRole::Alb => "public subnet",
            SubnetRole::App => "private subnet",
            SubnetRole::Db => "isolated subnet",
        };
        let address = node(
            &subnet_id(key),
            Shape::Text,
            vec![spec.cidr.to_string()],
            live(net.map(|n| n.subnet_ids.get(key).cloned().into_iter().collect())),
        );
        Group {
            id: format!("in_{}", subnet_id(key)),
            kind: GroupKind::Subnet(key.role()),
            label: vec![format!("{kind} {}", spec.name)],
            nodes: std::iter::once(address).chain(residents).collect(),
            groups: Vec::new(),
        }
    };
    // Each NAT gateway in its public subnet: `nat`, then `nat_2`, ... with one per zone.
    let nat_node = |index: usize| numbered("nat", index);
    let nats: Vec<(&SubnetKey, Node)> = network
        .nat_gateways
        .iter()
        .enumerate()
        .map(|(index, spec)| {
            let deployed = net.and_then(|n| n.nat_gateways.get(index));
            let nat = node(
                &nat_node(index),
                Shape::Box,
                vec![format!("NAT gateway {}", spec.name)],
                live(deployed.map(|n| vec![n.id.clone(), format!("public IP {}", n.public_ip)])),
            );
            (&spec.subnet, nat)
        })
        .collect();
    // The NAT gateway an app subnet's table sends 0.0.0.0/0 to.
    let nat_of = |app: &SubnetKey| {
        let table = network.route_tables.values().find(|t| t.subnets.contains(app));
        let key = match table.and_then(|t| t.default_route.as_ref()) {
            Some(network::DefaultRoute::NatGateway(key)) => key,
            _ => return None,
        };
        network.nat_gateways.iter().position(|n| n.key == *key).map(nat_node)
    };
    // Each app instance in its subnet; the first is the node the security groups' edges
    // reach (the others sit behind the same group).
    let instance_node = |index: usize| numbered("instance", index);
    let instances: Vec<(&SubnetKey, Node)> = config
        .instance_subnets()
        .into_iter()
        .enumerate()
        .map(|(index, (subnet, _))| {
            let deployed = compute.and_then(|c| c.instances.get(&compute::instance_key(index)));
            let instance = node(
                &instance_node(index),
                Shape::Box,
                vec![format!("EC2 {}", config.compute.instance_type), "nginx in Docker".to_owned()],
                live(deployed.map(|i| vec![i.id.clone(), format!("private IP {}", i.private_ip)])),
            );
            (subnet, instance)
        })
        .collect();

    // A column per zone, in the config's order: public, private, isolated subnets, top down.
    let mut stacked = Vec::new();
    let zones = config
        .stack
        .availability_zones
        .iter()
        .map(|zone| {
            let keys: Vec<&SubnetKey> =
                network.subnets.iter().filter(|(_, s)| s.availability_zone == *zone).map(|(key, _)| key).collect();
            stacked.extend(keys.windows(2).map(|pair| (subnet_id(pair[0]), subnet_id(pair[1]))));
            let groups = keys
                .iter()
                .map(|&key| {
                    let mut residents: Vec<Node> =
                        nats.iter().filter(|(subnet, _)| *subnet == key).map(|(_, n)| n.clone()).collect();
                    residents.extend(instances.iter().filter(|(subnet, _)| *subnet == key).map(|(_, i)| i.clone()));
                    subnet(key, residents)
                })
                .collect();
            Group {
                id: format!("zone_{}", zone.replace('-', "_")),
                kind: GroupKind::Zone,
                label: vec![zone.clone()],
                nodes: Vec::new(),
                groups,
            }
        })
        .collect();

    let vpc = Group {
        id: "vpc".to_owned(),
        kind: GroupKind::Vpc,
        label: [
            vec![format!("VPC {}", network.vpc.name), network.vpc.cidr.to_string()],
            live(net.map(|n| vec![n.vpc_id.clone()])),
        ]
        .concat(),
        nodes: vec![
            node(
                "igw",
                Shape::Box,
                vec![format!("internet gateway {}", network.internet_gateway.name)],
                live(net.map(|n| vec![n.internet_gateway_id.clone()])),
            ),
            node(
                "alb",
                Shape::Box,
                vec![format!("ALB {}", names.account_unique(&config.alb.name)), format!("HTTP :{}", config.ports.http)],
                live(alb.map(|a| vec![a.dns_name.clone()])),
            ),
            node(
                "database",
                Shape::Cylinder,
                vec![
                    format!(
                        "RDS {} {} {}",
                        config.database.engine,
                        config.database.engine_version,
                        names.db_instance()
                    ),
                    format!(
                        "{}, {} GiB {}{}",
                        config.database.instance_class,
                        config.database.allocated_storage_gib,
                        config.database.storage_type,
                        if config.database.multi_az { ", Multi-AZ" } else { "" }
                    ),
                ],
                live(database.map(|d| {
                    let mut lines = vec![format!("{}:{}", d.endpoint_address, d.port)];
                    if let Some(standby) = &d.multi_az {
                        let zone = standby.zone.as_deref().unwrap_or("?");
                        lines.push(format!("primary {}, standby {zone}", d.zone.as_deref().unwrap_or("?")));
                    }
                    lines
                })),
            ),
        ],
        groups: zones,
    };
    let top = Group {
        id: "region".to_owned(),
        kind: GroupKind::Region,
        label: vec![format!("{} (stack {})", config.stack.region, names.stack())],
        nodes: vec![node("internet", Shape::Circle, vec!["internet".to_owned()], Vec::new())],
        groups: vec![vpc],
    };

    // What each security group lets in, as an edge from where the traffic comes.
    let group_node = |role: SecurityGroupRole| match role {
        SecurityGroupRole::Alb => "alb",
        SecurityGroupRole::App => "instance",
        SecurityGroupRole::Db => "database",
    };
    let edge = |from: &str, to: &str, label: Option<String>, line: Line| Edge {
        from: from.to_owned(),
        to: to.to_owned(),
        label,
        line,
    };
    let mut edges = vec![edge("internet", "igw", None, Line::Allowed)];
    for (&role, group) in &network.security_groups {
        // A group's rules all come from one place (the internet, or one other group): one
        // edge, labelled with every port.
        let Some(first) = group.ingress.first() else { continue };
        let from = match first.from {
            IngressFrom::Cidr(_) => "igw",
            IngressFrom::Group(source) => group_node(source),
        };
        let source = match first.from {
            IngressFrom::Cidr(cidr) => format!(" from {cidr}"),
            IngressFrom::Group(_) => String::new(),
        };
        let ports: Vec<String> = group.ingress.iter().map(|rule| rule.port.to_string()).collect();
        let id = net.map(|n| format!(" ({})", n.security_group(role))).unwrap_or_default();
        let label = format!("{}{id}: TCP {}{source}", group.name, ports.join(", "));
        edges.push(edge(from, group_node(role), Some(label), Line::Allowed));
    }
    for (index, (subnet, _)) in instances.iter().enumerate() {
        if let Some(nat) = nat_of(subnet) {
            edges.push(edge(&instance_node(index), &nat, Some("egress 0.0.0.0/0".to_owned()), Line::Egress));
        }
    }
    for index in 0..nats.len() {
        edges.push(edge(&nat_node(index), "igw", None, Line::Egress));
    }
    for (upper, lower) in stacked {
        edges.push(edge(&upper, &lower, None, Line::Layout));
    }
    let placed = network.subnets.keys().filter_map(|key| match key.role() {
        SubnetRole::Alb => Some(("alb", key)),
        SubnetRole::App => None,
        SubnetRole::Db => Some(("database", key)),
    });
    for (resource, key) in placed {
        edges.push(edge(resource, &subnet_id(key), None, Line::Placed));
    }

    let title = match deployed {
        Some(_) => format!("three-tier stack {}, as deployed", names.stack()),
        None => format!("three-tier stack {}, as the config plans it", names.stack()),
    };
    Diagram { title, top, edges }
}

impl Diagram {
    /// Mermaid flowchart text, e.g. for a Markdown file or a pull request.
    pub fn mermaid(&self) -> String {
        fn label(lines: &[String]) -> String {
            lines.iter().map(|line| line.replace('"', "#quot;")).collect::<Vec<_>>().join("<br/>")
        }
        fn draw(out: &mut String, group: &Group, depth: usize) {
            let pad = "  ".repeat(depth);
            let _ = writeln!(out, "{pad}subgraph {}[\"{}\"]", group.id, label(&group.label));
            for node in &group.nodes {
                let text = label(&node.label);
                let _ = match node.shape {
                    Shape::Box => writeln!(out, "{pad}  {}[\"{text}\"]", node.id),
                    Shape::Circle => writeln!(out, "{pad}  {}((\"{text}\"))", node.id),
                    Shape::Cylinder => writeln!(out, "{pad}  {}[(\"{text}\")]", node.id),
                    Shape::Text => writeln!(out, "{pad}  {}[\"{text}\"]", node.id),
                };
            }
            for inner in &group.groups {
                draw(out, inner, depth + 1);
            }
            let _ = writeln!(out, "{pad}end");
        }
        let mut out = format!("---\ntitle: {}\n---\nflowchart TB\n", self.title);
        draw(&mut out, &self.top, 1);
        let mut closed = Vec::new();
        for (index, edge) in self.edges.iter().enumerate() {
            if edge.line == Line::Closed {
                closed.push(index.to_string());
            }
            let arrow = match (edge.line, &edge.label) {
                (Line::Allowed, Some(text)) => format!("-->|\"{}\"|", label(std::slice::from_ref(text))),
                (Line::Allowed, None) => "-->".to_owned(),
                (Line::Egress, Some(text)) => format!("-.->|\"{}\"|", label(std::slice::from_ref(text))),
                (Line::Egress, None) => "-.->".to_owned(),
                (Line::Placed, _) => "-.-".to_owned(),
                (Line::Layout, _) => "~~~".to_owned(),
                (Line::Closed, Some(text)) => format!("--x|\"{}\"|", label(std::slice::from_ref(text))),
                (Line::Closed, None) => "--x".to_owned(),
            };
            let _ = writeln!(out, "  {} {arrow} {}", edge.from, edge.to);
        }
        if !closed.is_empty() {
            let _ = writeln!(out, "  linkStyle {} stroke:#d00,color:#d00", closed.join(","));
        }
        out
    }
}

/// The deployed stack drawn (see [`diagram`]), each closed path marked where it stops:
/// what AWS holds, read once.
pub async fn deployed(ctx: &AwsContext, config: &Config) -> Result<Diagram> {
    let observed = Observations::read(ctx, config, TIERS).await?;
    let mut drawing = diagram(config, Some(&observed.outputs(config)));
    if let Some(paths) = crate::reach::of_observed(ctx, config, &observed).await? {
        drawing.mark_closed(&paths);
    }
    Ok(drawing)
}

/// The node of the `index`th of a kind: `base` for the first, then `base_2`, ...
fn numbered(base: &str, index: usize) -> String {
    match index {
        0 => base.to_owned(),
        _ => format!("{base}_{}", index + 1),
    }
}

impl Diagram {
    /// Marks the stretch where each closed path first stops, labelled with that hop.
    pub fn mark_closed(&mut self, paths: &[Path]) {
        // The paths are the first instance's: its way out is through its subnet's gateway.
        let instance_nat = self
            .edges
            .iter()
            .find(|e| e.from == "instance" && e.line == Line::Egress)
            .map_or_else(|| "nat".to_owned(), |e| e.to.clone());
        for path in paths {
            let Some(hop) = path.first_closed() else { continue };
            let (from, to) = match hop.segment {
                Segment::InternetToAlb => ("igw", "alb"),
                Segment::AlbToInstance => ("alb", "instance"),
                Segment::InstanceToDatabase => ("instance", "database"),
                Segment::InstanceToNat => ("instance", instance_nat.as_str()),
                Segment::NatToInternet => (instance_nat.as_str(), "igw"),
            };
            if let Some(edge) = self.edges.iter_mut().find(|e| e.from == from && e.to == to) {
                edge.line = Line::Closed;
                edge.label = Some(format!("✗ closed at {}", hop.resource));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_alone_draws_every_resource_of_spec_with_its_names_and_addresses() {
        let config = Config::default_config();
        let drawing = diagram(&config, None);
        insta::assert_snapshot!("diagram_plan_mermaid", drawing.mermaid());
        insta::assert_snapshot!("diagram_plan_svg", drawing.svg());
    }

    #[test]
    fn the_svg_reads_as_the_seeds_picture_with_no_label_under_a_line() {
        let four_options = crate::tests::four_options();
        let mut long_names = four_options.clone();
        long_names.stack.name = "a-rather-long-stack-name-for-its-tags".to_owned();
        // The app subnet alone in a third zone: the ALB's and RDS's lines still reach it.
        let third_zone =
            Config::DEFAULT_TOML.replace("\"ap-northeast-1c\"]", "\"ap-northeast-1c\", \"ap-northeast-1d\"]").replace(
                "cidr = \"10.0.0.0/26\"\navailability_zone = \"ap-northeast-1a\"",
                "cidr = \"10.0.0.0/26\"\navailability_zone = \"ap-northeast-1d\"",
            );
        let third_zone = Config::parse(std::path::Path::new("test"), &third_zone).unwrap();
        third_zone.validate(std::path::Path::new("test")).unwrap();
        assert_eq!(third_zone.instance_subnets()[0].1.availability_zone, "ap-northeast-1d");
        for config in [Config::default_config(), four_options, long_names, third_zone] {
            let drawing = diagram(&config, None);
            assert_eq!(drawing.clutter(), Vec::<String>::new(), "{}", drawing.svg());
            let layout = drawing.layout();
            let frame = |id: &str| layout.frames.iter().find(|f| f.id == id).map(|f| f.rect).unwrap();
            // The zones left to right in the config's order.
            let zones: Vec<f64> = config
                .stack
                .availability_zones
                .iter()
                .map(|zone| frame(&format!("zone_{}", zone.replace('-', "_"))).x)
                .collect();
            assert!(zones.windows(2).all(|pair| pair[0] < pair[1]), "{zones:?}");
            // The subnets as rows: public above private above isolated, each row level.
            let rows = |role: SubnetRole| -> Vec<svg::Rect> {
                let subnets = layout.frames.iter().filter(|f| f.kind == svg::FrameKind::Group(GroupKind::Subnet(role)));
                subnets.map(|f| f.rect).collect()
            };
            let (public, private, isolated) = (rows(SubnetRole::Alb), rows(SubnetRole::App), rows(SubnetRole::Db));
            for row in [&public, &private, &isolated] {
                assert!(row.iter().all(|r| r.y == row[0].y), "{row:?}");
            }
            assert!(public[0].y + public[0].h < private[0].y && private[0].y + private[0].h < isolated[0].y);
            // Every line that leaves or reaches the ALB or RDS touches its box.
            for drawn in &layout.lines {
                for band in [frame("alb"), frame("database")] {
                    for (x, y) in [drawn.points[0], drawn.points[drawn.points.len() - 1]] {
                        let on_edge = (y == band.y || y == band.y + band.h) && x >= band.x && x <= band.x + band.w;
                        let near = (y - band.y).abs() < 1.0 || (y - band.y - band.h).abs() < 1.0;
                        assert!(!near || on_edge, "a line ends at ({x},{y}) beside {band:?}");
                    }
                }
            }
            // The ALB across the public row, RDS across the isolated one.
            for (band, row) in [(frame("alb"), &public), (frame("database"), &isolated)] {
                for subnet in row {
                    assert!(band.y > subnet.y && band.y + band.h < subnet.y + subnet.h, "{band:?} in {subnet:?}");
                    assert!(band.x < subnet.x + subnet.w && subnet.x < band.x + band.w, "{band:?} across {subnet:?}");
                }
            }
        }
    }

    #[test]
    fn a_closed_path_is_drawn_red_where_it_stops() {
        let config = Config::default_config();
        let mut snapshot = crate::reach::desired::desired(&config);
        let app = snapshot.security_groups.iter_mut().find(|g| g.name == "sg001").unwrap();
        app.ingress.clear();
        let paths = crate::reach::paths(&snapshot);
        let mut drawing = diagram(&config, None);
        drawing.mark_closed(&paths);
        let closed: Vec<(&str, &str, Option<&str>)> = drawing
            .edges
            .iter()
            .filter(|e| e.line == Line::Closed)
            .map(|e| (e.from.as_str(), e.to.as_str(), e.label.as_deref()))
            .collect();
        assert_eq!(closed, [("alb", "instance", Some("✗ closed at sg001"))]);
        let mermaid = drawing.mermaid();
        assert!(mermaid.contains("  alb --x|\"✗ closed at sg001\"| instance\n"), "{mermaid}");
        assert!(mermaid.contains("linkStyle ") && mermaid.contains("stroke:#d00"), "{mermaid}");
        let svg = drawing.svg();
        assert!(svg.contains("marker-end=\"url(#tee)\"") && svg.contains(">✗ closed at sg001</text>"), "{svg}");
        assert_eq!(drawing.clutter(), Vec::<String>::new());
        // Open paths mark nothing.
        let mut open = diagram(&config, None);
        open.mark_closed(&crate::reach::paths(&crate::reach::desired::desired(&config)));
        assert_eq!(open, diagram(&config, None));
    }
}
