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

pub use apply::{apply, run};
pub use desired::{Desired, desired};
pub use observe::{Observed, observe};
pub use plan::{NetworkStep, RouteTarget, VpcAttribute, plan, teardown_plan};
pub use rules::{IngressRule, Source};

use aws_sdk_ec2::types::NatGatewayState;
use three_tier_core::outputs::{NetworkOutputs, NetworkRefs};
use three_tier_core::{
    AwsContext, Config, Error, Plan, Ref, Result, RouteTableRole, SecurityGroupRole, SubnetRole, Tier,
};

/// Deploys the network tier alone: observe, plan, show the plan, apply it, and return
/// the outputs. On a deployed stack it makes read calls only.
pub async fn deploy(ctx: &AwsContext, config: &Config) -> Result<NetworkOutputs> {
    let (mut observed, plan) = plan_deploy(ctx, config).await?;
    ctx.progress.line(plan.render().trim_end());
    plan.check_conflicts()?;
    if !plan.steps.is_empty() {
        apply(ctx, &plan).await?;
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

/// What the other tiers refer to: the ids of what exists, the keys of what a deploy plan
/// creates (the same choice [`plan`] makes, so the refs match its steps).
pub fn refs(observed: &Observed) -> NetworkRefs {
    let planned_or = |found: Option<&String>, key: String| found.map_or_else(|| Ref::planned(key), Ref::existing);
    NetworkRefs {
        vpc: planned_or(observed.vpc().map(|v| &v.id), "vpc".into()),
        subnets: SubnetRole::ALL
            .iter()
            .map(|&role| (role, planned_or(observed.subnet(role).map(|s| &s.id), format!("subnet/{role}"))))
            .collect(),
        security_groups: SecurityGroupRole::ALL
            .iter()
            .map(|&role| {
                (role, planned_or(observed.security_group(role).map(|g| &g.id), format!("security-group/{role}")))
            })
            .collect(),
    }
}

/// The tier's outputs, when every resource of it exists and the NAT gateway is available.
pub fn outputs(observed: &Observed) -> Option<NetworkOutputs> {
    let subnet_ids: BTreeMap<_, _> =
        SubnetRole::ALL.iter().map(|&r| Some((r, observed.subnet(r)?.id.clone()))).collect::<Option<_>>()?;
    let route_table_ids: BTreeMap<_, _> =
        RouteTableRole::ALL.iter().map(|&r| Some((r, observed.route_table(r)?.id.clone()))).collect::<Option<_>>()?;
    let security_group_ids: BTreeMap<_, _> = SecurityGroupRole::ALL
        .iter()
        .map(|&r| Some((r, observed.security_group(r)?.id.clone())))
        .collect::<Option<_>>()?;
    let nat = observed.nat_gateway().filter(|n| n.state == NatGatewayState::Available)?;
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
