//! The snapshot of the stack a deploy of the config builds, from the tiers' own desired
//! states: what plan checks before any change. Resources are named by their planned keys
//! (the names the plan shows); AWS's defaults stand where the stack sets nothing (a new
//! group's egress to anywhere, the VPC's default network ACL, the main route table).

use three_tier_core::{Config, Ref, SecurityGroupRole, SubnetKey};

use super::*;
use network::{DefaultRoute, IngressFrom};

/// The stack as a deploy of `config` leaves it.
pub fn desired(config: &Config) -> Snapshot {
    let network_refs = network::refs(config, &Default::default());
    let alb_refs = alb::refs(config, &Default::default());
    let net = network::desired(config);
    let balancer = alb::desired(config, &network_refs);
    let compute = compute::desired(config, &network_refs, &alb_refs);
    let database = database::desired(config, &network_refs);

    let subnet = |key: &SubnetKey| network_refs.subnets[key].to_string();
    let group = |role: SecurityGroupRole| network_refs.security_group(role).to_string();
    let target_group_key = |name: &str| Ref::planned(format!("target-group/{name}")).to_string();
    let internet_gateway = format!("(new {})", net.internet_gateway.name);
    let nat_gateway_id = |key: &str| {
        let spec = net.nat_gateways.iter().find(|n| n.key == key).expect("a table's NAT gateway is desired");
        format!("(new {})", spec.name)
    };
    let local = Route { destination: net.vpc.cidr, target: RouteTarget::Local, active: true };

    let mut route_tables = vec![RouteTable {
        id: "(the VPC's main table)".into(),
        name: "(the VPC's main table)".into(),
        main: true,
        subnets: Vec::new(),
        routes: vec![local.clone()],
    }];
    for spec in net.route_tables.values() {
        let mut routes = vec![local.clone()];
        routes.extend(spec.default_route.as_ref().map(|route| Route {
            destination: INTERNET,
            target: match route {
                DefaultRoute::InternetGateway => RouteTarget::InternetGateway(internet_gateway.clone()),
                DefaultRoute::NatGateway(key) => RouteTarget::NatGateway(nat_gateway_id(key)),
            },
            active: true,
        }));
        route_tables.push(RouteTable {
            id: format!("(new {})", spec.name),
            name: spec.name.clone(),
            main: false,
            subnets: spec.subnets.iter().map(subnet).collect(),
            routes,
        });
    }

    let security_groups = net
        .security_groups
        .iter()
        .map(|(&role, spec)| SecurityGroup {
            id: group(role),
            name: spec.name.clone(),
            ingress: spec
                .ingress
                .iter()
                .map(|rule| Permission {
                    protocol: "tcp".into(),
                    from_port: rule.port.into(),
                    to_port: rule.port.into(),
                    peer: match rule.from {
                        IngressFrom::Cidr(cidr) => Peer::Cidr(cidr),
                        IngressFrom::Group(from) => Peer::Group(group(from)),
                    },
                })
                .collect(),
            // What AWS gives a new group, and the stack leaves as it is.
            egress: vec![Permission { protocol: "-1".into(), from_port: -1, to_port: -1, peer: Peer::Cidr(INTERNET) }],
        })
        .collect();

    // The model holds one instance: the first. The others differ only in their subnet,
    // which their role's route table and ACLs treat alike.
    let first = &compute.instances[0];
    let instance_id = format!("(new {})", first.name);
    let target_groups = balancer
        .target_groups
        .iter()
        .map(|spec| {
            let key = target_group_key(&spec.name);
            TargetGroup {
                name: spec.name.clone(),
                port: spec.port,
                health_check_port: spec.port,
                targets: compute
                    .registrations
                    .iter()
                    .filter(|r| r.target_group.to_string() == key)
                    .map(|r| Target { id: instance_id.clone(), port: r.port, health: None })
                    .collect(),
                key,
            }
        })
        .collect();
    let listeners = balancer
        .listeners
        .iter()
        .map(|listener| Listener {
            port: listener.port,
            default_target_group: match &listener.default_action {
                alb::DefaultAction::Forward(group) => Some(target_group_key(group)),
                alb::DefaultAction::RedirectToHttps { .. } => None,
            },
            rules: balancer
                .rules
                .iter()
                .filter(|rule| rule.listener == listener.port)
                .map(|rule| ListenerRule {
                    priority: rule.priority,
                    path_pattern: rule.path_pattern.clone(),
                    target_group: Some(target_group_key(&rule.target_group)),
                })
                .collect(),
        })
        .collect();

    Snapshot {
        internet_gateways: vec![InternetGateway { id: internet_gateway, attached: true }],
        nat_gateways: net
            .nat_gateways
            .iter()
            .map(|spec| NatGateway {
                id: nat_gateway_id(&spec.key),
                state: "available".into(),
                subnet: subnet(&spec.subnet),
                public_ip: Some(format!("(new {})", spec.address.name)),
            })
            .collect(),
        subnets: net
            .subnets
            .iter()
            .map(|(key, spec)| Subnet { id: subnet(key), name: spec.name.clone(), cidr: spec.cidr })
            .collect(),
        route_tables,
        network_acls: vec![default_acl()],
        security_groups,
        load_balancer: Some(LoadBalancer {
            name: balancer.load_balancer.name.clone(),
            subnets: balancer.load_balancer.subnets.iter().map(Ref::to_string).collect(),
            security_groups: balancer.load_balancer.security_groups.iter().map(Ref::to_string).collect(),
            listeners,
        }),
        target_groups,
        instance: Some(Instance {
            id: instance_id,
            subnet: first.subnet.to_string(),
            security_groups: vec![first.security_group.to_string()],
            published: compute::user_data::published(&first.user_data),
        }),
        database: Some(Database {
            id: database.instance.identifier.clone(),
            subnets: database.subnet_group.subnets.iter().map(Ref::to_string).collect(),
            security_groups: vec![database.instance.security_group.to_string()],
            port: database.instance.port,
        }),
    }
}

/// The network ACL AWS gives a new VPC, which every subnet the stack makes uses: all
/// traffic allowed both ways.
fn default_acl() -> NetworkAcl {
    let entry =
        |number, egress, allow| AclEntry { number, egress, protocol: "-1".into(), ports: None, cidr: INTERNET, allow };
    NetworkAcl {
        id: "(the VPC's default ACL)".into(),
        default: true,
        subnets: Vec::new(),
        entries: vec![
            entry(100, false, true),
            entry(32767, false, false),
            entry(100, true, true),
            entry(32767, true, false),
        ],
    }
}
