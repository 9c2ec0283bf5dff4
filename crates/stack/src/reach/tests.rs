//! The analysis on hand-built snapshots: the seed's network, open, then each hop closed
//! in turn, as AWS would close it.

use super::*;

fn net(cidr: &str) -> Ipv4Net {
    cidr.parse().unwrap()
}

fn tcp(port: i32, peer: Peer) -> Permission {
    Permission { protocol: "tcp".into(), from_port: port, to_port: port, peer }
}

fn all_traffic_out() -> Vec<Permission> {
    vec![Permission { protocol: "-1".into(), from_port: -1, to_port: -1, peer: Peer::Cidr(net("0.0.0.0/0")) }]
}

fn route(destination: &str, target: RouteTarget) -> Route {
    Route { destination: net(destination), target, active: true }
}

fn table(id: &str, subnets: &[&str], default: Option<RouteTarget>) -> RouteTable {
    let mut routes = vec![route("10.0.0.0/16", RouteTarget::Local)];
    routes.extend(default.map(|target| route("0.0.0.0/0", target)));
    RouteTable {
        id: id.into(),
        name: id.into(),
        main: false,
        subnets: subnets.iter().map(|s| s.to_string()).collect(),
        routes,
    }
}

fn entry(number: i32, egress: bool, ports: Option<(u16, u16)>, cidr: &str, allow: bool) -> AclEntry {
    AclEntry {
        number,
        egress,
        protocol: if ports.is_some() { "6" } else { "-1" }.into(),
        ports,
        cidr: net(cidr),
        allow,
    }
}

/// The VPC's default ACL as AWS creates it: everything allowed both ways.
fn default_acl() -> NetworkAcl {
    NetworkAcl {
        id: "acl-default".into(),
        default: true,
        subnets: Vec::new(),
        entries: vec![
            entry(100, false, None, "0.0.0.0/0", true),
            entry(32767, false, None, "0.0.0.0/0", false),
            entry(100, true, None, "0.0.0.0/0", true),
            entry(32767, true, None, "0.0.0.0/0", false),
        ],
    }
}

fn subnet(id: &str, cidr: &str) -> Subnet {
    Subnet { id: id.into(), name: id.into(), cidr: net(cidr) }
}

/// The seed's stack, every path open.
fn seed() -> Snapshot {
    Snapshot {
        internet_gateways: vec![InternetGateway { id: "igw-1".into(), attached: true }],
        nat_gateways: vec![NatGateway {
            id: "nat-1".into(),
            state: "available".into(),
            subnet: "subnet-alb-a".into(),
            public_ip: Some("203.0.113.10".into()),
        }],
        subnets: vec![
            subnet("subnet-alb-a", "10.0.1.0/24"),
            subnet("subnet-alb-b", "10.0.2.0/24"),
            subnet("subnet-app", "10.0.3.0/24"),
            subnet("subnet-db-a", "10.0.5.0/24"),
            subnet("subnet-db-b", "10.0.6.0/24"),
        ],
        route_tables: vec![
            RouteTable { main: true, ..table("rtb-main", &[], None) },
            table("rtb-public", &["subnet-alb-a", "subnet-alb-b"], Some(RouteTarget::InternetGateway("igw-1".into()))),
            table("rtb-app", &["subnet-app"], Some(RouteTarget::NatGateway("nat-1".into()))),
            table("rtb-db", &["subnet-db-a", "subnet-db-b"], None),
        ],
        network_acls: vec![default_acl()],
        security_groups: vec![
            SecurityGroup {
                id: "sg-alb".into(),
                name: "alb-sg001".into(),
                ingress: vec![tcp(80, Peer::Cidr(net("0.0.0.0/0")))],
                egress: all_traffic_out(),
            },
            SecurityGroup {
                id: "sg-app".into(),
                name: "sg001".into(),
                ingress: vec![tcp(3030, Peer::Group("sg-alb".into()))],
                egress: all_traffic_out(),
            },
            SecurityGroup {
                id: "sg-db".into(),
                name: "db-sg001".into(),
                ingress: vec![tcp(3306, Peer::Group("sg-app".into()))],
                egress: all_traffic_out(),
            },
        ],
        load_balancer: Some(LoadBalancer {
            name: "sample-alb".into(),
            subnets: vec!["subnet-alb-a".into(), "subnet-alb-b".into()],
            security_groups: vec!["sg-alb".into()],
            listeners: vec![Listener { port: 80, default_target_group: Some("tg-app".into()), rules: Vec::new() }],
        }),
        target_groups: vec![TargetGroup {
            key: "tg-app".into(),
            name: "app-target-group".into(),
            port: 3030,
            health_check_port: 3030,
            targets: vec![Target { id: "i-1".into(), port: 3030, health: Some("healthy".into()) }],
        }],
        instance: Some(Instance {
            id: "i-1".into(),
            subnet: "subnet-app".into(),
            security_groups: vec!["sg-app".into()],
            published: vec![(3030, 80)],
        }),
        database: Some(Database {
            id: "three-tier-db".into(),
            subnets: vec!["subnet-db-a".into(), "subnet-db-b".into()],
            security_groups: vec!["sg-db".into()],
            port: 3306,
        }),
    }
}

