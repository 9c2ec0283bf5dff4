//! Runs a compute plan against AWS, riding out IAM's and EC2's eventual consistency.

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, IamInstanceProfileSpecification,
    InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceNetworkInterfaceSpecification,
    InstanceStateName, InstanceType, ResourceType,
};
use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
use three_tier_core::aws::ec2_tag_spec;
use three_tier_core::error::{Answer, gone_is_done, required};
use three_tier_core::wait::Outcome;
use three_tier_core::{AwsContext, AwsResultExt, Created, Error, Result};

use crate::desired::RETIRING_TAG;
use crate::plan::ComputeStep;

const INSTANCE_FAILURE: &str = "`aws ec2 describe-instances` shows its state reason";

/// Makes one attempt at a step (see [`three_tier_core::TierCrate::run`]); `created` holds
/// the ids of what the steps before it made.
pub async fn run(ctx: &AwsContext, step: &ComputeStep, created: &Created) -> Result<Outcome> {
    let iam = &ctx.iam;
    let ec2 = &ctx.ec2;
    match step {
        ComputeStep::CreateRole { name, trust_policy, tags } => {
            iam.create_role()
                .role_name(name)
                .assume_role_policy_document(trust_policy)
                .description("three-tier app instance: Session Manager instead of SSH")
                .set_tags(Some(iam_tags(tags.pairs.iter())))
                .send()
                .await
                .aws("CreateRole")?;
        }
        ComputeStep::TagRole { name, tags } => {
            iam.tag_role().role_name(name).set_tags(Some(iam_tags(tags.iter()))).send().await.aws("TagRole")?;
        }
        ComputeStep::AttachRolePolicy { role, policy_arn } => {
            iam.attach_role_policy().role_name(role).policy_arn(policy_arn).send().await.aws("AttachRolePolicy")?;
        }
        ComputeStep::DetachRolePolicy { role, policy_arn } => {
            let result = iam.detach_role_policy().role_name(role).policy_arn(policy_arn).send().await;
            gone_is_done(result.aws("DetachRolePolicy"))?;
        }
        ComputeStep::PutSecretReadPolicy { role, policy } => {
            // The DB instance's ARN names the account, which the role's own ARN tells.
            let answer = iam.get_role().role_name(role).send().await.aws("GetRole")?;
            let account = required(answer.role().and_then(|r| r.arn().split(':').nth(4)), "GetRole", "Role.Arn")?;
            iam.put_role_policy()
                .role_name(role)
                .policy_name(&policy.name)
                .policy_document(policy.document(account))
                .send()
                .await
                .aws("PutRolePolicy")?;
        }
        ComputeStep::DeleteRolePolicy { role, policy_name } => {
            let result = iam.delete_role_policy().role_name(role).policy_name(policy_name).send().await;
            gone_is_done(result.aws("DeleteRolePolicy"))?;
        }
        ComputeStep::CreateInstanceProfile { name, tags } => {
            iam.create_instance_profile()
                .instance_profile_name(name)
                .set_tags(Some(iam_tags(tags.pairs.iter())))
                .send()
                .await
                .aws("CreateInstanceProfile")?;
        }
        ComputeStep::TagInstanceProfile { name, tags } => {
            iam.tag_instance_profile()
                .instance_profile_name(name)
                .set_tags(Some(iam_tags(tags.iter())))
                .send()
                .await
                .aws("TagInstanceProfile")?;
        }
        ComputeStep::AddRoleToInstanceProfile { profile, role } => {
            iam.add_role_to_instance_profile()
                .instance_profile_name(profile)
                .role_name(role)
                .send()
                .await
                .aws("AddRoleToInstanceProfile")?;
        }
        ComputeStep::RemoveRoleFromInstanceProfile { profile, role } => {
            let result =
                iam.remove_role_from_instance_profile().instance_profile_name(profile).role_name(role).send().await;
            gone_is_done(result.aws("RemoveRoleFromInstanceProfile"))?;
        }
        ComputeStep::RunInstance {
            key,
            name,
            image,
            instance_type,
            subnet,
            security_group,
            root_volume_gib,
            instance_profile,
            user_data,
            tags,
        } => {
            let (subnet_id, security_group_id) = (created.resolve(subnet)?, created.resolve(security_group)?);
            let volume_gib = i32::try_from(*root_volume_gib).unwrap_or(i32::MAX);
            let answer = ec2
                .run_instances()
                .image_id(&image.id)
                .instance_type(InstanceType::from(instance_type.as_str()))
                .min_count(1)
                .max_count(1)
                .network_interfaces(
                    InstanceNetworkInterfaceSpecification::builder()
                        .device_index(0)
                        .subnet_id(&subnet_id)
                        .groups(&security_group_id)
                        .associate_public_ip_address(false)
                        .delete_on_termination(true)
                        .build(),
                )
                .iam_instance_profile(IamInstanceProfileSpecification::builder().name(instance_profile).build())
                .metadata_options(
                    InstanceMetadataOptionsRequest::builder()
                        .http_endpoint(InstanceMetadataEndpointState::Enabled)
                        .http_tokens(HttpTokensState::Required)
                        // One hop: the instance's credentials (which may read the
                        // database's secret) stay out of reach of its containers.
                        .http_put_response_hop_limit(1)
                        .build(),
                )
                .block_device_mappings(
                    BlockDeviceMapping::builder()
                        .device_name(&image.root_device)
                        .ebs(
                            EbsBlockDevice::builder()
                                .encrypted(true)
                                .volume_type(crate::desired::ROOT_VOLUME_TYPE)
                                .volume_size(volume_gib)
                                .delete_on_termination(true)
                                .build(),
                        )
                        .build(),
                )
                .user_data(aws_smithy_types::base64::encode(user_data))
                .tag_specifications(ec2_tag_spec(ResourceType::Instance, tags))
                .tag_specifications(ec2_tag_spec(ResourceType::Volume, tags))
                .send()
                .await
                .aws("RunInstances");
            let answer = match answer {
                // A profile made moments ago may be unknown to EC2 yet (see the step's wait).
                Err(err) if err.is(Answer::ProfilePropagating) => return Ok(Outcome::NotYet(err.brief())),
                other => other?,
            };
            let id = required(answer.instances().first().and_then(|i| i.instance_id()), "RunInstances", "InstanceId")?
                .to_owned();
            ctx.progress.line(format!("    instance {name} is {id}"));
            created.insert(key, id);
        }
        ComputeStep::MoveInstanceProfile { id, to, .. } => {
            let answer = ec2
                .describe_iam_instance_profile_associations()
                .filters(Filter::builder().name("instance-id").values(id).build())
                .filters(Filter::builder().name("state").values("associated").build())
                .send()
                .await
                .aws("DescribeIamInstanceProfileAssociations")?;
            let association = required(
                answer.iam_instance_profile_associations().first().and_then(|a| a.association_id()),
                "DescribeIamInstanceProfileAssociations",
                "AssociationId",
            )?;
            let profile = IamInstanceProfileSpecification::builder().name(to).build();
            let result = ec2
                .replace_iam_instance_profile_association()
                .association_id(association)
                .iam_instance_profile(profile)
                .send()
                .await
                .aws("ReplaceIamInstanceProfileAssociation");
            // A profile created seconds ago can be unknown to EC2, as at RunInstances.
            return Outcome::unless_refused(result.map(drop), |err| err.is(Answer::ProfilePropagating));
        }
        ComputeStep::WaitInstanceStopped { id, .. } => {
            return Ok(match instance_state(ctx, id).await? {
                Some(InstanceStateName::Stopped) => Outcome::Done(()),
                Some(InstanceStateName::Stopping) => Outcome::NotYet("stopping".into()),
                other => Outcome::Failed {
                    state: other.as_ref().map_or("gone", InstanceStateName::as_str).to_owned(),
                    look: INSTANCE_FAILURE,
                },
            });
        }
        ComputeStep::StartInstance { id, .. } => {
            ec2.start_instances().instance_ids(id).send().await.aws("StartInstances")?;
        }
        ComputeStep::SetInstanceSecurityGroups { id, security_groups, .. } => {
            ec2.modify_instance_attribute()
                .instance_id(id)
                .set_groups(Some(created.resolve_all(security_groups)?))
                .send()
                .await
                .aws("ModifyInstanceAttribute")?;
        }
        ComputeStep::RequireImdsV2 { id, .. } => {
            ec2.modify_instance_metadata_options()
                .instance_id(id)
                .http_tokens(HttpTokensState::Required)
                .http_endpoint(InstanceMetadataEndpointState::Enabled)
                .send()
                .await
                .aws("ModifyInstanceMetadataOptions")?;
        }
        ComputeStep::TagInstance { id, tags, .. } => {
            let tags = tags.iter().map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build()).collect();
            ec2.create_tags().resources(id).set_tags(Some(tags)).send().await.aws("CreateTags")?;
        }
        ComputeStep::WaitInstanceRunning { instance, .. } => {
            return Ok(match instance_state(ctx, &created.resolve(instance)?).await? {
                Some(InstanceStateName::Running) => Outcome::Done(()),
                // A new instance can be unknown to EC2 for a few seconds.
                Some(InstanceStateName::Pending) | None => Outcome::NotYet("pending".into()),
                Some(other) => Outcome::Failed { state: other.as_str().to_owned(), look: INSTANCE_FAILURE },
            });
        }
        ComputeStep::RegisterTarget { target_group, instance, port, .. } => {
            let target = TargetDescription::builder().id(created.resolve(instance)?).port(i32::from(*port)).build();
            let result = ctx
                .elbv2
                .register_targets()
                .target_group_arn(created.resolve(target_group)?)
                .targets(target)
                .send()
                .await
                .aws("RegisterTargets");
            return Outcome::unless_refused(result.map(drop), |err| err.is(Answer::UnknownTarget));
        }
        ComputeStep::DeregisterTarget { target_group_arn, instance_id, port, .. }
        | ComputeStep::DrainTarget { target_group_arn, instance_id, port, .. } => {
            let target = TargetDescription::builder().id(instance_id).port(i32::from(*port)).build();
            let result = ctx.elbv2.deregister_targets().target_group_arn(target_group_arn).targets(target).send().await;
            match result.aws("DeregisterTargets") {
                Err(err) if err.is(Answer::UnknownTarget) => {}
                other => gone_is_done(other)?,
            }
        }
        ComputeStep::RetireInstance { id, reasons, .. } => {
            // A tag value holds 256 characters at most: the reasons, cut to fit.
            let why: String = reasons.join("; ").chars().take(256).collect();
            let tag = aws_sdk_ec2::types::Tag::builder().key(RETIRING_TAG).value(why).build();
            ec2.create_tags().resources(id).tags(tag).send().await.aws("CreateTags")?;
        }
        ComputeStep::WaitTargetHealthy { target_group, instance, port, .. } => {
            let state = target_state(ctx, &created.resolve(target_group)?, &created.resolve(instance)?, *port).await?;
            return Ok(match state.as_deref() {
                Some("healthy") => Outcome::Done(()),
                Some(other) => Outcome::NotYet(other.to_owned()),
                None => Outcome::NotYet("not registered yet".into()),
            });
        }
        ComputeStep::WaitTargetDrained { target_group_arn, instance_id, port, .. } => {
            return Ok(match target_state(ctx, target_group_arn, instance_id, *port).await?.as_deref() {
                None | Some("unused") => Outcome::Done(()),
                Some(other) => Outcome::NotYet(other.to_owned()),
            });
        }
        ComputeStep::TerminateInstance { id, .. } => {
            // "Not found" is "not yet" here (see the step's wait): the id came from a describe.
            let result = ec2.terminate_instances().instance_ids(id).send().await.aws("TerminateInstances");
            return Outcome::unless_refused(result.map(drop), Error::is_not_found);
        }
        ComputeStep::WaitInstanceTerminated { id, .. } => {
            return Ok(match instance_state(ctx, id).await? {
                Some(InstanceStateName::Terminated) | None => Outcome::Done(()),
                Some(other) => Outcome::NotYet(other.as_str().to_owned()),
            });
        }
        ComputeStep::DeleteInstanceProfile { name } => {
            let result = iam.delete_instance_profile().instance_profile_name(name).send().await;
            gone_is_done(result.aws("DeleteInstanceProfile"))?;
        }
        ComputeStep::DeleteRole { name } => {
            gone_is_done(iam.delete_role().role_name(name).send().await.aws("DeleteRole"))?;
        }
    }
    Ok(Outcome::Done(()))
}

