//! The pure half of the tier: plans from hand-built observed states.

use aws_sdk_elasticloadbalancingv2::types::LoadBalancerStateEnum;
use three_tier_core::outputs::NetworkRefs;
use three_tier_core::{Change, Config, Ref, Step};

use crate::desired::{DefaultAction, Desired, ListenerSpec, Protocol, desired};
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
        listeners: desired
            .listeners
            .iter()
            .map(|listener| ObservedListener {
                arn: arn("listener/app", &listener.port.to_string()),
                load_balancer_arn: arn("loadbalancer/app", &lb.name),
                port: listener.port,
                protocol: Some(listener.protocol.clone()),
                default_action: Some(listener.naming_groups(|name| group_arn(name)).default_action),
                rules: desired
                    .rules
                    .iter()
                    .filter(|r| r.listener == listener.port)
                    .map(|r| ObservedRule {
                        arn: arn("listener-rule/app", &r.priority.to_string()),
                        priority: r.priority,
                        path_patterns: vec![r.path_pattern.clone()],
                        target_group: Some(group_arn(&r.target_group)),
                    })
                    .collect(),
            })
            .collect(),
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

/// The seed's listener moved to HTTPS on 443 with its rules, and HTTP 80 redirecting
/// there: the listeners issue 20's config will ask for, built by hand.
fn behind_https(config: &Config) -> Desired {
    let mut desired = desired(config, &network());
    let http = desired.listeners[0].clone();
    let certificate = "arn:aws:acm:ap-northeast-1:1:certificate/abc".to_owned();
    let https = ListenerSpec {
        key: "listener/https".into(),
        name: "three-tier-https-listener".into(),
        port: 443,
        protocol: Protocol::Https { certificate },
        ..http.clone()
    };
    for rule in &mut desired.rules {
        rule.listener = 443;
    }
    let redirect = ListenerSpec { default_action: DefaultAction::RedirectToHttps { port: 443 }, ..http };
    desired.listeners = vec![https, redirect];
    desired
}

#[test]
fn listeners_are_keyed_by_port_each_with_its_protocol_and_default_action() {
    let https = behind_https(&with_api_rule());
    let fresh = plan(&https, &Observed::default());
    let text = fresh.render();
    assert!(
        text.contains(
            "+ listener three-tier-https-listener (HTTPS 443 with certificate arn:aws:acm:ap-northeast-1:1:certificate/abc)"
        ),
        "{text}"
    );
    assert!(text.contains("+ listener three-tier-http-listener (HTTP 80, redirects to HTTPS 443)"), "{text}");
    let rule_listener = fresh.steps.iter().find_map(|s| match s {
        AlbStep::CreateRule { listener, .. } => Some(listener.clone()),
        _ => None,
    });
    assert_eq!(rule_listener, Some(Ref::planned("listener/https")), "the rule joins the HTTPS listener");

    // Deployed as the seed has it (HTTP 80 forwarding, the rule on it): port 80 now
    // redirects, in place; 443 is created, and the rule moves there.
    let seed = deployed(&desired(&with_api_rule(), &network()));
    let moved = plan(&https, &seed);
    let text = moved.render();
    assert!(text.contains("~ listener HTTP 80 redirects to HTTPS 443"), "{text}");
    assert!(text.contains("+ listener three-tier-https-listener (HTTPS 443"), "{text}");
    assert!(text.contains("- listener rule 10") && text.contains("+ rule 10: /api/* → api-target-group"), "{text}");
    assert!(!text.contains("- listener three-tier"), "a listener on a wanted port is kept: {text}");
    // Port 80 redirects only once 443 answers.
    let graph =
        three_tier_core::Graph::build(moved.steps.iter().map(|s| (three_tier_core::Tier::Alb, s.clone()))).unwrap();
    let redirect = graph.find(|s| matches!(s, AlbStep::ModifyListener { .. })).unwrap();
    let created = graph.find(|s| matches!(s, AlbStep::CreateListener { .. })).unwrap();
    assert!(graph.ancestors(redirect).contains(&created), "the redirect waits for the HTTPS listener");

    // Once deployed, nothing; a certificate changed by hand is set back.
    let mut observed = deployed(&https);
    assert_eq!(plan(&https, &observed).steps, vec![], "{}", plan(&https, &observed).render());
    observed.listeners[0].protocol = Some(Protocol::Https { certificate: "arn:other".into() });
    let repaired = plan(&https, &observed).render();
    assert!(repaired.contains("~ listener HTTPS 443 with certificate arn:aws:acm"), "{repaired}");
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
    // Its waits declare their bounds: the graph refuses one that does not.
    three_tier_core::Graph::build(plan.steps.iter().map(|s| (three_tier_core::Tier::Alb, s.clone()))).unwrap();
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
