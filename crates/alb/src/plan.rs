//! The ALB tier's plans. Pure functions: no I/O.

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2::types::LoadBalancerStateEnum;
use serde::Serialize;
use three_tier_core::naming::Tags;
use three_tier_core::{Bound, Change, Conflict, Facts, Key, Plan, Ready, Ref, Step, Tier, Wait, keys};

use crate::desired::{DefaultAction, Desired, ListenerSpec, LoadBalancerSpec, Protocol, TargetGroupSpec};
use crate::observe::{Observed, ObservedListener};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum AlbStep {
    /// A target group as its spec says (embedded whole, not copied field by field).
    CreateTargetGroup {
        key: String,
        #[serde(flatten)]
        spec: TargetGroupSpec,
    },
    ModifyTargetGroupHealthCheck {
        arn: String,
        name: String,
        health_check_path: String,
        matcher: String,
    },
    CreateLoadBalancer {
        key: String,
        #[serde(flatten)]
        spec: LoadBalancerSpec,
    },
    SetSubnets {
        load_balancer: String,
        name: String,
        subnets: Vec<Ref>,
    },
    SetSecurityGroups {
        load_balancer: String,
        name: String,
        security_groups: Vec<Ref>,
    },
    /// A listener as its spec says, its target group by reference.
    CreateListener {
        #[serde(flatten)]
        spec: ListenerSpec<GroupRef>,
        load_balancer: Ref,
    },
    /// An existing listener set to its spec: protocol, certificate and default action.
    ModifyListener {
        arn: String,
        #[serde(flatten)]
        spec: ListenerSpec<GroupRef>,
    },
    CreateRule {
        listener: Ref,
        priority: u32,
        path_pattern: String,
        target_group: Ref,
        target_group_name: String,
        tags: Tags,
    },
    ModifyRule {
        arn: String,
        priority: u32,
        path_pattern: String,
        target_group: Ref,
        target_group_name: String,
    },
    WaitLoadBalancerActive {
        name: String,
        load_balancer: Ref,
    },
    AddTags {
        arn: String,
        name: String,
        tags: BTreeMap<String, String>,
    },
    DeleteRule {
        arn: String,
        priority: u32,
    },
    DeleteListener {
        arn: String,
        port: u16,
    },
    DeleteLoadBalancer {
        arn: String,
        name: String,
    },
    WaitLoadBalancerDeleted {
        arn: String,
        name: String,
    },
    DeleteTargetGroup {
        arn: String,
        name: String,
    },
}

