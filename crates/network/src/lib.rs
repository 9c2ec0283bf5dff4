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

use three_tier_core::outputs::{DatabaseNetwork, NetworkOutputs};
use three_tier_core::{AwsContext, Config, Created, Error, Plan, Result, RouteTableRole, SecurityGroupRole, SubnetRole, Tier};

/// Deploys the network tier: observe, plan, show the plan, apply it, and return the
/// outputs. On a deployed stack it makes read calls only.
pub async fn deploy(ctx: &AwsContext, config: &Config) -> Result<NetworkOutputs> {
    // Alone, nothing waits on a part of it: one run of the whole plan.
    finish_deploy(ctx, config, start_deploy(ctx, config).await?).await
}

/// The steps of a network deploy not yet applied, and what they build on.
#[derive(Debug)]
pub struct RemainingSteps {
    steps: Vec<NetworkStep>,
    created: Created,
    /// The state the outputs come from when no step changes it.
    observed: Observed,
}

impl RemainingSteps {
    /// Applies the steps before the first that `stop_at` picks, and observes what they made.
    async fn advance(mut self, ctx: &AwsContext, config: &Config, stop_at: impl Fn(&NetworkStep) -> bool) -> Result<Self> {
        let split = self.steps.iter().position(stop_at).unwrap_or(self.steps.len());
        let rest = self.steps.split_off(split);
        if !self.steps.is_empty() {
            apply_steps(ctx, &self.steps, &mut self.created).await?;
            self.observed = observe(ctx, &config.stack.name).await?;
        }
        Ok(RemainingSteps { steps: rest, ..self })
    }
}

/// Deploys the network tier up to what the database tier needs (the VPC, the subnets
/// and the security groups, which a deploy plan builds first), so the database's minutes
/// start before the rest of the network is built. Returns the database's inputs and the
/// steps that remain for [`deploy_until_nat`].
pub async fn deploy_until_database(ctx: &AwsContext, config: &Config) -> Result<(DatabaseNetwork, RemainingSteps)> {
    let rest = start_deploy(ctx, config).await?;
    let rest = rest.advance(ctx, config, |step| !step.builds_for_database()).await?;
    let database = database_network(&rest.observed).ok_or_else(|| Error::incomplete(Tier::Network, &config.stack.name))?;
    Ok((database, rest))
}

/// Observes, plans and shows a deploy, and stops on a conflict; nothing is applied yet.
async fn start_deploy(ctx: &AwsContext, config: &Config) -> Result<RemainingSteps> {
    let (observed, plan) = plan_deploy(ctx, config).await?;
    ctx.progress.line(plan.render().trim_end());
    plan.check_conflicts()?;
    Ok(RemainingSteps { steps: plan.steps, created: Created::default(), observed })
}

/// Deploys the network tier on up to the wait for its NAT gateway, and returns the outputs
/// the ALB tier needs (the NAT gateway may still be pending) with the steps that remain;
/// [`finish_deploy`] runs them.
pub async fn deploy_until_nat(ctx: &AwsContext, config: &Config, rest: RemainingSteps) -> Result<(NetworkOutputs, RemainingSteps)> {
    let rest = rest.advance(ctx, config, NetworkStep::is_nat_wait).await?;
    let outputs = outputs_before_nat(&rest.observed).ok_or_else(|| Error::incomplete(Tier::Network, &config.stack.name))?;
    Ok((outputs, rest))
}

/// Runs the steps [`deploy_until_nat`] left and returns the complete outputs.
pub async fn finish_deploy(ctx: &AwsContext, config: &Config, rest: RemainingSteps) -> Result<NetworkOutputs> {
    let rest = rest.advance(ctx, config, |_| false).await?;
    outputs(&rest.observed).ok_or_else(|| Error::incomplete(Tier::Network, &config.stack.name))
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

/// What the database tier needs of the network, once it exists: the DB subnets and the
/// database's security group.
pub fn database_network(observed: &Observed) -> Option<DatabaseNetwork> {
    Some(DatabaseNetwork {
        subnet_ids: SubnetRole::DB.iter().map(|&role| Some(observed.subnet(role)?.id.clone())).collect::<Option<_>>()?,
        security_group_id: observed.security_group(SecurityGroupRole::Db)?.id.clone(),
    })
}

/// The tier's outputs once everything but the NAT gateway's wait is done: what the ALB
/// tier needs exists, and it need not wait for the NAT gateway.
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
