//! The pure half of the tier: plans from hand-built observed states.

use aws_sdk_ec2::types::NatGatewayState;
use three_tier_core::{
    Change, Config, Graph, NatGateways, Ref, RouteTableKey, RouteTableRole, SecurityGroupRole, Step, SubnetKey, Tier,
};

use crate::desired::{DefaultRoute, Desired, IngressFrom, desired};
use crate::observe::*;
use crate::plan::{NetworkStep, RouteTarget, plan, teardown_plan};
use crate::rules::{IngressRule, Source};

fn default_desired() -> Desired {
    desired(&Config::default_config())
}

/// The observed state of a complete, correct deploy of `desired`, with readable ids.
fn deployed(desired: &Desired) -> Observed {
    let tags = |t: &three_tier_core::naming::Tags| t.pairs.clone();
    let subnet_id = |key: &SubnetKey| format!("subnet-{key}");
    let group_id = |role: SecurityGroupRole| format!("sg-{role}");
    let mut route_tables = vec![ObservedRouteTable {
        id: "rtb-main".into(),
        key: None,
        routes: vec![local_route()],
        associations: vec![ObservedAssociation { id: "rtbassoc-main".into(), subnet_id: None }],
        tags: Default::default(),
    }];
    for (key, spec) in &desired.route_tables {
        let mut routes = vec![local_route()];
        match &spec.default_route {
            Some(DefaultRoute::InternetGateway) => routes.push(default_route(Some("igw-1"), None)),
            Some(DefaultRoute::NatGateway(nat)) => routes.push(default_route(None, Some(&nat_id(nat)))),
            None => {}
        }
        route_tables.push(ObservedRouteTable {
            id: format!("rtb-{key}"),
            key: Some(key.clone()),
            routes,
            associations: spec
                .subnets
                .iter()
                .map(|s| ObservedAssociation { id: format!("rtbassoc-{s}"), subnet_id: Some(subnet_id(s)) })
                .collect(),
            tags: tags(&spec.tags),
        });
    }
    Observed {
        vpcs: vec![ObservedVpc {
            id: "vpc-1".into(),
            cidr: desired.vpc.cidr,
            dns_support: true,
            dns_hostnames: true,
            tags: tags(&desired.vpc.tags),
        }],
        internet_gateways: vec![ObservedInternetGateway {
            id: "igw-1".into(),
            attached_vpcs: vec!["vpc-1".into()],
            tags: tags(&desired.internet_gateway.tags),
        }],
        subnets: desired
            .subnets
            .iter()
            .map(|(key, spec)| Tagged {
                role: key.clone(),
                resource: ObservedSubnet {
                    id: subnet_id(key),
                    cidr: spec.cidr,
                    availability_zone: spec.availability_zone.clone(),
                    vpc_id: "vpc-1".into(),
                    tags: tags(&spec.tags),
                },
            })
            .collect(),
        nat_addresses: desired
            .nat_gateways
            .iter()
            .map(|nat| ObservedAddress {
                role: Some(nat.address.key.clone()),
                allocation_id: address_id(&nat.key),
                public_ip: "203.0.113.10".into(),
                association_id: Some("eipassoc-1".into()),
                tags: tags(&nat.address.tags),
            })
            .collect(),
        nat_gateways: desired
            .nat_gateways
            .iter()
            .map(|nat| ObservedNatGateway {
                role: Some(nat.key.clone()),
                id: nat_id(&nat.key),
                state: NatGatewayState::Available,
                subnet_id: subnet_id(&nat.subnet),
                allocation_ids: vec![address_id(&nat.key)],
                tags: tags(&nat.tags),
            })
            .collect(),
        security_groups: desired
            .security_groups
            .iter()
            .map(|(&role, spec)| {
                let rule = |ingress: &crate::desired::IngressSpec| {
                    let source = match &ingress.from {
                        IngressFrom::Cidr(cidr) => Source::Cidr(cidr.to_string()),
                        IngressFrom::Group(from) => Source::Group(Ref::existing(group_id(*from))),
                    };
                    IngressRule::tcp(ingress.port, source)
                };
                Tagged {
                    role,
                    resource: ObservedSecurityGroup {
                        id: group_id(role),
                        name: spec.name.clone(),
                        vpc_id: "vpc-1".into(),
                        ingress: spec.ingress.iter().map(rule).collect(),
                        tags: tags(&spec.tags),
                    },
                }
            })
            .collect(),
        route_tables,
    }
}