/// Each step's facts. An internet-facing load balancer needs the internet gateway
/// attached; a target group goes once nothing forwards to it and no target is left in it;
/// a deleted load balancer's network interfaces linger for minutes, and its subnets and
/// security group are free only then.
impl Step for AlbStep {
    fn facts(&self) -> Facts {
        use AlbStep::*;
        match self {
            CreateTargetGroup { key, spec } => Facts {
                change: Change::Create,
                description: format!(
                    "target group {} (HTTP {}, instances, health check {} → {})",
                    spec.name, spec.port, spec.health_check_path, spec.matcher
                ),
                actions: &["elasticloadbalancing:CreateTargetGroup"],
                produces: vec![Key::created(key)],
                after: vec![],
                typical: None,
                wait: None,
            },
            ModifyTargetGroupHealthCheck { name, health_check_path, matcher, .. } => Facts {
                change: Change::Update,
                description: format!(
                    "health check of {name}: HTTP {health_check_path} on the traffic port → {matcher}"
                ),
                actions: &["elasticloadbalancing:ModifyTargetGroup"],
                produces: vec![],
                after: vec![],
                typical: None,
                wait: None,
            },
            CreateLoadBalancer { key, spec } => Facts {
                change: Change::Create,
                description: format!(
                    "load balancer {} (application, internet-facing, IPv4, {} subnets)",
                    spec.name,
                    spec.subnets.len()
                ),
                actions: &["elasticloadbalancing:CreateLoadBalancer"],
                produces: vec![Key::created(key)],
                after: keys([Ready::InternetGatewayAttached]),
                typical: None,
                wait: None,
            },
            SetSubnets { name, subnets, .. } => Facts {
                change: Change::Update,
                description: format!("subnets of {name}: {}", join(subnets)),
                actions: &["elasticloadbalancing:SetSubnets"],
                produces: vec![],
                after: vec![],
                typical: None,
                wait: None,
            },
            SetSecurityGroups { name, security_groups, .. } => Facts {
                change: Change::Update,
                description: format!("security groups of {name}: {}", join(security_groups)),
                actions: &["elasticloadbalancing:SetSecurityGroups"],
                produces: vec![],
                after: vec![],
                typical: None,
                wait: None,
            },
            CreateListener { spec, .. } => Facts {
                change: Change::Create,
                description: match &spec.default_action {
                    DefaultAction::Forward(_) => format!("listener {} ({})", spec.name, listening(spec)),
                    DefaultAction::RedirectToHttps { port } => {
                        format!("listener {} ({}, redirects to HTTPS {port})", spec.name, listening(spec))
                    }
                },
                actions: &["elasticloadbalancing:CreateListener"],
                produces: std::iter::once(Key::created(&spec.key)).chain(listening_keys(spec)).collect(),
                after: keys([Ready::ListenerDeleted]).into_iter().chain(redirect_keys(spec)).collect(),
                typical: None,
                wait: None,
            },
            ModifyListener { spec, .. } => Facts {
                change: Change::Update,
                description: match &spec.default_action {
                    DefaultAction::Forward(group) => format!("listener {} forwards to {}", listening(spec), group.name),
                    DefaultAction::RedirectToHttps { port } => {
                        format!("listener {} redirects to HTTPS {port}", listening(spec))
                    }
                },
                actions: &["elasticloadbalancing:ModifyListener"],
                produces: keys([Ready::ForwardingMoved]).into_iter().chain(listening_keys(spec)).collect(),
                after: redirect_keys(spec),
                typical: None,
                wait: None,
            },
            CreateRule { priority, path_pattern, target_group_name, .. } => Facts {
                change: Change::Create,
                description: format!("rule {priority}: {path_pattern} → {target_group_name}"),
                actions: &["elasticloadbalancing:CreateRule"],
                produces: vec![],
                after: keys([Ready::RuleDeleted]),
                typical: None,
                wait: None,
            },
            ModifyRule { priority, path_pattern, target_group_name, .. } => Facts {
                change: Change::Update,
                description: format!("rule {priority}: {path_pattern} → {target_group_name}"),
                actions: &["elasticloadbalancing:ModifyRule"],
                produces: keys([Ready::ForwardingMoved]),
                after: vec![],
                typical: None,
                wait: None,
            },
            WaitLoadBalancerActive { name, .. } => Facts {
                change: Change::Wait,
                description: format!("wait for load balancer {name} to be active"),
                actions: &["elasticloadbalancing:DescribeLoadBalancers"],
                produces: vec![],
                after: vec![],
                typical: Some("load_balancer_active"),
                wait: Some(Wait::until(format!("load balancer {name} becoming active"), Bound::LoadBalancer)),
            },
            AddTags { name, tags, .. } => Facts {
                change: Change::Update,
                description: format!("tag {name}: {}", tags.keys().map(String::as_str).collect::<Vec<_>>().join(", ")),
                actions: &["elasticloadbalancing:AddTags"],
                produces: vec![],
                after: vec![],
                typical: None,
                wait: None,
            },
            DeleteRule { priority, .. } => Facts {
                change: Change::Delete,
                description: format!("listener rule {priority}"),
                actions: &["elasticloadbalancing:DeleteRule"],
                produces: keys([Ready::RuleDeleted]),
                after: vec![],
                typical: None,
                wait: None,
            },
            DeleteListener { port, .. } => Facts {
                change: Change::Delete,
                description: format!("listener HTTP {port}"),
                actions: &["elasticloadbalancing:DeleteListener"],
                produces: keys([Ready::ListenerDeleted]),
                after: keys([Ready::RuleDeleted]),
                typical: None,
                wait: None,
            },
            DeleteLoadBalancer { name, .. } => Facts {
                change: Change::Delete,
                description: format!("load balancer {name}"),
                actions: &["elasticloadbalancing:DeleteLoadBalancer"],
                produces: keys([Ready::LoadBalancerDeleting]),
                after: keys([Ready::ListenerDeleted]),
                typical: None,
                wait: None,
            },
            WaitLoadBalancerDeleted { name, .. } => Facts {
                change: Change::Wait,
                description: format!("wait for load balancer {name} to be deleted"),
                actions: &["elasticloadbalancing:DescribeLoadBalancers"],
                produces: keys([Ready::LoadBalancerReleased]),
                after: keys([Ready::LoadBalancerDeleting]),
                typical: Some("load_balancer_interfaces_linger"),
                wait: Some(Wait::until(format!("load balancer {name} being deleted"), Bound::LoadBalancer)),
            },
            DeleteTargetGroup { name, .. } => Facts {
                change: Change::Delete,
                description: format!("target group {name}"),
                actions: &["elasticloadbalancing:DeleteTargetGroup"],
                produces: vec![],
                after: keys([
                    Ready::RuleDeleted,
                    Ready::ListenerDeleted,
                    Ready::ForwardingMoved,
                    Ready::TargetsDeregistered,
                ]),
                typical: None,
                // Just after its listener or rule is deleted, AWS may still call the group in use.
                wait: Some(Wait::while_refused(
                    format!("waiting for target group {name} to be unused"),
                    Bound::DependencyViolation,
                    format!(
                        "target group {name} is still used by a listener or rule outside this stack: find it with \
                         `aws elbv2 describe-target-groups --names {name}`, remove that use, and run teardown again"
                    ),
                )),
            },
        }
    }
}

