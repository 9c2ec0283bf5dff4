//! The pure half of the tier: plans from hand-built observed states.

use aws_sdk_elasticloadbalancingv2::types::LoadBalancerStateEnum;
use three_tier_core::outputs::NetworkRefs;
use three_tier_core::{Change, Config, Ref, Step};

use crate::desired::{Desired, desired};
use crate::observe::{Observed, ObservedListener, ObservedLoadBalancer, ObservedRule, ObservedTargetGroup};
use crate::plan::{AlbStep, plan, teardown_plan};

fn network() -> NetworkRefs {
    NetworkRefs::example()
}

fn with_api_rule() -> Config {
    let mut config = Config::default_config();
    let text = Config::DEFAULT_TOML.replace(
        "# [[alb.rules]]\n# priority = 10\n# path_pattern = \"/api/*\"\n# target_group_name = \"api-target-group\"\n# port = 8080",
        "[[alb.rules]]\npriority = 10\npath_pattern = \"/api/*\"\ntarget_group_name = \"api-target-group\"\nport = 8080",
    );
    config.alb = Config::parse(std::path::Path::new("x"), &text).unwrap().alb;
    config
}

/// The observed state of a complete deploy of `desired`.
fn deployed(desired: &Desired) -> Observed {
    let arn = |kind: &str, name: &str| format!("arn:aws:elasticloadbalancing:ap-northeast-1:1:{kind}/{name}");
    let group_arn = |name: &str| arn("targetgroup", name);
    let lb = &desired.load_balancer;
    let mut subnets: Vec<String> = lb.subnets.iter().map(Ref::to_string).collect();
    subnets.sort();
    Observed {
        load_balancers: vec![ObservedLoadBalancer {
            arn: arn("loadbalancer/app", &lb.name),
            name: lb.name.clone(),
            dns_name: format!("{}-1.ap-northeast-1.elb.amazonaws.com", lb.name),
            state: LoadBalancerStateEnum::Active,
            scheme: "internet-facing".into(),
            kind: "application".into(),
            ip_address_type: "ipv4".into(),
            subnets,
            security_groups: lb.security_groups.iter().map(Ref::to_string).collect(),
            tags: lb.tags.pairs.clone(),
        }],
        target_groups: desired
            .target_groups
            .iter()
            .map(|g| ObservedTargetGroup {
                arn: group_arn(&g.name),
                name: g.name.clone(),
                protocol: "HTTP".into(),
                port: g.port,
                vpc_id: g.vpc.to_string(),
                target_type: "instance".into(),
                health_check_protocol: "HTTP".into(),
                health_check_port: "traffic-port".into(),
                health_check_path: g.health_check_path.clone(),
                matcher: g.matcher.clone(),
                tags: g.tags.pairs.clone(),
            })
            .collect(),
        listeners: vec![ObservedListener {
            arn: arn("listener/app", "http"),
            load_balancer_arn: arn("loadbalancer/app", &lb.name),
            port: desired.listener.port,
            protocol: "HTTP".into(),
            default_target_group: Some(group_arn(&desired.listener.default_target_group)),
            rules: desired
                .rules
                .iter()
                .map(|r| ObservedRule {
                    arn: arn("listener-rule/app", &r.priority.to_string()),
                    priority: r.priority,
                    path_patterns: vec![r.path_pattern.clone()],
                    target_group: Some(group_arn(&r.target_group)),
                })
                .collect(),
        }],
        foreign_names: vec!["someone-elses-alb".into()],
    }
}

#[test]
fn fresh_plan_builds_the_spec() {
    let plan = plan(&desired(&Config::default_config(), &network()), &Observed::default());
    assert!(plan.conflicts.is_empty());
    insta::assert_yaml_snapshot!("alb_fresh_plan", plan);
    insta::assert_snapshot!("alb_fresh_plan_text", plan.render());
}