/// `nat-1` for the first NAT gateway, `nat-ZONE` for a zone's own.
fn nat_id(key: &str) -> String {
    key.strip_prefix("nat-gateway/").map_or("nat-1".into(), |zone| format!("nat-{zone}"))
}

fn address_id(nat_key: &str) -> String {
    nat_id(nat_key).replace("nat-", "eipalloc-")
}

fn local_route() -> ObservedRoute {
    ObservedRoute { destination: "10.0.0.0/16".into(), gateway_id: Some("local".into()), nat_gateway_id: None }
}

fn default_route(gateway: Option<&str>, nat: Option<&str>) -> ObservedRoute {
    ObservedRoute {
        destination: "0.0.0.0/0".into(),
        gateway_id: gateway.map(Into::into),
        nat_gateway_id: nat.map(Into::into),
    }
}

fn position(plan: &three_tier_core::Plan<NetworkStep>, matches: impl Fn(&NetworkStep) -> bool) -> usize {
    plan.steps.iter().position(matches).expect("step in plan")
}

#[test]
fn fresh_plan_builds_the_whole_spec() {
    let plan = plan(&default_desired(), &Observed::default());
    assert!(plan.conflicts.is_empty());
    insta::assert_yaml_snapshot!("network_fresh_plan", plan);
    insta::assert_snapshot!("network_fresh_plan_text", plan.render());
}

#[test]
fn the_nat_gateway_starts_early_and_only_its_route_waits_for_it() {
    let plan = plan(&default_desired(), &Observed::default());
    let graph = Graph::build(plan.steps.iter().map(|s| (Tier::Network, s.clone()))).unwrap();
    let node = |matches: fn(&NetworkStep) -> bool| graph.find(matches).expect("step in plan");
    let is = |index: usize, matches: fn(&NetworkStep) -> bool| matches(&graph.nodes[index].step);
    // The NAT gateway needs its subnet, its address and the attached internet gateway:
    // no rule, table or association.
    let create_nat = node(|s| matches!(s, NetworkStep::CreateNatGateway { .. }));
    let before_nat = graph.ancestors(create_nat);
    assert!(before_nat.iter().any(|&i| is(i, |s| matches!(s, NetworkStep::AttachInternetGateway { .. }))));
    assert!(before_nat.iter().any(|&i| is(i, |s| matches!(s, NetworkStep::AllocateAddress { .. }))));
    assert!(
        !before_nat.iter().any(|&i| is(i, |s| matches!(
            s,
            NetworkStep::AuthorizeIngress { .. } | NetworkStep::CreateRouteTable { .. }
        )))
    );
    // Only the route through it waits for it to be available.
    let wait = node(|s| matches!(s, NetworkStep::WaitNatGatewayAvailable { .. }));
    let after_wait: Vec<usize> = (0..graph.nodes.len()).filter(|&i| graph.ancestors(i).contains(&wait)).collect();
    assert_eq!(after_wait.len(), 1);
    assert!(is(after_wait[0], |s| matches!(s, NetworkStep::CreateRoute { target: RouteTarget::NatGateway(_), .. })));
}

#[test]
fn teardown_frees_what_each_delete_needs_free() {
    let desired = default_desired();
    let teardown = teardown_plan(&deployed(&desired));
    let graph = Graph::build(teardown.steps.iter().map(|s| (Tier::Network, s.clone()))).unwrap();
    let node = |matches: fn(&NetworkStep) -> bool| graph.find(matches).expect("step in plan");
    let release = node(|s| matches!(s, NetworkStep::ReleaseAddress { .. }));
    let nat_deleted = node(|s| matches!(s, NetworkStep::WaitNatGatewayDeleted { .. }));
    let detach = node(|s| matches!(s, NetworkStep::DetachInternetGateway { .. }));
    let vpc = node(|s| matches!(s, NetworkStep::DeleteVpc { .. }));
    assert!(graph.ancestors(release).contains(&nat_deleted), "an address is released once its NAT gateway is deleted");
    assert!(graph.ancestors(detach).contains(&release), "no public address may be mapped when the gateway is detached");
    for (index, node) in graph.nodes.iter().enumerate() {
        if matches!(node.step, NetworkStep::DeleteSecurityGroup { .. }) {
            let revokes = graph
                .ancestors(index)
                .iter()
                .filter(|&&i| matches!(graph.nodes[i].step, NetworkStep::RevokeIngress { .. }))
                .count();
            assert_eq!(
                revokes,
                teardown.steps.iter().filter(|s| matches!(s, NetworkStep::RevokeIngress { .. })).count()
            );
        }
        if matches!(node.step, NetworkStep::DeleteSubnet { .. }) {
            assert!(graph.ancestors(index).contains(&nat_deleted), "a subnet goes once the NAT gateway in it is gone");
        }
    }
    assert_eq!(graph.ancestors(vpc).len(), graph.nodes.len() - 1, "the VPC goes last");
}