fn path<'p>(paths: &'p [Path], name: &str) -> &'p Path {
    paths.iter().find(|p| p.name == name).unwrap()
}

/// The paths that are closed, each with its first closed hop.
fn closed_hops(snapshot: &Snapshot) -> Vec<(&'static str, Hop)> {
    paths(snapshot).into_iter().filter_map(|p| Some((p.name, p.first_closed()?.clone()))).collect()
}

/// Exactly `name` is closed, at a hop whose resource and detail hold `resource` and `detail`.
#[track_caller]
fn assert_closed(snapshot: &Snapshot, name: &str, resource: &str, detail: &str) {
    let closed = closed_hops(snapshot);
    assert_eq!(closed.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [name], "{closed:#?}");
    let hop = &closed[0].1;
    assert!(hop.resource.contains(resource), "{hop:#?}");
    assert!(hop.detail.contains(detail), "{hop:#?}");
    assert!(hop.repair.is_some(), "a closed hop says what repairs it: {hop:#?}");
}

fn group<'s>(snapshot: &'s mut Snapshot, name: &str) -> &'s mut SecurityGroup {
    snapshot.security_groups.iter_mut().find(|g| g.name == name).unwrap()
}

fn route_table<'s>(snapshot: &'s mut Snapshot, id: &str) -> &'s mut RouteTable {
    snapshot.route_tables.iter_mut().find(|t| t.id == id).unwrap()
}

#[test]
fn the_seeds_network_opens_all_three_paths() {
    let paths = paths(&seed());
    for p in &paths {
        assert!(p.open(), "{}", p.render());
    }
    let web = path(&paths, INTERNET_TO_NGINX).render();
    assert!(web.contains("alb-sg001 (sg-alb)") && web.contains("allows tcp 80 from 0.0.0.0/0"), "{web}");
    assert!(web.contains("sg001 (sg-app)") && web.contains("allows tcp 3030 from alb-sg001"), "{web}");
    assert!(web.contains("publishes 3030 to nginx's port 80"), "{web}");
    let database = path(&paths, NGINX_TO_MYSQL).render();
    assert!(database.contains("db-sg001 (sg-db)") && database.contains("allows tcp 3306 from sg001"), "{database}");
    let out = path(&paths, INSTANCE_TO_INTERNET).render();
    assert!(out.contains("0.0.0.0/0 → nat-1 in rtb-app") && out.contains("public address 203.0.113.10"), "{out}");
}

#[test]
fn no_rule_into_the_instance_closes_the_web_path_there() {
    let mut snapshot = seed();
    group(&mut snapshot, "sg001").ingress.clear();
    assert_closed(&snapshot, INTERNET_TO_NGINX, "sg001 (sg-app)", "lets tcp 3030 in from the ALB");
}

#[test]
fn a_rule_on_the_wrong_port_is_no_rule() {
    let mut snapshot = seed();
    group(&mut snapshot, "sg001").ingress = vec![tcp(8080, Peer::Group("sg-alb".into()))];
    assert_closed(&snapshot, INTERNET_TO_NGINX, "sg001", "tcp 3030");
    let mut snapshot = seed();
    group(&mut snapshot, "db-sg001").ingress = vec![tcp(3307, Peer::Group("sg-app".into()))];
    assert_closed(&snapshot, NGINX_TO_MYSQL, "db-sg001", "tcp 3306");
}