/// The steps from what exists to what is desired. Removals come first (rules, then
/// listeners, then target groups no longer wanted), creations after, and the wait for
/// the load balancer to be active last.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan<AlbStep> {
    let mut plan = Plan::new(Tier::Alb);
    let steps = &mut plan.steps;
    let conflicts = &mut plan.conflicts;
    let conflict = |resource: String, problem: String, fix: &str| Conflict { resource, problem, fix: fix.to_owned() };
    let recreate = "run `cargo xtask teardown alb` and deploy it again";

    // Names are unique per account and region: another stack's (or anyone's) resource
    // with a name this tier wants blocks it.
    let wanted_names = std::iter::once((&desired.load_balancer.name, "alb.name")).chain(
        desired.target_groups.iter().map(|g| (&g.name, "alb.target_group_name (or the rule's target_group_name)")),
    );
    for (name, key) in wanted_names {
        if observed.foreign_names.contains(name) {
            conflicts.push(Conflict {
                resource: format!("name {name}"),
                problem: "is taken in this account and region by a resource that is not this stack's".into(),
                fix: format!(
                    "set another {key} in the config, or deploy under another --stack (its names are prefixed)"
                ),
            });
        }
    }
    if observed.load_balancers.len() > 1 {
        conflicts.push(conflict(
            "load balancer".into(),
            format!("exists {} times, tagged for the same stack", observed.load_balancers.len()),
            "delete all but one by hand, or tear the alb tier down and deploy it again",
        ));
    }

    let lb = observed.load_balancer();
    // Listeners are keyed by port: the one on a port the config wants is kept (and set to
    // its spec), any other goes.
    let wanted_port = |port: u16| lb.is_some() && desired.listeners.iter().any(|l| l.port == port);

    // Removals of what this tier owns but no longer wants.
    for observed_listener in &observed.listeners {
        if !wanted_port(observed_listener.port) {
            steps.push(AlbStep::DeleteListener { arn: observed_listener.arn.clone(), port: observed_listener.port });
            continue;
        }
        for rule in &observed_listener.rules {
            // A kept rule whose target group goes is rewritten below, before the group is deleted.
            let wanted =
                desired.rules.iter().any(|r| r.listener == observed_listener.port && r.priority == rule.priority);
            if !wanted {
                steps.push(AlbStep::DeleteRule { arn: rule.arn.clone(), priority: rule.priority });
            }
        }
    }

    // Target groups.
    let mut group_refs: BTreeMap<String, Ref> = BTreeMap::new();
    for spec in &desired.target_groups {
        let reference = match observed.target_group(&spec.name) {
            Some(group) => {
                let immutable = [
                    (group.protocol != "HTTP", format!("protocol {}", group.protocol)),
                    (group.port != spec.port, format!("port {}", group.port)),
                    (existing_id(&spec.vpc) != Some(&group.vpc_id), format!("VPC {}", group.vpc_id)),
                    (group.target_type != "instance", format!("target type {}", group.target_type)),
                ];
                for (differs, what) in immutable {
                    if differs {
                        conflicts.push(conflict(
                            format!("target group {}", spec.name),
                            format!(
                                "has {what}, which cannot change (want HTTP {}, instances, VPC {})",
                                spec.port, spec.vpc
                            ),
                            recreate,
                        ));
                    }
                }
                let health_check_drifted = group.health_check_protocol != "HTTP"
                    || group.health_check_port != "traffic-port"
                    || group.health_check_path != spec.health_check_path
                    || group.matcher != spec.matcher;
                if health_check_drifted {
                    steps.push(AlbStep::ModifyTargetGroupHealthCheck {
                        arn: group.arn.clone(),
                        name: spec.name.clone(),
                        health_check_path: spec.health_check_path.clone(),
                        matcher: spec.matcher.clone(),
                    });
                }
                steps.extend(add_tags(&group.arn, &spec.tags, &group.tags));
                Ref::existing(&group.arn)
            }
            None => {
                let key = format!("target-group/{}", spec.name);
                steps.push(AlbStep::CreateTargetGroup { key: key.clone(), spec: spec.clone() });
                Ref::planned(key)
            }
        };
        group_refs.insert(spec.name.clone(), reference);
    }

    // The load balancer.
    let spec = &desired.load_balancer;
    let (lb_ref, needs_wait) = match lb {
        Some(lb) => {
            let fixed = [
                (lb.name != spec.name, format!("is named {}, not {}", lb.name, spec.name)),
                (lb.scheme != "internet-facing", format!("is {}, not internet-facing", lb.scheme)),
                (lb.kind != "application", format!("is a {} load balancer, not application", lb.kind)),
            ];
            for (differs, problem) in fixed {
                if differs {
                    conflicts.push(conflict(format!("load balancer {}", lb.name), problem, recreate));
                }
            }
            if !same_ids(&lb.subnets, &spec.subnets) {
                steps.push(AlbStep::SetSubnets {
                    load_balancer: lb.arn.clone(),
                    name: spec.name.clone(),
                    subnets: sorted(&spec.subnets),
                });
            }
            if !same_ids(&lb.security_groups, &spec.security_groups) {
                steps.push(AlbStep::SetSecurityGroups {
                    load_balancer: lb.arn.clone(),
                    name: spec.name.clone(),
                    security_groups: sorted(&spec.security_groups),
                });
            }
            steps.extend(add_tags(&lb.arn, &spec.tags, &lb.tags));
            (Ref::existing(&lb.arn), lb.state == LoadBalancerStateEnum::Provisioning)
        }
        None => {
            steps.push(AlbStep::CreateLoadBalancer { key: "load-balancer".into(), spec: spec.clone() });
            (Ref::planned("load-balancer"), true)
        }
    };

    // The listeners, then their rules.
    let mut listener_refs: BTreeMap<u16, Ref> = BTreeMap::new();
    for listener_spec in &desired.listeners {
        let spec =
            listener_spec.naming_groups(|name| GroupRef { name: name.clone(), reference: group_refs[name].clone() });
        let reference = match lb.and_then(|_| observed.listener(spec.port)) {
            Some(existing) => {
                if !is_set_to(existing, &spec) {
                    steps.push(AlbStep::ModifyListener { arn: existing.arn.clone(), spec });
                }
                Ref::existing(&existing.arn)
            }
            None => {
                let reference = Ref::planned(&spec.key);
                steps.push(AlbStep::CreateListener { spec, load_balancer: lb_ref.clone() });
                reference
            }
        };
        listener_refs.insert(listener_spec.port, reference);
    }
    for rule in &desired.rules {
        let target_group = group_refs[&rule.target_group].clone();
        let listener = lb.and_then(|_| observed.listener(rule.listener));
        let existing = listener.and_then(|l| l.rules.iter().find(|r| r.priority == rule.priority));
        match existing {
            Some(existing) => {
                let same = existing.path_patterns == [rule.path_pattern.clone()]
                    && existing.target_group.as_ref() == existing_id(&target_group);
                if !same {
                    steps.push(AlbStep::ModifyRule {
                        arn: existing.arn.clone(),
                        priority: rule.priority,
                        path_pattern: rule.path_pattern.clone(),
                        target_group,
                        target_group_name: rule.target_group.clone(),
                    });
                }
            }
            None => steps.push(AlbStep::CreateRule {
                listener: listener_refs[&rule.listener].clone(),
                priority: rule.priority,
                path_pattern: rule.path_pattern.clone(),
                target_group,
                target_group_name: rule.target_group.clone(),
                tags: rule.tags.clone(),
            }),
        }
    }

    // Target groups no longer wanted, once nothing forwards to them.
    for group in &observed.target_groups {
        if !desired.target_groups.iter().any(|d| d.name == group.name) {
            steps.push(AlbStep::DeleteTargetGroup { arn: group.arn.clone(), name: group.name.clone() });
        }
    }

    if needs_wait {
        steps.push(AlbStep::WaitLoadBalancerActive { name: spec.name.clone(), load_balancer: lb_ref });
    }
    plan
}