#[test]
fn the_teardown_prediction_counts_the_refusals_it_waits_out() {
    let teardown = teardown_plan(&deployed(&default_desired()));
    let graph = Graph::build(teardown.steps.iter().map(|s| (Tier::Network, s.clone()))).unwrap();
    let aws = three_tier_core::Durations::aws();
    let prediction = graph.predict(&aws);
    // The address is refused (AuthFailure) for a while after its NAT gateway is deleted:
    // the chain runs through that wait, not only through the gateway's deletion.
    let pole: Vec<&str> = prediction.long_pole.iter().map(|s| s.label.as_str()).collect();
    assert!(pole.iter().any(|label| label.starts_with("Elastic IP")), "{pole:?}");
    let waits = aws.get("nat_gateway_deleted") + aws.get("address_release_delay");
    assert!(prediction.seconds > waits && prediction.seconds < waits + 5.0, "{prediction:?}");
}

#[test]
fn a_complete_deploy_plans_nothing() {
    let desired = default_desired();
    let plan = plan(&desired, &deployed(&desired));
    assert_eq!(plan.steps, vec![]);
    assert!(plan.conflicts.is_empty());
    assert!(plan.render().contains("up to date"));
}

#[test]
fn a_pending_nat_gateway_is_waited_for_not_recreated() {
    let desired = default_desired();
    let mut observed = deployed(&desired);
    observed.nat_gateways[0].state = NatGatewayState::Pending;
    let plan = plan(&desired, &observed);
    assert_eq!(
        plan.steps,
        vec![NetworkStep::WaitNatGatewayAvailable { name: "nat-gateway".into(), nat_gateway: Ref::existing("nat-1") }]
    );
}

#[test]
fn an_interrupted_deploy_creates_only_what_is_missing() {
    let desired = default_desired();
    let full = deployed(&desired);
    let observed = Observed {
        vpcs: full.vpcs.clone(),
        subnets: full.subnets[..2].to_vec(),
        route_tables: full.route_tables[..1].to_vec(),
        ..Observed::default()
    };
    let plan = plan(&desired, &observed);
    let creates: Vec<String> = plan.steps.iter().filter(|s| s.change() == Change::Create).map(Step::describe).collect();
    assert!(!creates.iter().any(|c| c.starts_with("VPC")), "{creates:?}");
    assert!(!creates.iter().any(|c| c.contains("alb-subnet ")), "{creates:?}");
    assert_eq!(creates.iter().filter(|c| c.starts_with("subnet")).count(), 3, "{creates:?}");
    assert!(plan.steps.iter().any(|s| matches!(s,
        NetworkStep::CreateSubnet { vpc: Ref::Existing(id), .. } if id == "vpc-1")));
}

#[test]
fn drift_is_repaired_in_place() {
    let desired = default_desired();
    let mut observed = deployed(&desired);
    observed.vpcs[0].dns_hostnames = false;
    let app_group =
        &mut observed.security_groups.iter_mut().find(|g| g.role == SecurityGroupRole::App).unwrap().resource;
    app_group.ingress = vec![IngressRule::tcp(22, Source::Cidr("0.0.0.0/0".into()))];
    let app_table =
        observed.route_tables.iter_mut().find(|t| t.key == Some(RouteTableKey::of(RouteTableRole::App))).unwrap();
    app_table.routes[1] = default_route(Some("igw-1"), None);
    let db_table =
        observed.route_tables.iter_mut().find(|t| t.key == Some(RouteTableKey::of(RouteTableRole::Db))).unwrap();
    db_table.routes.push(default_route(Some("igw-1"), None));
    // alb-subnet2 fell back to the main table.
    let public =
        observed.route_tables.iter_mut().find(|t| t.key == Some(RouteTableKey::of(RouteTableRole::Public))).unwrap();
    public.associations.retain(|a| a.subnet_id.as_deref() != Some("subnet-alb-b"));
    observed.route_tables[0]
        .associations
        .push(ObservedAssociation { id: "rtbassoc-fallback".into(), subnet_id: Some("subnet-alb-b".into()) });
    observed.subnets[0].resource.tags.remove("three-tier:tier");

    let plan = plan(&desired, &observed);
    assert!(plan.conflicts.is_empty(), "{:?}", plan.conflicts);
    insta::assert_snapshot!("network_drift_plan_text", plan.render());
    assert!(plan.steps.iter().all(|s| s.change() == Change::Update), "drift needs no create or delete");
}