#[test]
fn a_group_source_admits_its_members_and_no_one_else() {
    // From db-sg001 instead of alb-sg001: the ALB is not a member.
    let mut snapshot = seed();
    group(&mut snapshot, "sg001").ingress = vec![tcp(3030, Peer::Group("sg-db".into()))];
    assert_closed(&snapshot, INTERNET_TO_NGINX, "sg001", "from the ALB");
    // A CIDR where a group is wanted: the app subnet's block does not hold the ALB's.
    let mut snapshot = seed();
    group(&mut snapshot, "sg001").ingress = vec![tcp(3030, Peer::Cidr(net("10.0.3.0/24")))];
    assert_closed(&snapshot, INTERNET_TO_NGINX, "sg001", "10.0.1.0/24");
}

#[test]
fn a_wider_rule_or_a_block_holding_the_senders_subnets_opens_as_on_aws() {
    let mut snapshot = seed();
    group(&mut snapshot, "sg001").ingress = vec![Permission {
        protocol: "tcp".into(),
        from_port: 3000,
        to_port: 3100,
        peer: Peer::Cidr(net("10.0.0.0/20")),
    }];
    group(&mut snapshot, "db-sg001").ingress =
        vec![Permission { protocol: "-1".into(), from_port: -1, to_port: -1, peer: Peer::Cidr(net("10.0.3.0/24")) }];
    assert_eq!(closed_hops(&snapshot), []);
    // One ALB subnet inside the block is not enough: the other's nodes are shut out.
    group(&mut snapshot, "sg001").ingress = vec![tcp(3030, Peer::Cidr(net("10.0.1.0/24")))];
    assert_closed(&snapshot, INTERNET_TO_NGINX, "sg001", "10.0.2.0/24");
}

#[test]
fn egress_is_checked_on_the_sending_side() {
    let mut snapshot = seed();
    group(&mut snapshot, "sg001").egress =
        vec![tcp(443, Peer::Cidr(net("0.0.0.0/0"))), tcp(80, Peer::Cidr(net("0.0.0.0/0")))];
    assert_closed(&snapshot, NGINX_TO_MYSQL, "sg001", "lets tcp 3306 out to the DB instance");
    let mut snapshot = seed();
    group(&mut snapshot, "alb-sg001").egress.clear();
    assert_closed(&snapshot, INTERNET_TO_NGINX, "alb-sg001", "out to the instance");
    let mut snapshot = seed();
    group(&mut snapshot, "sg001").egress =
        vec![tcp(3306, Peer::Group("sg-db".into())), tcp(80, Peer::Cidr(net("0.0.0.0/0")))];
    assert_closed(&snapshot, INSTANCE_TO_INTERNET, "sg001", "tcp 443 out to the internet");
}

#[test]
fn the_internet_gateway_and_the_public_route_open_the_web_path() {
    let mut snapshot = seed();
    snapshot.internet_gateways[0].attached = false;
    let closed = closed_hops(&snapshot);
    assert_eq!(closed.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [INTERNET_TO_NGINX, INSTANCE_TO_INTERNET]);
    assert!(closed[0].1.detail.contains("no internet gateway is attached"), "{closed:#?}");

    let mut snapshot = seed();
    route_table(&mut snapshot, "rtb-public").routes.retain(|r| r.target == RouteTarget::Local);
    let closed = closed_hops(&snapshot);
    assert_eq!(closed.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [INTERNET_TO_NGINX, INSTANCE_TO_INTERNET]);
    assert!(
        closed[0].1.resource.contains("subnet-alb-a route") && closed[0].1.detail.contains("no route for 0.0.0.0/0")
    );
}