/// Everything of the tier, deleted in an order AWS accepts: rules, listeners, the load
/// balancer (waiting until it is gone), then the target groups it no longer uses.
pub fn teardown_plan(observed: &Observed) -> Plan<AlbStep> {
    let mut plan = Plan::new(Tier::Alb);
    let steps = &mut plan.steps;
    for listener in &observed.listeners {
        for rule in &listener.rules {
            steps.push(AlbStep::DeleteRule { arn: rule.arn.clone(), priority: rule.priority });
        }
        steps.push(AlbStep::DeleteListener { arn: listener.arn.clone(), port: listener.port });
    }
    for lb in &observed.load_balancers {
        steps.push(AlbStep::DeleteLoadBalancer { arn: lb.arn.clone(), name: lb.name.clone() });
    }
    for lb in &observed.load_balancers {
        steps.push(AlbStep::WaitLoadBalancerDeleted { arn: lb.arn.clone(), name: lb.name.clone() });
    }
    for group in &observed.target_groups {
        steps.push(AlbStep::DeleteTargetGroup { arn: group.arn.clone(), name: group.name.clone() });
    }
    plan
}

/// A target group a step refers to: by reference, and by name for the plan's text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupRef {
    pub name: String,
    pub reference: Ref,
}

/// `HTTP 80`, `HTTPS 443 with certificate <arn>`: what a listener takes.
fn listening<G>(spec: &ListenerSpec<G>) -> String {
    match &spec.protocol {
        Protocol::Http => format!("HTTP {}", spec.port),
        Protocol::Https { certificate } => format!("HTTPS {} with certificate {certificate}", spec.port),
    }
}