#[test]
fn changes_aws_cannot_make_in_place_are_refused_with_a_fix() {
    let mut config = Config::default_config();
    config.network.subnets.get_mut("app").unwrap().cidr = "10.0.2.0/26".parse().unwrap();
    let desired = desired(&config);
    let mut observed = deployed(&default_desired());
    observed.vpcs.push(ObservedVpc { id: "vpc-2".into(), ..observed.vpcs[0].clone() });
    let plan = plan(&desired, &observed);
    let problems: Vec<String> = plan.conflicts.iter().map(|c| format!("{} {}", c.resource, c.problem)).collect();
    assert!(problems.iter().any(|p| p.contains("app-subnet") && p.contains("10.0.2.0/26")), "{problems:?}");
    assert!(problems.iter().any(|p| p.starts_with("VPC exists 2 times")), "{problems:?}");
    assert!(plan.conflicts.iter().all(|c| c.fix.contains("teardown") || c.fix.contains("delete")));
    let refused = plan.check_conflicts();
    assert!(
        matches!(&refused, Err(three_tier_core::Error::Conflict { resource, .. }) if *resource == plan.conflicts[0].resource),
        "the first conflict refuses the plan: {refused:?}"
    );
}

#[test]
fn teardown_deletes_in_an_order_aws_accepts() {
    let observed = deployed(&default_desired());
    let plan = teardown_plan(&observed);
    insta::assert_yaml_snapshot!("network_teardown_plan", plan);
    let at = |f: fn(&NetworkStep) -> bool| position(&plan, f);
    let delete_nat = at(|s| matches!(s, NetworkStep::DeleteNatGateway { .. }));
    let nat_gone = at(|s| matches!(s, NetworkStep::WaitNatGatewayDeleted { .. }));
    let release = at(|s| matches!(s, NetworkStep::ReleaseAddress { .. }));
    let revoke = at(|s| matches!(s, NetworkStep::RevokeIngress { .. }));
    let delete_group = at(|s| matches!(s, NetworkStep::DeleteSecurityGroup { .. }));
    let delete_subnet = at(|s| matches!(s, NetworkStep::DeleteSubnet { .. }));
    let detach = at(|s| matches!(s, NetworkStep::DetachInternetGateway { .. }));
    let delete_vpc = at(|s| matches!(s, NetworkStep::DeleteVpc { .. }));
    assert!(delete_nat < nat_gone && nat_gone < release, "the address is released once the NAT is deleted");
    assert!(release < detach, "the gateway is detached once no public address is mapped");
    assert!(revoke < delete_group, "group references go before the groups");
    assert!(delete_subnet < delete_vpc && detach < delete_vpc);
    assert_eq!(delete_vpc, plan.steps.len() - 1);
    assert!(
        !plan.steps.iter().any(|s| matches!(s, NetworkStep::DeleteRouteTable { id, .. } if id == "rtb-main")),
        "the VPC's main table goes with the VPC"
    );
}

#[test]
fn teardown_of_nothing_is_empty() {
    assert!(teardown_plan(&Observed::default()).steps.is_empty());
}