#[test]
fn a_route_missing_or_to_a_deleted_nat_gateway_closes_the_way_out() {
    let mut snapshot = seed();
    route_table(&mut snapshot, "rtb-app").routes.retain(|r| r.target == RouteTarget::Local);
    assert_closed(&snapshot, INSTANCE_TO_INTERNET, "subnet-app route", "no route for 0.0.0.0/0");

    let mut snapshot = seed();
    snapshot.nat_gateways[0].state = "deleted".into();
    assert_closed(&snapshot, INSTANCE_TO_INTERNET, "subnet-app route", "that NAT gateway is deleted");

    let mut snapshot = seed();
    snapshot.nat_gateways[0].public_ip = None;
    assert_closed(&snapshot, INSTANCE_TO_INTERNET, "NAT gateway nat-1", "holds no Elastic IP");

    // Out through the internet gateway: a private instance has no public address.
    let mut snapshot = seed();
    route_table(&mut snapshot, "rtb-app").routes[1].target = RouteTarget::InternetGateway("igw-1".into());
    assert_closed(&snapshot, INSTANCE_TO_INTERNET, "subnet-app route", "not to a NAT gateway");
}

#[test]
fn the_longest_prefix_decides_the_route() {
    // A more specific route sends the ALB subnets' traffic for the app subnet elsewhere.
    let mut snapshot = seed();
    route_table(&mut snapshot, "rtb-public").routes.push(route("10.0.3.0/24", RouteTarget::Other("eni-1".into())));
    let closed = closed_hops(&snapshot);
    // The NAT gateway's replies to the instance leave from an ALB subnet too.
    assert_eq!(closed.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [INTERNET_TO_NGINX, INSTANCE_TO_INTERNET]);
    for (_, hop) in closed {
        assert_eq!(hop.resource, "subnet-alb-a route");
        assert_eq!(hop.detail, "10.0.3.0/24 goes to eni-1 (10.0.3.0/24 in rtb-public), not within the VPC");
    }
}

#[test]
fn a_network_acl_is_stateless_and_first_match_wins() {
    // A deny numbered before the allow, on the app subnet's own ACL.
    let mut snapshot = seed();
    let mut acl = default_acl();
    acl.id = "acl-app".into();
    acl.default = false;
    acl.subnets = vec!["subnet-app".into()];
    acl.entries.push(entry(50, false, Some((3030, 3030)), "10.0.2.0/24", false));
    snapshot.network_acls.push(acl.clone());
    assert_closed(
        &snapshot,
        INTERNET_TO_NGINX,
        "subnet-app ACL acl-app",
        "entry 50 denies ingress from 10.0.2.0/24 on port 3030",
    );

    // Replies: an ACL letting requests in but no ephemeral ports out closes the path.
    let mut snapshot = seed();
    let mut acl = acl.clone();
    acl.entries = vec![
        entry(100, false, None, "0.0.0.0/0", true),
        entry(100, true, Some((443, 443)), "0.0.0.0/0", true),
        entry(110, true, Some((80, 80)), "0.0.0.0/0", true),
    ];
    snapshot.network_acls.push(acl);
    let closed = closed_hops(&snapshot);
    let web = closed.iter().find(|(n, _)| *n == INTERNET_TO_NGINX).unwrap();
    assert!(web.1.detail.contains("egress to 10.0.1.0/24 on port 1024"), "{web:#?}");
    assert!(web.1.detail.contains("the final * entry denies it"), "{web:#?}");
}

#[test]
fn the_compose_file_must_publish_the_target_groups_port_to_nginx() {
    let mut snapshot = seed();
    snapshot.instance.as_mut().unwrap().published = vec![(8081, 80)];
    assert_closed(&snapshot, INTERNET_TO_NGINX, "i-1 compose file", "publishes 8081:80 but not port 3030");
    let mut snapshot = seed();
    snapshot.instance.as_mut().unwrap().published = vec![(3030, 8080)];
    assert_closed(&snapshot, INTERNET_TO_NGINX, "i-1 compose file", "container port 8080");
}

