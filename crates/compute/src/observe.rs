//! What of the compute tier exists: the IAM role and instance profile by name (IAM names
//! are unique per account) with their tags checked, the instance by the stack's tags, and
//! the targets of the app target group.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, HttpTokensState, InstanceStateName};
use three_tier_core::error::{Answer, required};
use three_tier_core::naming::{REGION_TAG, ROLE_TAG, STACK_TAG, TIER_TAG, belongs_to, ours};
use three_tier_core::{AwsContext, AwsResultExt, Config, Error, Result, Tier};

use crate::desired::{Image, ImageSource, RETIRING_TAG, iam_names, is_instance_key, legacy_iam_names};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The AMI a launch would use: read only when no instance stands.
    pub image: Option<Image>,
    pub role: Option<ObservedRole>,
    pub instance_profile: Option<ObservedInstanceProfile>,
    /// The stack's instances that are not terminated or being terminated.
    pub instances: Vec<ObservedInstance>,
    /// The ALB tier's target groups that exist (the app's, each listener rule's), each
    /// with the targets registered in it.
    pub target_groups: Vec<ObservedTargetGroup>,
    /// The role's and the profile's names when another holds them (IAM names are unique
    /// per account; a role of the same stack in another region is another's): such a role
    /// or profile is not read into the fields above.
    pub foreign_names: Vec<String>,
    /// The stack's role and profile under the names used before they carried the region,
    /// when either is still there.
    pub legacy: Option<LegacyIam>,
}