#[test]
fn a_subnet_on_another_of_the_stacks_tables_is_moved_in_one_step() {
    let desired = default_desired();
    let mut observed = deployed(&desired);
    // app-subnet sits on the public table instead of the app table.
    let app = observed.route_tables.iter_mut().find(|t| t.key == Some(RouteTableKey::of(RouteTableRole::App))).unwrap();
    app.associations.clear();
    let public =
        observed.route_tables.iter_mut().find(|t| t.key == Some(RouteTableKey::of(RouteTableRole::Public))).unwrap();
    public.associations.push(ObservedAssociation { id: "rtbassoc-wrong".into(), subnet_id: Some("subnet-app".into()) });
    let plan = plan(&desired, &observed);
    let touching: Vec<&NetworkStep> = plan
        .steps
        .iter()
        .filter(|s| {
            matches!(s, NetworkStep::DisassociateRouteTable { association_id, .. }
                | NetworkStep::ReplaceRouteTableAssociation { association_id, .. } if association_id == "rtbassoc-wrong")
        })
        .collect();
    assert_eq!(touching.len(), 1, "{touching:?}");
    assert!(matches!(touching[0], NetworkStep::ReplaceRouteTableAssociation { .. }));
}

#[test]
fn a_nat_gateways_untagged_address_is_adopted_not_doubled() {
    let desired = default_desired();
    let mut observed = deployed(&desired);
    observed.nat_addresses.clear();
    let plan = plan(&desired, &observed);
    assert!(!plan.steps.iter().any(|s| matches!(s, NetworkStep::AllocateAddress { .. })), "{}", plan.render());
    assert!(
        plan.steps
            .iter()
            .any(|s| matches!(s, NetworkStep::TagResource { resource_id, .. } if resource_id == "eipalloc-1"))
    );
}

/// The default config with a second app subnet, `app-b`, in the other zone.
fn with_second_app_subnet() -> Config {
    let mut config = Config::default_config();
    let app_b = three_tier_core::config::SubnetConfig {
        name: "app-subnet2".into(),
        cidr: "10.0.1.64/26".parse().unwrap(),
        availability_zone: "ap-northeast-1c".into(),
    };
    config.network.subnets.0.insert(SubnetKey::parse("app-b").unwrap(), app_b);
    config.validate(std::path::Path::new("x.toml")).unwrap();
    config
}

#[test]
fn a_subnet_added_to_the_config_is_created_and_routed_by_its_roles_table() {
    let config = with_second_app_subnet();
    let plan = plan(&desired(&config), &deployed(&default_desired()));
    let steps: Vec<String> = plan.steps.iter().map(Step::describe).collect();
    let app_table = &desired(&config).route_tables[&RouteTableKey::of(RouteTableRole::App)].name;
    assert_eq!(
        steps,
        [
            "subnet app-subnet2 (10.0.1.64/26, ap-northeast-1c)".to_owned(),
            format!("associate {app_table} with subnet app-subnet2"),
        ]
    );
    assert!(
        plan.steps.iter().any(|s| matches!(s,
        NetworkStep::CreateSubnet { key, tags, .. }
            if key == "subnet/app-b" && tags.pairs.get("three-tier:role").map(String::as_str) == Some("subnet/app-b")))
    );
    assert!(plan.steps.iter().any(|s| matches!(s,
        NetworkStep::AssociateRouteTable { route_table: Ref::Existing(table), subnet: Ref::Planned(key), .. }
            if table == "rtb-app" && key == "subnet/app-b")));
}

#[test]
fn a_subnet_taken_out_of_the_config_is_deleted_after_leaving_its_table() {
    let observed = deployed(&desired(&with_second_app_subnet()));
    let plan = plan(&default_desired(), &observed);
    assert!(plan.conflicts.is_empty(), "{:?}", plan.conflicts);
    let steps: Vec<String> = plan.steps.iter().map(Step::describe).collect();
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert!(
        plan.steps.iter().any(|s| matches!(s,
        NetworkStep::DeleteSubnet { id, .. } if id == "subnet-app-b")),
        "{steps:?}"
    );
    assert!(
        plan.steps.iter().any(|s| matches!(s,
        NetworkStep::DisassociateRouteTable { association_id, .. } if association_id == "rtbassoc-app-b")),
        "{steps:?}"
    );
    let graph = Graph::build(plan.steps.iter().map(|s| (Tier::Network, s.clone()))).unwrap();
    let delete = graph.find(|s| matches!(s, NetworkStep::DeleteSubnet { .. })).unwrap();
    let leave = graph.find(|s| matches!(s, NetworkStep::DisassociateRouteTable { .. })).unwrap();
    assert!(graph.ancestors(delete).contains(&leave), "the subnet leaves its table first");
}

