//! The compute tier (SPEC.md, "Compute tier"): the Amazon Linux 2023 app instances (the
//! seed's one by default) in the app subnets, each running the seed's nginx container;
//! their IAM role and instance profile (Session Manager instead of SSH); and their
//! registrations in the ALB's target groups.
//!
//! `desired` and `plan` are pure; `observe` and `apply` talk to AWS.

mod apply;
mod desired;
mod observe;
mod plan;
pub mod user_data;

pub use apply::run;
pub use desired::{
    Desired, Image, ImageSource, InstanceSpec, RETIRING_TAG, ROOT_VOLUME_TYPE, TRUST_POLICY, desired, iam_names,
    image_source, instance_key,
};
pub use observe::{Observed, ObservedInstance, observe, resolve_image};
pub use plan::{ComputeStep, plan, replacement_reasons, teardown_plan};

use three_tier_core::outputs::{AlbRefs, ComputeOutputs, InstanceOutputs, NetworkRefs};
use three_tier_core::{AwsContext, Config, Created, Plan, Result, Tier, TierCrate};

/// The compute tier, as the stack drives it.
pub struct Compute;

impl TierCrate for Compute {
    const TIER: Tier = Tier::Compute;
    const READS: &'static [&'static str] = &[
        "iam:GetRole",
        "iam:ListAttachedRolePolicies",
        "iam:ListRolePolicies",
        "iam:GetRolePolicy",
        "iam:GetInstanceProfile",
        "ec2:DescribeInstances",
        "ec2:DescribeInstanceAttribute",
        "ec2:DescribeRegions",
        "ec2:DescribeIamInstanceProfileAssociations",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTargetHealth",
        "ssm:GetParameter",
        "ec2:DescribeImages",
        "ec2:DescribeVolumes",
    ];
    type Inputs = (NetworkRefs, AlbRefs);
    type Observed = Observed;
    type Desired = Desired;
    type Step = ComputeStep;
    type Outputs = ComputeOutputs;

    async fn observe(ctx: &AwsContext, config: &Config) -> Result<Observed> {
        observe(ctx, config).await
    }

    /// The AMI a launch would use, read when an instance the config asks for is missing or
    /// is to be replaced.
    async fn prepare_deploy(ctx: &AwsContext, desired: &Desired, observed: &mut Observed) -> Result<()> {
        let launches = |spec: &InstanceSpec| match observed.keyed(&spec.key)[..] {
            [] => true,
            [instance] => !replacement_reasons(spec, instance, observed).is_empty(),
            _ => false,
        };
        if let Some(spec) = desired.instances.iter().find(|spec| launches(spec)) {
            observed.image = Some(resolve_image(ctx, &spec.image).await?);
        }
        Ok(())
    }

    fn desired(config: &Config, (network, alb): &(NetworkRefs, AlbRefs)) -> Desired {
        desired(config, network, alb)
    }

    fn plan(desired: &Desired, observed: &Observed) -> Plan<ComputeStep> {
        plan(desired, observed)
    }

    fn teardown(_: &Config, observed: &Observed) -> Plan<ComputeStep> {
        teardown_plan(observed)
    }

    fn outputs(config: &Config, observed: &Observed) -> Option<ComputeOutputs> {
        outputs(config, observed)
    }

    async fn run(ctx: &AwsContext, step: &ComputeStep, created: &Created) -> Result<three_tier_core::wait::Outcome> {
        run(ctx, step, created).await
    }
}

/// The tier's outputs, when the role, profile and every instance the config asks for,
/// running, exist. An instance deployed before IAM names carried the region runs with the
/// legacy ones until a deploy moves it: those are its role and profile until then.
pub fn outputs(config: &Config, observed: &Observed) -> Option<ComputeOutputs> {
    let running = |index: usize| {
        let key = instance_key(index);
        let instance = match observed.keyed(&key)[..] {
            [only] if only.state == aws_sdk_ec2::types::InstanceStateName::Running => only,
            _ => return None,
        };
        Some((key, instance))
    };
    let instances: Vec<(String, &ObservedInstance)> =
        (0..config.compute.instances as usize).map(running).collect::<Option<_>>()?;
    let (_, first) = instances.first()?;
    let legacy = observed
        .legacy
        .as_ref()
        .filter(|l| l.profile.as_ref().is_some_and(|p| first.instance_profile_arn.as_ref() == Some(&p.arn)));
    let (role, profile) = match legacy {
        Some(legacy) => (legacy.role.as_ref()?, legacy.profile.as_ref()?),
        None => (observed.role.as_ref()?, observed.instance_profile.as_ref()?),
    };
    Some(ComputeOutputs {
        instances: instances
            .into_iter()
            .map(|(key, i)| (key, InstanceOutputs { id: i.id.clone(), private_ip: i.private_ip.clone() }))
            .collect(),
        role_arn: role.arn.clone(),
        instance_profile_arn: profile.arn.clone(),
    })
}

#[cfg(test)]
mod tests;