/// The role and instance profile a stack deployed before IAM names carried the region
/// holds (`<stack>-app-role`, `<stack>-app-profile`). The same stack name in another
/// region may run its instance with them too: IAM is account-wide.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LegacyIam {
    pub role: Option<ObservedRole>,
    pub profile: Option<ObservedInstanceProfile>,
    /// The instances other than this stack's (in this region) associated with the legacy
    /// profile, in any region, as (region, instance id): while there is one, the legacy
    /// role and profile stay.
    pub users: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedRole {
    pub arn: String,
    pub attached_policies: Vec<String>,
    /// Inline policies by name, with their (URL-encoded) documents.
    pub inline_policies: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedInstanceProfile {
    pub arn: String,
    pub roles: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedInstance {
    /// Its key, from its role tag; an instance whose tag was lost is taken for the first
    /// (`instance`), the one instance stacks had before there could be more.
    pub key: String,
    /// Marked for replacement (its `three-tier:retiring` tag): a new instance takes its
    /// key, and it drains and goes once that one is a healthy target.
    pub retiring: bool,
    pub id: String,
    /// The AMI it was launched from.
    pub image_id: Option<String>,
    /// `pending`, `running`, `stopping` or `stopped`.
    pub state: InstanceStateName,
    pub subnet_id: String,
    pub security_groups: Vec<String>,
    pub instance_type: String,
    pub private_ip: String,
    pub public_ip: Option<String>,
    pub instance_profile_arn: Option<String>,
    pub http_tokens: Option<HttpTokensState>,
    /// The user data it was launched with, decoded (cloud-init runs it at first boot only).
    pub user_data: Option<String>,
    /// Its root volume, which bills by the GB-month.
    pub root_volume: Option<RootVolume>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootVolume {
    pub id: String,
    pub volume_type: String,
    pub gib: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedTargetGroup {
    pub name: String,
    pub arn: String,
    pub targets: Vec<ObservedTarget>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedTarget {
    pub id: String,
    pub port: u16,
    pub health: String,
}

impl Observed {
    /// The stack's instances keyed `key`, but one being replaced: one, or none, or (by
    /// hand) more.
    pub fn keyed(&self, key: &str) -> Vec<&ObservedInstance> {
        self.instances.iter().filter(|i| i.key == key && !i.retiring).collect()
    }

    /// The instances keyed `key` that a replacement is to drain and terminate.
    pub fn retiring(&self, key: &str) -> Vec<&ObservedInstance> {
        self.instances.iter().filter(|i| i.key == key && i.retiring).collect()
    }

    /// The targets registered in the target group `arn`.
    pub fn targets_of(&self, arn: &str) -> &[ObservedTarget] {
        self.target_groups.iter().find(|g| g.arn == arn).map_or(&[], |g| &g.targets)
    }
}

/// Reads the tier's state, independent reads together: the role and the instance profile
/// by their names (from the config), the instances by the stack's tags, and the targets
/// of the ALB tier's app target group, found by its name.
pub async fn observe(ctx: &AwsContext, config: &Config) -> Result<Observed> {
    let stack = &config.stack.name;
    let (role_name, profile_name) = iam_names(config);
    let group_names = std::iter::once(config.app_target_group_name())
        .chain(config.alb.rules.iter().map(|rule| config.names().account_unique(&rule.target_group_name)));
    let targets = async {
        let mut groups = Vec::new();
        for name in group_names {
            let Some(arn) = target_group_arn(ctx, &name).await? else { continue };
            let targets = observe_targets(ctx, &arn).await?;
            groups.push(ObservedTargetGroup { name, arn, targets });
        }
        Ok(groups)
    };
    let (legacy_role_name, legacy_profile_name) = legacy_iam_names(config);
    let iam = ctx.both(
        ctx.both(observe_role(ctx, &role_name), observe_profile(ctx, &profile_name)),
        ctx.both(observe_role(ctx, &legacy_role_name), observe_profile(ctx, &legacy_profile_name)),
    );
    let (((role, instance_profile), (legacy_role, legacy_profile)), (instances, target_groups)) =
        ctx.both(iam, ctx.both(observe_instances(ctx, stack), targets)).await?;
    let mut foreign_names = Vec::new();
    let role = ours_here(role, |r| &r.tags, config, &role_name, &mut foreign_names);
    let instance_profile = ours_here(instance_profile, |p| &p.tags, config, &profile_name, &mut foreign_names);
    let legacy = legacy(ctx, config, legacy_role, legacy_profile, &instances).await?;
    Ok(Observed { image: None, role, instance_profile, instances, target_groups, foreign_names, legacy })
}

/// What `ours` keeps of an IAM resource, unless its region tag names another region: the
/// same stack name in another region is another stack.
fn ours_here<T>(
    found: Option<T>,
    tags: impl Fn(&T) -> &BTreeMap<String, String>,
    config: &Config,
    name: &str,
    foreign: &mut Vec<String>,
) -> Option<T> {
    let found = ours(found, &tags, &config.stack.name, name, foreign)?;
    if tags(&found).get(REGION_TAG).is_some_and(|region| *region != config.stack.region) {
        foreign.push(name.to_owned());
        return None;
    }
    Some(found)
}

/// The stack's role and profile under the names used before they carried the region (names
/// another holds are not the stack's, and left alone), and who else runs with that profile
/// but the stack's own `instances` here.
async fn legacy(
    ctx: &AwsContext,
    config: &Config,
    role: Option<ObservedRole>,
    profile: Option<ObservedInstanceProfile>,
    instances: &[ObservedInstance],
) -> Result<Option<LegacyIam>> {
    let own = |tags: &BTreeMap<String, String>| belongs_to(tags, &config.stack.name, Some(Tier::Compute));
    let role = role.filter(|r| own(&r.tags));
    let profile = profile.filter(|p| own(&p.tags));
    if role.is_none() && profile.is_none() {
        return Ok(None);
    }
    let mut users = match &profile {
        // Boxed: the SDK's paginated futures nest deep, beyond a worker thread's stack.
        Some(profile) => Box::pin(profile_users(ctx, &profile.arn)).await?,
        None => Vec::new(),
    };
    users.retain(|(region, id)| !(*region == ctx.region && instances.iter().any(|i| i.id == *id)));
    Ok(Some(LegacyIam { role, profile, users }))
}

/// The instances associated with the instance profile `arn` in every region the account
/// has enabled, as (region, instance id).
async fn profile_users(ctx: &AwsContext, arn: &str) -> Result<Vec<(String, String)>> {
    let regions = ctx.ec2.describe_regions().send().await.aws("DescribeRegions")?;
    let mut users = Vec::new();
    for region in regions.regions().iter().filter_map(|r| r.region_name()) {
        let ec2 = aws_sdk_ec2::Client::from_conf(
            ctx.ec2.config().to_builder().region(aws_sdk_ec2::config::Region::new(region.to_owned())).build(),
        );
        let mut pages = ec2
            .describe_iam_instance_profile_associations()
            .filters(Filter::builder().name("state").values("associated").values("associating").build())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.aws("DescribeIamInstanceProfileAssociations")?;
            for association in page.iam_instance_profile_associations() {
                let instance =
                    required(association.instance_id(), "DescribeIamInstanceProfileAssociations", "InstanceId")?;
                if association.iam_instance_profile().and_then(|p| p.arn()) == Some(arn) {
                    users.push((region.to_owned(), instance.to_owned()));
                }
            }
        }
    }
    Ok(users)
}

/// The ARN of the target group of this name, if there is one.
async fn target_group_arn(ctx: &AwsContext, name: &str) -> Result<Option<String>> {
    match ctx.elbv2.describe_target_groups().names(name).send().await.aws("DescribeTargetGroups") {
        Ok(answer) => Ok(answer.target_groups().first().and_then(|g| g.target_group_arn()).map(str::to_owned)),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err),
    }
}

async fn observe_role(ctx: &AwsContext, role_name: &str) -> Result<Option<ObservedRole>> {
    let iam = &ctx.iam;
    let answer = match iam.get_role().role_name(role_name).send().await.aws("GetRole") {
        Ok(answer) => answer,
        Err(err) if err.is_not_found() => return Ok(None),
        Err(err) => return Err(err),
    };
    let role = required(answer.role(), "GetRole", "Role")?;
    let attached = async {
        let answer =
            iam.list_attached_role_policies().role_name(role_name).send().await.aws("ListAttachedRolePolicies")?;
        Ok(answer.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_owned)).collect())
    };
    let inline = async {
        let mut inline_policies = BTreeMap::new();
        let names = iam.list_role_policies().role_name(role_name).send().await.aws("ListRolePolicies")?;
        for name in names.policy_names() {
            let policy =
                iam.get_role_policy().role_name(role_name).policy_name(name).send().await.aws("GetRolePolicy")?;
            inline_policies.insert(name.clone(), policy.policy_document().to_owned());
        }
        Ok(inline_policies)
    };
    let (attached_policies, inline_policies) = ctx.both(attached, inline).await?;
    Ok(Some(ObservedRole {
        arn: role.arn().to_owned(),
        inline_policies,
        attached_policies,
        tags: role.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect(),
    }))
}

async fn observe_profile(ctx: &AwsContext, profile_name: &str) -> Result<Option<ObservedInstanceProfile>> {
    match ctx.iam.get_instance_profile().instance_profile_name(profile_name).send().await.aws("GetInstanceProfile") {
        Ok(answer) => Ok(answer.instance_profile().map(|profile| ObservedInstanceProfile {
            arn: profile.arn().to_owned(),
            roles: profile.roles().iter().map(|r| r.role_name().to_owned()).collect(),
            tags: profile.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect(),
        })),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err),
    }
}