fn with_per_zone_nat_gateways() -> Config {
    let mut config = with_second_app_subnet();
    config.network.nat_gateways = NatGateways::PerZone;
    config.validate(std::path::Path::new("x.toml")).unwrap();
    config
}

#[test]
fn per_zone_nat_gateways_route_each_zones_app_subnet_through_its_own() {
    let desired = desired(&with_per_zone_nat_gateways());
    let plan = plan(&desired, &Observed::default());
    assert!(plan.conflicts.is_empty(), "{:?}", plan.conflicts);
    let nats: Vec<(&str, &Ref, &Ref)> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            NetworkStep::CreateNatGateway { key, subnet, allocation, .. } => Some((key.as_str(), subnet, allocation)),
            _ => None,
        })
        .collect();
    assert_eq!(
        nats,
        [
            ("nat-gateway", &Ref::planned("subnet/alb-a"), &Ref::planned("nat-address")),
            (
                "nat-gateway/ap-northeast-1c",
                &Ref::planned("subnet/alb-b"),
                &Ref::planned("nat-address/ap-northeast-1c")
            ),
        ]
    );
    let waits = plan.steps.iter().filter(|s| matches!(s, NetworkStep::WaitNatGatewayAvailable { .. })).count();
    assert_eq!(waits, 2);
    // Each app subnet is associated with its zone's table, whose default route is its
    // zone's gateway.
    let associated = |subnet: &str| {
        plan.steps.iter().find_map(|s| match s {
            NetworkStep::AssociateRouteTable { route_table, subnet: Ref::Planned(key), .. } if key == subnet => {
                Some(route_table.clone())
            }
            _ => None,
        })
    };
    let routed_to = |table: &Ref| {
        plan.steps.iter().find_map(|s| match s {
            NetworkStep::CreateRoute { route_table, target: RouteTarget::NatGateway(nat), .. }
                if route_table == table =>
            {
                Some(nat.clone())
            }
            _ => None,
        })
    };
    let app = associated("subnet/app").unwrap();
    let app_b = associated("subnet/app-b").unwrap();
    assert_eq!(app, Ref::planned("route-table/app"));
    assert_eq!(app_b, Ref::planned("route-table/app/ap-northeast-1c"));
    assert_eq!(routed_to(&app), Some(Ref::planned("nat-gateway")));
    assert_eq!(routed_to(&app_b), Some(Ref::planned("nat-gateway/ap-northeast-1c")));
    let table = &desired.route_tables[&RouteTableKey::parse("app/ap-northeast-1c").unwrap()];
    assert_eq!(table.name, "three-tier-app-rt-ap-northeast-1c");
    assert_eq!(table.tags.pairs["three-tier:role"], "route-table/app/ap-northeast-1c");
    let zone_nat = &desired.nat_gateways[1];
    assert_eq!(
        (zone_nat.name.as_str(), zone_nat.address.name.as_str()),
        ("nat-gateway-ap-northeast-1c", "three-tier-nat-eip-ap-northeast-1c")
    );
    // Deployed, it plans nothing.
    let again = crate::plan::plan(&desired, &deployed(&desired));
    assert!(again.steps.is_empty() && again.conflicts.is_empty(), "{:?}", again.steps);
}

#[test]
fn turning_per_zone_on_adds_the_second_zones_gateway_and_moves_its_subnet() {
    let observed = deployed(&desired(&with_second_app_subnet()));
    let plan = plan(&desired(&with_per_zone_nat_gateways()), &observed);
    assert!(plan.conflicts.is_empty(), "{:?}", plan.conflicts);
    let steps: Vec<String> = plan.steps.iter().map(Step::describe).collect();
    assert_eq!(
        steps,
        [
            "Elastic IP three-tier-nat-eip-ap-northeast-1c",
            "NAT gateway nat-gateway-ap-northeast-1c in subnet subnet-alb-b",
            "route table three-tier-app-rt-ap-northeast-1c",
            "move subnet app-subnet2 to route table three-tier-app-rt-ap-northeast-1c",
            "wait for NAT gateway nat-gateway-ap-northeast-1c to be available",
            "route 0.0.0.0/0 → NAT gateway (new nat-gateway/ap-northeast-1c) in three-tier-app-rt-ap-northeast-1c",
        ],
    );
    // The subnet keeps its way out: it moves once its new table routes through the new
    // gateway.
    let graph = Graph::build(plan.steps.iter().map(|s| (Tier::Network, s.clone()))).unwrap();
    let moved = graph.find(|s| matches!(s, NetworkStep::ReplaceRouteTableAssociation { .. })).unwrap();
    let routed = graph.find(|s| matches!(s, NetworkStep::CreateRoute { .. })).unwrap();
    assert!(graph.ancestors(moved).contains(&routed));
}

