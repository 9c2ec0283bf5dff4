//! The stack's graph, planned from hand-built observations: no AWS.

use three_tier_core::graph::Durations;
use three_tier_core::{Config, Step, Tier};

use crate::{Observations, StackStep, plan_deploy_from};

/// An empty account: nothing of the stack exists; a launch would use this AMI.
fn empty_account() -> Observations {
    let image = compute::Image {
        id: "ami-0123".into(),
        source: compute::image_source(&Config::default_config()),
        root_device: "/dev/xvda".into(),
        snapshot_gib: 8,
    };
    Observations {
        network: Some(network::Observed::default()),
        alb: Some(alb::Observed::default()),
        compute: Some(compute::Observed { image: Some(image), ..compute::Observed::default() }),
        database: Some(database::Observed::default()),
    }
}

fn is_step(step: &StackStep, text: &str) -> bool {
    step.describe().starts_with(text)
}

#[test]
fn an_empty_account_plans_every_tier_in_one_graph() {
    let plan = plan_deploy_from(&Config::default_config(), crate::TIERS, &empty_account()).unwrap();
    let tiers: Vec<Tier> = plan.tiers.iter().map(|p| p.tier).collect();
    assert_eq!(tiers, crate::TIERS);
    assert!(plan.conflicts().next().is_none());
    assert_eq!(plan.graph.nodes.len(), plan.tiers.iter().map(|p| p.steps.len()).sum::<usize>());
    insta::assert_snapshot!("stack_fresh_plan_text", plan.render());
}

#[test]
fn the_database_needs_its_subnets_and_group_only() {
    let plan = plan_deploy_from(&Config::default_config(), crate::TIERS, &empty_account()).unwrap();
    let graph = &plan.graph;
    let create = graph.find(|s| is_step(s, "RDS instance")).unwrap();
    let before: Vec<String> = graph.ancestors(create).iter().map(|&i| graph.nodes[i].step.describe()).collect();
    let mut kinds: Vec<&str> = before.iter().map(|d| d.split(' ').next().unwrap()).collect();
    kinds.sort();
    kinds.dedup();
    // The VPC, the two DB subnets, the DB subnet group and db-sg001: no route table, NAT
    // gateway or other tier.
    assert_eq!(kinds, ["DB", "VPC", "security", "subnet"], "{before:#?}");
    assert_eq!(before.iter().filter(|d| d.starts_with("subnet")).count(), 2, "{before:#?}");
}

#[test]
fn the_instance_launches_once_the_nat_gateway_and_its_route_are_ready() {
    let plan = plan_deploy_from(&Config::default_config(), crate::TIERS, &empty_account()).unwrap();
    let graph = &plan.graph;
    let launch = graph.find(|s| is_step(s, "instance three-tier-app")).unwrap();
    let before = graph.ancestors(launch);
    let has = |text: &str| before.iter().any(|&i| is_step(&graph.nodes[i].step, text));
    assert!(has("wait for NAT gateway"));
    assert!(has("route 0.0.0.0/0 → NAT gateway"));
    assert!(
        before.iter().any(|&i| graph.nodes[i].step.describe().ends_with("with subnet app-subnet")),
        "the app subnet is routed"
    );
    assert!(has("put role"), "its instance profile holds the role");
    assert!(!has("wait for load balancer"), "the instance needs no active load balancer");
    let register = graph.find(|s| is_step(s, "register instance")).unwrap();
    assert!(graph.ancestors(register).iter().any(|&i| is_step(&graph.nodes[i].step, "target group app-target-group")));
}

#[test]
fn the_prediction_names_the_database_as_the_long_pole() {
    let plan = plan_deploy_from(&Config::default_config(), crate::TIERS, &empty_account()).unwrap();
    let aws = Durations::aws();
    let prediction = plan.predict(&aws);
    // The RDS instance's six minutes, after the three calls that make what it needs and
    // the moment EC2 takes to know its new security group.
    let calls = 3.0 * aws.get("api_call");
    let wait = aws.get("db_instance_available") + aws.get("api_call");
    assert!((prediction.seconds - (wait + calls + aws.get("new_resource_visible"))).abs() < 1e-9, "{prediction:?}");
    let pole: Vec<&str> = prediction.long_pole.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(pole.first(), Some(&"VPC three-tier-vpc"));
    assert_eq!(pole.last(), Some(&"wait for three-tier-db to be available"));
    // At another time scale, the same chain scaled.
    let scaled = plan.predict(&aws.scaled(0.05));
    assert!((scaled.seconds - prediction.seconds * 0.05).abs() < 1e-9);
}

#[test]
fn a_teardown_lists_each_tier_after_the_tiers_built_on_it() {
    assert_eq!(crate::teardown_order(), [Tier::Compute, Tier::Database, Tier::Alb, Tier::Network]);
    for (position, &tier) in crate::teardown_order().iter().enumerate() {
        for dependent in crate::dependents(tier) {
            assert!(crate::teardown_order()[..position].contains(&dependent), "{dependent} before {tier}");
        }
    }
}