/// What a listener's step makes ready: an HTTPS listener takes requests.
fn listening_keys(spec: &ListenerSpec<GroupRef>) -> Vec<Key> {
    match spec.protocol {
        Protocol::Https { .. } => keys([Ready::HttpsListening]),
        Protocol::Http => vec![],
    }
}

/// What a listener's step waits for: a redirect to HTTPS, for the HTTPS listener.
fn redirect_keys(spec: &ListenerSpec<GroupRef>) -> Vec<Key> {
    match spec.default_action {
        DefaultAction::RedirectToHttps { .. } => keys([Ready::HttpsListening]),
        DefaultAction::Forward(_) => vec![],
    }
}

/// Whether an existing listener already takes what its spec says and does what it says.
fn is_set_to(existing: &ObservedListener, spec: &ListenerSpec<GroupRef>) -> bool {
    let action = match (&existing.default_action, &spec.default_action) {
        (Some(DefaultAction::Forward(arn)), DefaultAction::Forward(group)) => group.reference.is(arn),
        (Some(DefaultAction::RedirectToHttps { port }), DefaultAction::RedirectToHttps { port: wanted }) => {
            port == wanted
        }
        _ => false,
    };
    action && existing.protocol.as_ref() == Some(&spec.protocol)
}

/// Whether AWS's ids (sorted) are exactly the wanted refs, all of which exist.
fn same_ids(present: &[String], wanted: &[Ref]) -> bool {
    let wanted: Option<Vec<&String>> = wanted.iter().map(existing_id).collect();
    wanted.is_some_and(|mut wanted| {
        wanted.sort();
        wanted.len() == present.len() && wanted.iter().zip(present).all(|(w, p)| *w == p)
    })
}

fn sorted(refs: &[Ref]) -> Vec<Ref> {
    let mut refs = refs.to_vec();
    refs.sort_by_key(Ref::to_string);
    refs
}

fn join(refs: &[Ref]) -> String {
    refs.iter().map(Ref::to_string).collect::<Vec<_>>().join(", ")
}

fn existing_id(reference: &Ref) -> Option<&String> {
    match reference {
        Ref::Existing(id) => Some(id),
        Ref::Planned(_) => None,
    }
}

fn add_tags(arn: &str, wanted: &Tags, present: &BTreeMap<String, String>) -> Option<AlbStep> {
    wanted.retag(present, |tags| AlbStep::AddTags { arn: arn.to_owned(), name: wanted.name().to_owned(), tags })
}
