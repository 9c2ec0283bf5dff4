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

pub use apply::{apply, run};
pub use desired::{Desired, Image, ImageSource, TRUST_POLICY, desired, iam_names, image_source};
pub use observe::{Observed, observe, observe_desired, observe_targets, resolve_image};
pub use plan::{ComputeStep, plan, teardown_plan};

use three_tier_core::outputs::{AlbOutputs, AlbRefs, ComputeOutputs, NetworkOutputs, NetworkRefs};
use three_tier_core::{AwsContext, Config, Error, Plan, Result, Tier};

/// Deploys the tier alone on the outputs of the network and ALB tiers and returns its own.
pub async fn deploy(
    ctx: &AwsContext,
    config: &Config,
    network: &NetworkOutputs,
    alb: &AlbOutputs,
) -> Result<ComputeOutputs> {
    let desired = desired(config, &network.into(), &alb.into());
    let mut observed = observe_desired(ctx, &config.stack.name, &desired).await?;
    let plan = plan(&desired, &observed, &config.stack.name);
    ctx.progress.line(plan.render().trim_end());
    plan.check_conflicts()?;
    if !plan.steps.is_empty() {
        apply(ctx, &plan).await?;
        observed = observe_desired(ctx, &config.stack.name, &desired).await?;
    }
    outputs(&observed).ok_or_else(|| Error::incomplete(Tier::Compute, &config.stack.name))
}

/// Observes and plans the tier on what it refers to of the network and ALB tiers, which
/// may still be to create.
pub async fn plan_deploy(
    ctx: &AwsContext,
    config: &Config,
    network: &NetworkRefs,
    alb: &AlbRefs,
) -> Result<(Observed, Plan<ComputeStep>)> {
    let desired = desired(config, network, alb);
    let observed = observe_desired(ctx, &config.stack.name, &desired).await?;
    let plan = plan(&desired, &observed, &config.stack.name);
    Ok((observed, plan))
}

/// Plans the tier's teardown; the ALB's app target group, when it still exists, is where
/// the instance is deregistered from.
pub async fn plan_teardown(
    ctx: &AwsContext,
    config: &Config,
    target_group_arn: Option<&str>,
) -> Result<Plan<ComputeStep>> {
    let (role_name, profile_name) = desired::iam_names(config);
    let observed = observe(ctx, &config.stack.name, &role_name, &profile_name, target_group_arn).await?;
    Ok(teardown_plan(&observed, &config.stack.name, target_group_arn))
}

/// The tier's outputs, when the role, profile and a running instance exist.
pub fn outputs(observed: &Observed) -> Option<ComputeOutputs> {
    let instance = observed.instance().filter(|i| i.state == aws_sdk_ec2::types::InstanceStateName::Running)?;
    Some(ComputeOutputs {
        instance_id: instance.id.clone(),
        private_ip: instance.private_ip.clone(),
        role_arn: observed.role.as_ref()?.arn.clone(),
        instance_profile_arn: observed.instance_profile.as_ref()?.arn.clone(),
    })
}

#[cfg(test)]
mod tests;
