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
    pub listener: ListenerSpec,
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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListenerSpec {
    pub name: String,
    pub port: u16,
    /// The name of the target group the default action forwards to.
    pub default_target_group: String,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleSpec {
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
            subnets: SubnetRole::ALB.iter().map(|&role| network.subnet(role).clone()).collect(),
            security_groups: vec![network.security_group(SecurityGroupRole::Alb).clone()],
        },
        listener: ListenerSpec {
            tags: tags("listener", &listener_name),
            name: listener_name,
            port: config.ports.http.get(),
            default_target_group: app_group.name,
        },
        target_groups,
        rules,
    }
}