fn iam_tags<'t>(tags: impl Iterator<Item = (&'t String, &'t String)>) -> Vec<aws_sdk_iam::types::Tag> {
    tags.map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build().expect("key and value are set"))
        .collect()
}

/// A target's state in a group (`initial`, `healthy`, `draining`, `unused`, ...); `None`
/// when the group does not list it, or ELB does not know the instance (any more).
async fn target_state(ctx: &AwsContext, group: &str, instance: &str, port: u16) -> Result<Option<String>> {
    let target = TargetDescription::builder().id(instance).port(i32::from(port)).build();
    let answer = ctx.elbv2.describe_target_health().target_group_arn(group).targets(target).send().await;
    match answer.aws("DescribeTargetHealth") {
        Ok(answer) => Ok(answer
            .target_health_descriptions()
            .iter()
            .find(|d| d.target().and_then(|t| t.id()) == Some(instance))
            .and_then(|d| d.target_health())
            .and_then(|h| h.state())
            .map(|s| s.as_str().to_owned())),
        Err(err) if err.is(Answer::UnknownTarget) => Ok(None),
        Err(err) => Err(err),
    }
}

/// An instance's state; `None` when EC2 does not know it (yet, or any more).
async fn instance_state(ctx: &AwsContext, id: &str) -> Result<Option<InstanceStateName>> {
    match ctx.ec2.describe_instances().instance_ids(id).send().await.aws("DescribeInstances") {
        Ok(answer) => Ok(answer
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .next()
            .and_then(|i| i.state())
            .and_then(|s| s.name())
            .cloned()),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err),
    }
}
