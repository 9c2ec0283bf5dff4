//! The compute tier (SPEC.md, "Compute tier"): one Amazon Linux 2023 instance in the app
//! subnet running the seed's nginx container, its IAM role and instance profile (Session
//! Manager instead of SSH), and its registration in the ALB's app target group.
//!
//! `desired` and `plan` are pure; `observe` and `apply` talk to AWS.

mod apply;
mod desired;
mod observe;
mod plan;
pub mod user_data;

pub use apply::apply;
pub use desired::{Desired, ImageSource, TRUST_POLICY, desired, iam_names};
pub use observe::{Observed, observe, observe_desired};
pub use plan::{ComputeStep, plan, teardown_plan};

use three_tier_core::outputs::{AlbOutputs, ComputeOutputs, NetworkOutputs};
use three_tier_core::{AwsContext, Config, Error, Plan, Result, Tier};

/// Deploys the tier on the outputs of the network and ALB tiers and returns its own.
pub async fn deploy(ctx: &AwsContext, config: &Config, network: &NetworkOutputs, alb: &AlbOutputs) -> Result<ComputeOutputs> {
    let (mut observed, plan) = plan_deploy(ctx, config, network, Some(alb)).await?;
    ctx.progress.line(plan.render().trim_end());
    plan.check_conflicts()?;
    if !plan.steps.is_empty() {
        apply(ctx, &plan).await?;
        let desired = desired(config, network, alb);
        observed = observe_desired(ctx, &config.stack.name, &desired).await?;
    }
    outputs(&observed).ok_or_else(|| Error::incomplete(Tier::Compute, &config.stack.name))
}

/// Observes and plans the tier. Without the ALB tier's outputs (a plan for an empty
/// account), the plan registers in a target group still to be created.
pub async fn plan_deploy(
    ctx: &AwsContext,
    config: &Config,
    network: &NetworkOutputs,
    alb: Option<&AlbOutputs>,
) -> Result<(Observed, Plan<ComputeStep>)> {
    let placeholder = AlbOutputs::placeholder();
    let desired = desired(config, network, alb.unwrap_or(&placeholder));
    let target_group = alb.map(|alb| alb.app_target_group_arn.as_str());
    let observed = observe(ctx, &config.stack.name, &desired.role.name, &desired.instance_profile.name, target_group).await?;
    let plan = plan(&desired, &observed, &config.stack.name);
    Ok((observed, plan))
}

/// Plans the tier's teardown; the ALB's app target group, when it still exists, is where
/// the instance is deregistered from.
pub async fn plan_teardown(ctx: &AwsContext, config: &Config, target_group_arn: Option<&str>) -> Result<Plan<ComputeStep>> {
    let (role_name, profile_name) = desired::iam_names(config);
    let observed = observe(ctx, &config.stack.name, &role_name, &profile_name, target_group_arn).await?;
    Ok(teardown_plan(&observed, &config.stack.name, target_group_arn))
}

/// The tier's outputs, when the role, profile and a running instance exist.
pub fn outputs(observed: &Observed) -> Option<ComputeOutputs> {
    let instance = observed.instance().filter(|i| i.state == "running")?;
    Some(ComputeOutputs {
        instance_id: instance.id.clone(),
        private_ip: instance.private_ip.clone(),
        role_arn: observed.role.as_ref()?.arn.clone(),
        instance_profile_arn: observed.instance_profile.as_ref()?.arn.clone(),
    })
}

#[cfg(test)]
mod tests;