#[test]
fn a_tier_on_a_missing_tier_is_refused_before_any_plan() {
    let err = plan_deploy_from(&Config::default_config(), &[Tier::Compute], &empty_account()).unwrap_err();
    assert!(
        matches!(err, three_tier_core::Error::MissingDependency { tier: Tier::Compute, needs: Tier::Network, .. }),
        "{err}"
    );
}

/// The default config with the seed's `/api/*` rule, on a port of its own.
fn with_api_rule(port: u16) -> Config {
    let text = Config::DEFAULT_TOML.replace(
        "# [[alb.rules]]\n# priority = 10\n# path_pattern = \"/api/*\"\n# target_group_name = \"api-target-group\"\n# port = 8080",
        &format!("[[alb.rules]]\npriority = 10\npath_pattern = \"/api/*\"\ntarget_group_name = \"api-target-group\"\nport = {port}"),
    );
    Config::parse(std::path::Path::new("config/api.toml"), &text).unwrap()
}

#[track_caller]
fn assert_every_path_open(plan: &crate::StackPlan) {
    assert_eq!(plan.paths.len(), 3);
    for path in &plan.paths {
        assert!(path.open(), "{}", path.render());
    }
    assert!(plan.conflicts().next().is_none(), "{}", plan.render());
    assert!(plan.render().contains(
        "paths the config builds: internet → ALB → nginx open, nginx → MySQL open, instance → internet open"
    ));
}

#[test]
fn a_listener_rules_target_group_is_reachable_on_its_own_port() {
    let config = with_api_rule(8082);
    let plan = plan_deploy_from(&config, crate::TIERS, &empty_account()).unwrap();
    assert_every_path_open(&plan);
    let text = plan.render();
    // sg001 lets the ALB in on the rule's port, the instance is registered there, and its
    // compose file publishes it to nginx.
    assert!(text.contains("allow tcp 8082 from group (new security-group/alb) into sg001"), "{text}");
    assert!(text.contains("in target group api-target-group on port 8082"), "{text}");
    let web = plan.paths.iter().find(|p| p.name == crate::reach::INTERNET_TO_NGINX).unwrap().render();
    assert!(
        web.contains("listener :80 rule 10 /api/*") && web.contains("forwards to api-target-group (port 8082)"),
        "{web}"
    );
    assert!(web.contains("publishes 8082 to nginx's port 80"), "{web}");
}

#[test]
fn other_ports_build_the_same_open_paths() {
    let mut config = Config::default_config();
    let port = |n| three_tier_core::config::Port::new(n).unwrap();
    (config.ports.http, config.ports.app, config.ports.database) = (port(8080), port(8081), port(3307));
    let plan = plan_deploy_from(&config, crate::TIERS, &empty_account()).unwrap();
    assert_every_path_open(&plan);
    let rendered: String = plan.paths.iter().map(crate::reach::Path::render).collect();
    for expected in ["allows tcp 8080 from 0.0.0.0/0", "allows tcp 8081 from alb-sg001", "allows tcp 3307 from sg001"] {
        assert!(rendered.contains(expected), "{expected}: {rendered}");
    }
}

#[test]
fn each_tier_builds_on_what_its_inputs_refer_to() {
    use crate::{dependencies, dependents};
    assert_eq!(dependencies(Tier::Network), []);
    assert_eq!(dependencies(Tier::Alb), [Tier::Network]);
    assert_eq!(dependencies(Tier::Database), [Tier::Network]);
    assert_eq!(dependencies(Tier::Compute), [Tier::Network, Tier::Alb]);
    assert_eq!(dependents(Tier::Network), [Tier::Alb, Tier::Compute, Tier::Database]);
    assert_eq!(dependents(Tier::Alb), [Tier::Compute]);
    assert!(dependents(Tier::Compute).is_empty() && dependents(Tier::Database).is_empty());
}

/// The default config with the four availability options: a second app subnet in the
/// other zone, two instances, a NAT gateway per zone and RDS Multi-AZ.
pub(crate) fn four_options() -> Config {
    let text = Config::DEFAULT_TOML
        .replace("instances = 1", "instances = 2")
        .replace("nat_gateways = \"one\"", "nat_gateways = \"per-zone\"")
        .replace("multi_az = false", "multi_az = true");
    let app_b = "[network.subnets.app-b]\nname = \"app-subnet2\"\ncidr = \"10.0.1.64/26\"\navailability_zone = \"ap-northeast-1c\"\n";
    let path = std::path::Path::new("four-options.toml");
    let config = Config::parse(path, &format!("{text}\n{app_b}")).unwrap();
    config.validate(path).unwrap();
    config
}

#[test]
fn the_four_availability_options_plan_and_cost_two_zones_of_everything() {
    let config = four_options();
    let plan = plan_deploy_from(&config, crate::TIERS, &empty_account()).unwrap();
    assert!(plan.conflicts().next().is_none());
    insta::assert_snapshot!("stack_four_options_plan_text", plan.render());
    let running = crate::cost::Running::planned(&config, crate::TIERS);
    assert_eq!((running.nat_gateways, running.instances.len()), (2, 2), "{running:?}");
    let estimate = crate::cost::estimate(&config.stack.region, &running);
    assert!(estimate.is_complete(), "{}", estimate.render());
    insta::assert_snapshot!("cost_four_options", estimate.render());
}