async fn observe_instances(ctx: &AwsContext, stack: &str) -> Result<Vec<ObservedInstance>> {
    let answer = ctx
        .ec2
        .describe_instances()
        .filters(Filter::builder().name(format!("tag:{STACK_TAG}")).values(stack).build())
        .filters(Filter::builder().name(format!("tag:{TIER_TAG}")).values(Tier::Compute.as_str()).build())
        .filters(
            Filter::builder()
                .name("instance-state-name")
                .values("pending")
                .values("running")
                .values("stopping")
                .values("stopped")
                .build(),
        )
        .send()
        .await
        .aws("DescribeInstances")?;
    let mut instances: Vec<ObservedInstance> = answer
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|instance| {
            let tags: BTreeMap<String, String> = instance
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
                .collect();
            Ok(ObservedInstance {
                key: tags
                    .get(ROLE_TAG)
                    .filter(|role| is_instance_key(role))
                    .cloned()
                    .unwrap_or_else(|| "instance".into()),
                retiring: tags.contains_key(RETIRING_TAG),
                id: required(instance.instance_id(), "DescribeInstances", "InstanceId")?.to_owned(),
                image_id: instance.image_id().map(str::to_owned),
                state: required(instance.state().and_then(|s| s.name()), "DescribeInstances", "State.Name")?.clone(),
                subnet_id: required(instance.subnet_id(), "DescribeInstances", "SubnetId")?.to_owned(),
                // The primary interface's groups are the instance's groups. (moto 5.2 leaves the
                // instance-level list empty for instances launched with an interface spec.)
                security_groups: instance
                    .network_interfaces()
                    .iter()
                    .find(|ni| ni.attachment().and_then(|a| a.device_index()) == Some(0))
                    .map(|ni| ni.groups().iter().filter_map(|g| g.group_id().map(str::to_owned)).collect())
                    .unwrap_or_else(|| {
                        instance.security_groups().iter().filter_map(|g| g.group_id().map(str::to_owned)).collect()
                    }),
                instance_type: required(instance.instance_type(), "DescribeInstances", "InstanceType")?
                    .as_str()
                    .to_owned(),
                private_ip: required(instance.private_ip_address(), "DescribeInstances", "PrivateIpAddress")?
                    .to_owned(),
                public_ip: instance.public_ip_address().map(str::to_owned),
                instance_profile_arn: instance.iam_instance_profile().and_then(|p| p.arn()).map(str::to_owned),
                http_tokens: instance.metadata_options().and_then(|m| m.http_tokens()).cloned(),
                user_data: None,
                root_volume: None,
                tags,
            })
        })
        .collect::<Result<_>>()?;
    instances.sort_by(|a, b| (&a.key, &a.id).cmp(&(&b.key, &b.id)));
    // Each one's root volume, all in one read, beside the reads of their user data.
    let root_ids: BTreeMap<&str, &str> = answer
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|instance| {
            let root = instance.root_device_name()?;
            let mapping = instance.block_device_mappings().iter().find(|m| m.device_name() == Some(root))?;
            Some((instance.instance_id()?, mapping.ebs()?.volume_id()?))
        })
        .collect();
    let ids: Vec<String> = instances.iter().map(|i| i.id.clone()).collect();
    let user_data_of_each = async {
        let mut read = Vec::new();
        for id in &ids {
            read.push(user_data(ctx, id).await?);
        }
        Ok(read)
    };
    let (user_data, volumes) = ctx.both(user_data_of_each, root_volumes(ctx, &root_ids)).await?;
    for (instance, user_data) in instances.iter_mut().zip(user_data) {
        instance.user_data = user_data;
        instance.root_volume = root_ids.get(instance.id.as_str()).and_then(|id| volumes.get(*id)).cloned();
    }
    Ok(instances)
}

