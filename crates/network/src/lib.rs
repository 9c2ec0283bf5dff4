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
use three_tier_core::{AwsContext, Config, Created, Error, Plan, Result, RouteTableRole, SecurityGroupRole, SubnetRole, Tier};

/// Deploys the network tier: observe, plan, show the plan, apply it, and return the
/// outputs. On a deployed stack it makes read calls only.
pub async fn deploy(ctx: &AwsContext, config: &Config) -> Result<NetworkOutputs> {
    let (_, rest) = deploy_until_nat(ctx, config).await?;
    finish_deploy(ctx, config, rest).await
}

/// The steps of a network deploy that wait for the NAT gateway, and what they build on.
#[derive(Debug)]
pub struct NatSteps {
    steps: Vec<NetworkStep>,
    created: Created,
    /// The state the outputs come from when no step changes it.
    observed: Observed,
}

/// Deploys the network tier up to the wait for its NAT gateway, and returns the outputs
/// the ALB and database tiers need (the NAT gateway may still be pending) with the steps
/// that remain; [`finish_deploy`] runs them.
pub async fn deploy_until_nat(ctx: &AwsContext, config: &Config) -> Result<(NetworkOutputs, NatSteps)> {
    let (mut observed, plan) = plan_deploy(ctx, config).await?;
    ctx.progress.line(plan.render().trim_end());
    plan.check_conflicts()?;
    let split = plan.steps.iter().position(NetworkStep::is_nat_wait).unwrap_or(plan.steps.len());
    let (first, rest) = plan.steps.split_at(split);
    let mut created = Created::default();
    if !first.is_empty() {
        apply_steps(ctx, first, &mut created).await?;
        observed = observe(ctx, &config.stack.name).await?;
    }
    let outputs = outputs_before_nat(&observed).ok_or_else(|| Error::incomplete(Tier::Network, &config.stack.name))?;
    Ok((outputs, NatSteps { steps: rest.to_vec(), created, observed }))
}

/// Runs the steps [`deploy_until_nat`] left and returns the complete outputs.
pub async fn finish_deploy(ctx: &AwsContext, config: &Config, rest: NatSteps) -> Result<NetworkOutputs> {
    let NatSteps { steps, mut created, mut observed } = rest;
    if !steps.is_empty() {
        apply_steps(ctx, &steps, &mut created).await?;
        observed = observe(ctx, &config.stack.name).await?;
    }
    outputs(&observed).ok_or_else(|| Error::incomplete(Tier::Network, &config.stack.name))
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