#[test]
fn the_seeds_api_rule_gets_its_own_target_group_and_priority() {
    let plan = plan(&desired(&with_api_rule(), &network()), &Observed::default());
    insta::assert_snapshot!("alb_fresh_plan_with_api_rule_text", plan.render());
    let rule = plan.steps.iter().find_map(|s| match s {
        AlbStep::CreateRule { priority, path_pattern, target_group, .. } => {
            Some((*priority, path_pattern.clone(), target_group.clone()))
        }
        _ => None,
    });
    assert_eq!(rule, Some((10, "/api/*".into(), Ref::planned("target-group/api-target-group"))));
}

#[test]
fn a_complete_deploy_plans_nothing() {
    for config in [Config::default_config(), with_api_rule()] {
        let desired = desired(&config, &network());
        let plan = plan(&desired, &deployed(&desired));
        assert_eq!(plan.steps, vec![], "{}", plan.render());
        assert!(plan.conflicts.is_empty());
    }
}

#[test]
fn a_provisioning_load_balancer_is_waited_for() {
    let desired = desired(&Config::default_config(), &network());
    let mut observed = deployed(&desired);
    observed.load_balancers[0].state = LoadBalancerStateEnum::Provisioning;
    let plan = plan(&desired, &observed);
    assert_eq!(plan.steps.len(), 1);
    assert!(matches!(plan.steps[0], AlbStep::WaitLoadBalancerActive { .. }));
}

#[test]
fn drift_is_repaired_and_a_dropped_rule_goes_with_its_target_group() {
    let desired_with_rule = desired(&with_api_rule(), &network());
    let mut observed = deployed(&desired_with_rule);
    observed.target_groups[0].health_check_path = "/health".into();
    observed.load_balancers[0].security_groups = vec!["sg-other".into()];
    // The config no longer has the rule.
    let desired = desired(&Config::default_config(), &network());
    let plan = plan(&desired, &observed);
    insta::assert_snapshot!("alb_drift_plan_text", plan.render());
    let position = |f: fn(&AlbStep) -> bool| plan.steps.iter().position(f).unwrap();
    assert!(
        position(|s| matches!(s, AlbStep::DeleteRule { .. }))
            < position(|s| matches!(s, AlbStep::DeleteTargetGroup { .. }))
    );
}

#[test]
fn names_held_by_others_and_immutable_changes_are_conflicts() {
    let network = network();
    let desired = desired(&Config::default_config(), &network);
    let mut observed = Observed { foreign_names: vec!["sample-alb".into()], ..Observed::default() };
    let plan_taken = plan(&desired, &observed);
    assert!(plan_taken.conflicts.iter().any(|c| c.resource == "name sample-alb" && c.fix.contains("--stack")));

    observed = deployed(&desired);
    observed.target_groups[0].port = 8080;
    observed.load_balancers[0].scheme = "internal".into();
    let plan = plan(&desired, &observed);
    let problems: Vec<String> = plan.conflicts.iter().map(|c| format!("{} {}", c.resource, c.problem)).collect();
    assert!(problems.iter().any(|p| p.contains("app-target-group") && p.contains("port 8080")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("internal")), "{problems:?}");
    let refused = plan.check_conflicts();
    assert!(
        matches!(&refused, Err(three_tier_core::Error::Conflict { resource, .. }) if *resource == plan.conflicts[0].resource),
        "the first conflict refuses the plan: {refused:?}"
    );
}

#[test]
fn teardown_removes_rules_listener_balancer_then_groups() {
    let desired = desired(&with_api_rule(), &network());
    let plan = teardown_plan(&deployed(&desired));
    let order: Vec<&str> = plan
        .steps
        .iter()
        .map(|s| match s {
            AlbStep::DeleteRule { .. } => "rule",
            AlbStep::DeleteListener { .. } => "listener",
            AlbStep::DeleteLoadBalancer { .. } => "load balancer",
            AlbStep::WaitLoadBalancerDeleted { .. } => "wait",
            AlbStep::DeleteTargetGroup { .. } => "target group",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(order, ["rule", "listener", "load balancer", "wait", "target group", "target group"]);
    assert!(plan.steps.iter().all(|s| matches!(s.change(), Change::Delete | Change::Wait)));
}