/// The root volumes of these instances (by instance id, the volume's id), by volume id.
async fn root_volumes(ctx: &AwsContext, root_ids: &BTreeMap<&str, &str>) -> Result<BTreeMap<String, RootVolume>> {
    let mut volumes = BTreeMap::new();
    if root_ids.is_empty() {
        return Ok(volumes);
    }
    let ids = root_ids.values().map(|id| (*id).to_owned()).collect();
    let answer = ctx.ec2.describe_volumes().set_volume_ids(Some(ids)).send().await.aws("DescribeVolumes")?;
    for volume in answer.volumes() {
        let id = required(volume.volume_id(), "DescribeVolumes", "VolumeId")?.to_owned();
        let volume_type = required(volume.volume_type(), "DescribeVolumes", "VolumeType")?.as_str().to_owned();
        let gib = required(volume.size().and_then(|gib| u32::try_from(gib).ok()), "DescribeVolumes", "Size")?;
        volumes.insert(id.clone(), RootVolume { id, volume_type, gib });
    }
    Ok(volumes)
}

/// The user data `instance` was launched with, decoded.
async fn user_data(ctx: &AwsContext, instance: &str) -> Result<Option<String>> {
    let answer = ctx
        .ec2
        .describe_instance_attribute()
        .instance_id(instance)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .aws("DescribeInstanceAttribute")?;
    Ok(answer
        .user_data()
        .and_then(|d| d.value())
        .and_then(|encoded| aws_smithy_types::base64::decode(encoded).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
}

/// The targets registered in a target group.
async fn observe_targets(ctx: &AwsContext, arn: &str) -> Result<Vec<ObservedTarget>> {
    let answer = ctx.elbv2.describe_target_health().target_group_arn(arn).send().await.aws("DescribeTargetHealth")?;
    let mut targets: Vec<ObservedTarget> = answer
        .target_health_descriptions()
        .iter()
        .map(|description| {
            let target = required(description.target(), "DescribeTargetHealth", "Target")?;
            let port = target.port().and_then(|p| u16::try_from(p).ok());
            let health = description.target_health().and_then(|h| h.state());
            Ok(ObservedTarget {
                id: required(target.id(), "DescribeTargetHealth", "Target.Id")?.to_owned(),
                port: required(port, "DescribeTargetHealth", "Target.Port")?,
                health: required(health, "DescribeTargetHealth", "TargetHealth.State")?.as_str().to_owned(),
            })
        })
        .collect::<Result<_>>()?;
    targets.sort_by(|a, b| (&a.id, a.port).cmp(&(&b.id, b.port)));
    Ok(targets)
}

/// The AMI `source` names now, with its root device and snapshot size.
pub async fn resolve_image(ctx: &AwsContext, source: &ImageSource) -> Result<Image> {
    let image_missing = |what: String| Error::ImageNotFound { what, region: ctx.region.clone() };
    let image_id = match source {
        ImageSource::Id(id) => id.clone(),
        ImageSource::SsmParameter(path) => match ctx.ssm.get_parameter().name(path).send().await.aws("GetParameter") {
            Ok(answer) => {
                required(answer.parameter().and_then(|p| p.value()), "GetParameter", "Parameter.Value")?.to_owned()
            }
            Err(err) if err.is(Answer::NotFound) => {
                return Err(image_missing(format!("SSM parameter {path}")));
            }
            Err(err) => return Err(err),
        },
    };
    let images = match ctx.ec2.describe_images().image_ids(&image_id).send().await.aws("DescribeImages") {
        Ok(images) => images,
        Err(err) if err.is(Answer::UnknownImage) => {
            return Err(image_missing(format!("AMI {image_id}")));
        }
        Err(err) => return Err(err),
    };
    let image = images.images().first().ok_or_else(|| image_missing(format!("AMI {image_id}")))?;
    let root_device = image.root_device_name().unwrap_or("/dev/xvda").to_owned();
    let snapshot_gib = image
        .block_device_mappings()
        .iter()
        .find(|m| m.device_name() == Some(root_device.as_str()))
        .and_then(|m| m.ebs())
        .and_then(|e| e.volume_size())
        .unwrap_or(0);
    Ok(Image {
        id: image_id,
        source: source.clone(),
        root_device,
        snapshot_gib: u32::try_from(snapshot_gib).unwrap_or(0),
    })
}
