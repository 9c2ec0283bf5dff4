//! What the ALB tier should look like, from the config and what it refers to of the
//! network tier.

use serde::Serialize;
use three_tier_core::naming::Tags;
use three_tier_core::outputs::NetworkRefs;
use three_tier_core::{Config, Ref, SecurityGroupRole, SubnetRole, Tier};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Desired {
    pub load_balancer: LoadBalancerSpec,
    /// The app target group first, then one per listener rule.
    pub target_groups: Vec<TargetGroupSpec>,
    /// One per port, in the order they are created.
    pub listeners: Vec<ListenerSpec>,
    pub rules: Vec<RuleSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadBalancerSpec {
    pub name: String,
    /// Both ALB subnets: an internet-facing ALB needs two zones, and both are public.
    pub subnets: Vec<Ref>,
    pub security_groups: Vec<Ref>,
    pub tags: Tags,
}

/// An HTTP target group of instances, health-checked on its traffic port.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetGroupSpec {
    /// The AWS name, unique in the account and region: also the group's key in plans.
    pub name: String,
    pub port: u16,
    pub vpc: Ref,
    pub health_check_path: String,
    pub matcher: String,
    pub tags: Tags,
}

/// A listener: a load balancer has one per port. `G` names a target group: by name in
/// the desired state, by reference (and name) in a plan's step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListenerSpec<G = String> {
    /// Its key in plans, which is also its role tag (`listener` for the seed's HTTP one).
    pub key: String,
    pub name: String,
    pub port: u16,
    pub protocol: Protocol,
    /// What it does with a request no rule takes.
    pub default_action: DefaultAction<G>,
    pub tags: Tags,
}

/// What a listener speaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Protocol {
    #[serde(rename = "HTTP")]
    Http,
    /// TLS ends at the load balancer, with this certificate (an ACM ARN) under
    /// [`TLS_POLICY`].
    #[serde(rename = "HTTPS")]
    Https { certificate: String },
}

/// AWS's recommended security policy for HTTPS listeners: TLS 1.3, and 1.2 with forward
/// secrecy only.
pub const TLS_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";

impl Protocol {
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https { .. } => "HTTPS",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultAction<G> {
    Forward(G),
    /// A permanent (301) redirect to HTTPS on this port: same host, path and query.
    RedirectToHttps {
        port: u16,
    },
}

impl<G> ListenerSpec<G> {
    /// The same listener, its target group named another way (by reference, in a step).
    pub fn naming_groups<H>(&self, name: impl Fn(&G) -> H) -> ListenerSpec<H> {
        ListenerSpec {
            key: self.key.clone(),
            name: self.name.clone(),
            port: self.port,
            protocol: self.protocol.clone(),
            default_action: match &self.default_action {
                DefaultAction::Forward(group) => DefaultAction::Forward(name(group)),
                DefaultAction::RedirectToHttps { port } => DefaultAction::RedirectToHttps { port: *port },
            },
            tags: self.tags.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleSpec {
    /// The port of the listener it belongs to.
    pub listener: u16,
    pub priority: u32,
    pub path_pattern: String,
    pub target_group: String,
    pub tags: Tags,
}

pub fn desired(config: &Config, network: &NetworkRefs) -> Desired {
    let names = config.names();
    let stack = names.stack();
    let tags = |role: &str, name: &str| Tags::new(stack, Tier::Alb, role, name, &config.stack.tags);
    let alb = &config.alb;
    let target_group = |seed_name: &str, port: u16| {
        let name = names.account_unique(seed_name);
        TargetGroupSpec {
            tags: tags(&format!("target-group/{name}"), &name),
            name,
            port,
            vpc: network.vpc.clone(),
            health_check_path: alb.health_check_path.clone(),
            matcher: alb.health_check_matcher.clone(),
        }
    };
    let app_group = target_group(&alb.target_group_name, config.ports.app.get());
    let mut target_groups = vec![app_group.clone()];
    let mut rules = Vec::new();
    for rule in &alb.rules {
        let group = target_group(&rule.target_group_name, rule.port.get());
        rules.push(RuleSpec {
            listener: config.ports.http.get(),
            priority: rule.priority,
            path_pattern: rule.path_pattern.clone(),
            target_group: group.name.clone(),
            tags: tags(&format!("listener-rule/{}", rule.priority), &format!("{}-rule-{}", stack, rule.priority)),
        });
        target_groups.push(group);
    }
    let load_balancer_name = names.account_unique(&alb.name);
    let listener_name = names.unnamed("http-listener");
    Desired {
        load_balancer: LoadBalancerSpec {
            tags: tags("load-balancer", &load_balancer_name),
            name: load_balancer_name,
            subnets: network.subnets_of(SubnetRole::Alb).into_iter().cloned().collect(),
            security_groups: vec![network.security_group(SecurityGroupRole::Alb).clone()],
        },
        listeners: vec![ListenerSpec {
            key: "listener".into(),
            tags: tags("listener", &listener_name),
            name: listener_name,
            port: config.ports.http.get(),
            protocol: Protocol::Http,
            default_action: DefaultAction::Forward(app_group.name),
        }],
        target_groups,
        rules,
    }
}
