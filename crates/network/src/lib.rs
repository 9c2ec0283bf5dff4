//! The network tier: the VPC and everything in it that the other tiers stand on (SPEC.md,
//! "Network tier"): internet gateway, five subnets, three route tables, the NAT gateway
//! with its Elastic IP, and the three chained security groups.
//!
//! `desired` and `plan` are pure; `observe` and `apply` talk to AWS.

mod apply;
mod desired;
mod observe;
mod plan;
mod rules;

use std::collections::BTreeMap;

pub use apply::{apply, apply_steps};
pub use desired::{Desired, desired};
pub use observe::{Observed, observe};
pub use plan::{NetworkStep, RouteTarget, VpcAttribute, plan, teardown_plan};
pub use rules::{IngressRule, Source};

use three_tier_core::outputs::NetworkOutputs;
use three_tier_core::{AwsContext, Config, Error, Plan, Result, RouteTableRole, SecurityGroupRole, SubnetRole};

/// Deploys the network tier: observe, plan, show the plan, apply it, and return the
/// outputs. On a deployed stack it makes read calls only.
pub async fn deploy(ctx: &AwsContext, config: &Config) -> Result<NetworkOutputs> {
    let (mut observed, plan) = plan_deploy(ctx, config).await?;
    ctx.progress.line(plan.render().trim_end());
    plan.check_conflicts()?;
    if !plan.steps.is_empty() {
        apply(ctx, &plan).await?;
        observed = observe(ctx, &config.stack.name).await?;
    }
    outputs(&observed).ok_or_else(|| Error::Conflict {
        resource: format!("the network tier of stack {}", config.stack.name),
        problem: "is incomplete after its deploy finished".into(),
        fix: "run `cargo xtask deploy network` again; if it persists, `cargo xtask plan network` shows what is missing".into(),
    })
}

/// Observes and plans a deploy of the network tier.
pub async fn plan_deploy(ctx: &AwsContext, config: &Config) -> Result<(Observed, Plan<NetworkStep>)> {
    let observed = observe(ctx, &config.stack.name).await?;
    let plan = plan(&desired(config), &observed);
    Ok((observed, plan))
}

/// Observes and plans a teardown of the network tier.
pub async fn plan_teardown(ctx: &AwsContext, config: &Config) -> Result<Plan<NetworkStep>> {
    Ok(teardown_plan(&observe(ctx, &config.stack.name).await?))
}

/// The tier's outputs, when every resource of it exists and the NAT gateway is available.
pub fn outputs(observed: &Observed) -> Option<NetworkOutputs> {
    outputs_when(observed, &["available"])
}

/// The tier's outputs once everything but the NAT gateway's wait is done: what the ALB
/// and database tiers need exists, and they need not wait for the NAT gateway.
pub fn outputs_before_nat(observed: &Observed) -> Option<NetworkOutputs> {
    outputs_when(observed, &["pending", "available"])
}

fn outputs_when(observed: &Observed, nat_states: &[&str]) -> Option<NetworkOutputs> {
    let subnet_ids: BTreeMap<_, _> =
        SubnetRole::ALL.iter().map(|&r| Some((r, observed.subnet(r)?.id.clone()))).collect::<Option<_>>()?;
    let route_table_ids: BTreeMap<_, _> =
        RouteTableRole::ALL.iter().map(|&r| Some((r, observed.route_table(r)?.id.clone()))).collect::<Option<_>>()?;
    let security_group_ids: BTreeMap<_, _> = SecurityGroupRole::ALL
        .iter()
        .map(|&r| Some((r, observed.security_group(r)?.id.clone())))
        .collect::<Option<_>>()?;
    let nat = observed.nat_gateway().filter(|n| nat_states.contains(&n.state.as_str()))?;
    Some(NetworkOutputs {
        vpc_id: observed.vpc()?.id.clone(),
        internet_gateway_id: observed.internet_gateway()?.id.clone(),
        subnet_ids,
        route_table_ids,
        nat_gateway_id: nat.id.clone(),
        eip_allocation_id: observed.nat_address()?.allocation_id.clone(),
        security_group_ids,
    })
}

#[cfg(test)]
mod tests;