#[test]
fn a_listener_or_rule_needs_a_target_group_holding_the_instance() {
    let mut snapshot = seed();
    snapshot.target_groups[0].targets.clear();
    assert_closed(&snapshot, INTERNET_TO_NGINX, "target group app-target-group", "i-1 is not registered");

    let mut snapshot = seed();
    snapshot.load_balancer.as_mut().unwrap().listeners[0].rules.push(ListenerRule {
        priority: 10,
        path_pattern: "/api/*".into(),
        target_group: Some("tg-api".into()),
    });
    snapshot.target_groups.push(TargetGroup {
        key: "tg-api".into(),
        name: "api-target-group".into(),
        port: 8080,
        health_check_port: 8080,
        targets: vec![Target { id: "i-1".into(), port: 8080, health: None }],
    });
    // The rule's port: the instance's group does not let it in.
    assert_closed(&snapshot, INTERNET_TO_NGINX, "sg001", "tcp 8080");
    group(&mut snapshot, "sg001").ingress.push(tcp(8080, Peer::Group("sg-alb".into())));
    assert_closed(&snapshot, INTERNET_TO_NGINX, "compose file", "not port 8080");
    snapshot.instance.as_mut().unwrap().published.push((8080, 80));
    assert_eq!(closed_hops(&snapshot), []);

    let mut snapshot = seed();
    snapshot.load_balancer.as_mut().unwrap().listeners.clear();
    assert_closed(&snapshot, INTERNET_TO_NGINX, "sample-alb", "no listener");
}

#[test]
fn a_health_check_port_of_its_own_must_be_open_too() {
    let mut snapshot = seed();
    snapshot.target_groups[0].health_check_port = 8081;
    assert_closed(&snapshot, INTERNET_TO_NGINX, "sg001", "tcp 8081");
}

#[test]
fn other_ports_open_the_same_paths() {
    let mut snapshot = seed();
    snapshot.load_balancer.as_mut().unwrap().listeners[0].port = 8080;
    group(&mut snapshot, "alb-sg001").ingress = vec![tcp(8080, Peer::Cidr(net("0.0.0.0/0")))];
    snapshot.target_groups[0].port = 8081;
    snapshot.target_groups[0].health_check_port = 8081;
    snapshot.target_groups[0].targets[0].port = 8081;
    group(&mut snapshot, "sg001").ingress = vec![tcp(8081, Peer::Group("sg-alb".into()))];
    snapshot.instance.as_mut().unwrap().published = vec![(8081, 80)];
    snapshot.database.as_mut().unwrap().port = 3307;
    group(&mut snapshot, "db-sg001").ingress = vec![tcp(3307, Peer::Group("sg-app".into()))];
    assert_eq!(closed_hops(&snapshot), []);
    // The listener's port, not 80, is what the ALB's group must let in.
    group(&mut snapshot, "alb-sg001").ingress = vec![tcp(80, Peer::Cidr(net("0.0.0.0/0")))];
    assert_closed(&snapshot, INTERNET_TO_NGINX, "alb-sg001", "tcp 8080 in from the internet");
}

#[test]
fn each_hop_says_which_stretch_of_its_path_it_is_on() {
    let segments = |snapshot: &Snapshot| -> Vec<(&'static str, Segment)> {
        closed_hops(snapshot).into_iter().map(|(name, hop)| (name, hop.segment)).collect()
    };
    let mut snapshot = seed();
    group(&mut snapshot, "alb-sg001").ingress.clear();
    assert_eq!(segments(&snapshot), [(INTERNET_TO_NGINX, Segment::InternetToAlb)]);
    let mut snapshot = seed();
    group(&mut snapshot, "sg001").ingress.clear();
    assert_eq!(segments(&snapshot), [(INTERNET_TO_NGINX, Segment::AlbToInstance)]);
    let mut snapshot = seed();
    group(&mut snapshot, "db-sg001").ingress.clear();
    assert_eq!(segments(&snapshot), [(NGINX_TO_MYSQL, Segment::InstanceToDatabase)]);
    let mut snapshot = seed();
    route_table(&mut snapshot, "rtb-app").routes.retain(|r| r.target == RouteTarget::Local);
    assert_eq!(segments(&snapshot), [(INSTANCE_TO_INTERNET, Segment::InstanceToNat)]);
    // The NAT gateway's subnet without its way to the internet gateway: beyond the NAT
    // gateway for the way out, and at the ALB's subnet for the way in.
    let mut snapshot = seed();
    route_table(&mut snapshot, "rtb-public").routes.retain(|r| r.target == RouteTarget::Local);
    assert_eq!(
        segments(&snapshot),
        [(INTERNET_TO_NGINX, Segment::InternetToAlb), (INSTANCE_TO_INTERNET, Segment::NatToInternet)]
    );
}