#[test]
fn turning_per_zone_off_moves_the_subnet_back_then_deletes_the_zones_gateway_and_table() {
    let observed = deployed(&desired(&with_per_zone_nat_gateways()));
    let plan = plan(&desired(&with_second_app_subnet()), &observed);
    assert!(plan.conflicts.is_empty(), "{:?}", plan.conflicts);
    let steps: Vec<String> = plan.steps.iter().map(Step::describe).collect();
    assert_eq!(
        steps,
        [
            "move subnet app-subnet2 to route table three-tier-app-rt",
            "route table three-tier-app-rt-ap-northeast-1c (rtb-app/ap-northeast-1c)",
            "NAT gateway nat-gateway-ap-northeast-1c (nat-ap-northeast-1c)",
            "wait for NAT gateway nat-gateway-ap-northeast-1c to be deleted",
            "Elastic IP three-tier-nat-eip-ap-northeast-1c (eipalloc-ap-northeast-1c)",
        ],
    );
    let graph = Graph::build(plan.steps.iter().map(|s| (Tier::Network, s.clone()))).unwrap();
    let moved = graph.find(|s| matches!(s, NetworkStep::ReplaceRouteTableAssociation { .. })).unwrap();
    for removal in [
        graph.find(|s| matches!(s, NetworkStep::DeleteRouteTable { .. })).unwrap(),
        graph.find(|s| matches!(s, NetworkStep::DeleteNatGateway { .. })).unwrap(),
    ] {
        assert!(graph.ancestors(removal).contains(&moved), "the subnet is routed by its new table first");
    }
    let release = graph.find(|s| matches!(s, NetworkStep::ReleaseAddress { .. })).unwrap();
    let gone = graph.find(|s| matches!(s, NetworkStep::WaitNatGatewayDeleted { .. })).unwrap();
    assert!(graph.ancestors(release).contains(&gone));
    // Teardown finds both gateways and both addresses.
    let teardown = teardown_plan(&observed);
    let deleted = teardown.steps.iter().filter(|s| matches!(s, NetworkStep::DeleteNatGateway { .. })).count();
    let released = teardown.steps.iter().filter(|s| matches!(s, NetworkStep::ReleaseAddress { .. })).count();
    assert_eq!((deleted, released), (2, 2));
}

#[test]
fn a_nat_gateway_that_lost_its_role_tag_is_kept_and_retagged() {
    let desired = default_desired();
    let mut observed = deployed(&desired);
    observed.nat_gateways[0].role = None;
    observed.nat_gateways[0].tags.remove("three-tier:role");
    let plan = plan(&desired, &observed);
    let steps: Vec<String> = plan.steps.iter().map(Step::describe).collect();
    assert_eq!(steps, ["tag nat-gateway: three-tier:role"]);
}

#[test]
fn turning_per_zone_off_while_the_first_gateway_is_missing_plans_without_a_cycle() {
    // The first zone's gateway was deleted by hand: the run creates it again, moves app-b
    // to its table, and deletes the zone's gateway once app-b is routed.
    let mut observed = deployed(&desired(&with_per_zone_nat_gateways()));
    observed.nat_gateways.retain(|n| n.role.as_deref() != Some("nat-gateway"));
    let plan = plan(&desired(&with_second_app_subnet()), &observed);
    assert!(plan.conflicts.is_empty(), "{:?}", plan.conflicts);
    let graph = Graph::build(plan.steps.iter().map(|s| (Tier::Network, s.clone()))).unwrap();
    let create = graph.find(|s| matches!(s, NetworkStep::CreateNatGateway { .. })).unwrap();
    let delete = graph.find(|s| matches!(s, NetworkStep::DeleteNatGateway { .. })).unwrap();
    let moved = graph.find(|s| matches!(s, NetworkStep::ReplaceRouteTableAssociation { .. })).unwrap();
    assert!(graph.ancestors(delete).contains(&moved) && graph.ancestors(moved).contains(&create));
}
