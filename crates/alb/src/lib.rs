//! The ALB tier (SPEC.md, "ALB tier"): the app target group, the internet-facing
//! application load balancer across both ALB subnets, its HTTP listener, and optional
//! path rules to target groups of their own.
//!
//! `desired` and `plan` are pure; `observe` and `apply` talk to AWS.

mod apply;
mod desired;
mod observe;
mod plan;

pub use apply::run;
pub use desired::{DefaultAction, Desired, ListenerSpec, Protocol, desired};
pub use observe::{Observed, observe};
pub use plan::{AlbStep, plan, teardown_plan};

use three_tier_core::outputs::{AlbOutputs, AlbRefs, NetworkRefs};
use three_tier_core::{AwsContext, Config, Created, Plan, Ref, Result, Tier, TierCrate};

/// The ALB tier, as the stack drives it.
pub struct Alb;

impl TierCrate for Alb {
    const TIER: Tier = Tier::Alb;
    const READS: &'static [&'static str] = &[
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeRules",
        "elasticloadbalancing:DescribeTags",
    ];
    type Inputs = NetworkRefs;
    type Observed = Observed;
    type Desired = Desired;
    type Step = AlbStep;
    type Outputs = AlbOutputs;

    async fn observe(ctx: &AwsContext, config: &Config) -> Result<Observed> {
        observe(ctx, &config.stack.name).await
    }

    fn desired(config: &Config, network: &NetworkRefs) -> Desired {
        desired(config, network)
    }

    fn plan(desired: &Desired, observed: &Observed) -> Plan<AlbStep> {
        plan(desired, observed)
    }

    fn teardown(_: &Config, observed: &Observed) -> Plan<AlbStep> {
        teardown_plan(observed)
    }

    fn outputs(config: &Config, observed: &Observed) -> Option<AlbOutputs> {
        outputs(config, observed)
    }

    async fn run(ctx: &AwsContext, step: &AlbStep, created: &Created) -> Result<three_tier_core::wait::Outcome> {
        run(ctx, step, created).await
    }
}

/// What the compute tier refers to: the app target group, existing or planned (the same
/// key [`plan`] creates it under).
pub fn refs(config: &Config, observed: &Observed) -> AlbRefs {
    let target_group = |name: String| match observed.target_group(&name) {
        Some(group) => Ref::existing(&group.arn),
        None => Ref::planned(format!("target-group/{name}")),
    };
    AlbRefs {
        app_target_group: target_group(config.app_target_group_name()),
        rule_target_groups: config
            .alb
            .rules
            .iter()
            .map(|rule| target_group(config.names().account_unique(&rule.target_group_name)))
            .collect(),
    }
}

/// The tier's outputs, when its load balancer, listener and app target group exist.
pub fn outputs(config: &Config, observed: &Observed) -> Option<AlbOutputs> {
    let lb = observed.load_balancer()?;
    let listener = observed.listener(config.ports.http.get())?;
    let app_name = config.app_target_group_name();
    Some(AlbOutputs {
        load_balancer_arn: lb.arn.clone(),
        dns_name: lb.dns_name.clone(),
        listener_arn: listener.arn.clone(),
        listener_port: config.ports.http.get(),
        app_target_group_arn: observed.target_group(&app_name)?.arn.clone(),
        target_group_arns: observed.target_groups.iter().map(|g| (g.name.clone(), g.arn.clone())).collect(),
    })
}

#[cfg(test)]
mod tests;
