//! The ALB tier (SPEC.md, "ALB tier"): the app target group, the internet-facing
//! application load balancer across both ALB subnets, its HTTP listener, and optional
//! path rules to target groups of their own.
//!
//! `desired` and `plan` are pure; `observe` and `apply` talk to AWS.

mod apply;
mod desired;
mod observe;
mod plan;

pub use apply::{apply, run};
pub use desired::{Desired, desired};
pub use observe::{Observed, observe};
pub use plan::{AlbStep, plan, teardown_plan};

use three_tier_core::outputs::{AlbOutputs, AlbRefs, NetworkOutputs, NetworkRefs};
use three_tier_core::{AwsContext, Config, Error, Plan, Ref, Result, Tier};

/// Deploys the tier alone on the network tier's outputs and returns its own.
pub async fn deploy(ctx: &AwsContext, config: &Config, network: &NetworkOutputs) -> Result<AlbOutputs> {
    let (mut observed, plan) = plan_deploy(ctx, config, &network.into()).await?;
    ctx.progress.line(plan.render().trim_end());
    plan.check_conflicts()?;
    if !plan.steps.is_empty() {
        apply(ctx, &plan).await?;
        observed = observe(ctx, &config.stack.name).await?;
    }
    outputs(config, &observed).ok_or_else(|| Error::incomplete(Tier::Alb, &config.stack.name))
}

pub async fn plan_deploy(
    ctx: &AwsContext,
    config: &Config,
    network: &NetworkRefs,
) -> Result<(Observed, Plan<AlbStep>)> {
    let observed = observe(ctx, &config.stack.name).await?;
    let plan = plan(&desired(config, network), &observed);
    Ok((observed, plan))
}

/// What the compute tier refers to: the app target group, existing or planned (the same
/// key [`plan`] creates it under).
pub fn refs(config: &Config, observed: &Observed) -> AlbRefs {
    let name = config.names().account_unique(&config.alb.target_group_name);
    let app_target_group = match observed.target_group(&name) {
        Some(group) => Ref::existing(&group.arn),
        None => Ref::planned(format!("target-group/{name}")),
    };
    AlbRefs { app_target_group }
}

/// The tier's outputs, when its load balancer, listener and app target group exist.
pub fn outputs(config: &Config, observed: &Observed) -> Option<AlbOutputs> {
    let lb = observed.load_balancer()?;
    let listener = observed.listener(config.ports.http.get())?;
    let app_name = config.names().account_unique(&config.alb.target_group_name);
    Some(AlbOutputs {
        load_balancer_arn: lb.arn.clone(),
        dns_name: lb.dns_name.clone(),
        listener_arn: listener.arn.clone(),
        app_target_group_arn: observed.target_group(&app_name)?.arn.clone(),
        target_group_arns: observed.target_groups.iter().map(|g| (g.name.clone(), g.arn.clone())).collect(),
    })
}

#[cfg(test)]
mod tests;
