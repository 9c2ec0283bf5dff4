//! The compute tier's plans. Pure functions: no I/O.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{HttpTokensState, InstanceStateName};
use serde::Serialize;
use three_tier_core::config::InstanceType;
use three_tier_core::naming::{Tags, name_or_id};
use three_tier_core::{Bound, Change, Conflict, Facts, Key, Plan, Ready, Ref, Step, Tier, Wait, keys};

use crate::desired::{Desired, Image, ImageSource, InstanceSpec, SecretPolicySpec};
use crate::observe::{Observed, ObservedInstance, ObservedInstanceProfile, ObservedRole, ObservedTarget};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum ComputeStep {
    CreateRole {
        name: String,
        trust_policy: String,
        tags: Tags,
    },
    TagRole {
        name: String,
        tags: BTreeMap<String, String>,
    },
    AttachRolePolicy {
        role: String,
        policy_arn: String,
    },
    DetachRolePolicy {
        role: String,
        policy_arn: String,
    },
    PutSecretReadPolicy {
        role: String,
        policy: SecretPolicySpec,
    },
    DeleteRolePolicy {
        role: String,
        policy_name: String,
    },
    CreateInstanceProfile {
        name: String,
        tags: Tags,
    },
    TagInstanceProfile {
        name: String,
        tags: BTreeMap<String, String>,
    },
    AddRoleToInstanceProfile {
        profile: String,
        role: String,
    },
    RemoveRoleFromInstanceProfile {
        profile: String,
        role: String,
    },
    RunInstance {
        key: String,
        name: String,
        image: Image,
        instance_type: InstanceType,
        subnet: Ref,
        security_group: Ref,
        /// The config's size, or the AMI's snapshot when that is larger.
        root_volume_gib: u32,
        instance_profile: String,
        user_data: String,
        tags: Tags,
    },
    /// Moves a running instance to another instance profile (off the names used before
    /// they carried the region); `kept` names who else still runs with the old one.
    MoveInstanceProfile {
        id: String,
        name: String,
        from: String,
        to: String,
        kept: Vec<String>,
    },
    WaitInstanceStopped {
        id: String,
        name: String,
    },
    StartInstance {
        id: String,
        name: String,
    },
    SetInstanceSecurityGroups {
        id: String,
        name: String,
        security_groups: Vec<Ref>,
    },
    RequireImdsV2 {
        id: String,
        name: String,
    },
    TagInstance {
        id: String,
        name: String,
        tags: BTreeMap<String, String>,
    },
    WaitInstanceRunning {
        name: String,
        instance: Ref,
    },
    /// Marks an instance for replacement (its `three-tier:retiring` tag), so the new one
    /// launched under its key is the key's; it drains and goes once that one is a healthy
    /// target. One replacement starts once the one before it is healthy.
    RetireInstance {
        id: String,
        name: String,
        key: String,
        reasons: Vec<String>,
        after_healthy: Option<String>,
    },
    /// Waits until the instance keyed `key` is a healthy target of a group: what a
    /// replacement's old instance waits for before it is drained.
    WaitTargetHealthy {
        target_group: Ref,
        group_name: String,
        instance: Ref,
        key: String,
        name: String,
        port: u16,
    },
    /// Deregisters a replaced instance once its replacement (keyed `replaced_by`) is a
    /// healthy target.
    DrainTarget {
        target_group_arn: String,
        group_name: String,
        instance_id: String,
        port: u16,
        replaced_by: String,
    },
    /// Waits until a deregistered target has drained its connections.
    WaitTargetDrained {
        target_group_arn: String,
        group_name: String,
        instance_id: String,
        port: u16,
    },
    RegisterTarget {
        target_group: Ref,
        group_name: String,
        instance: Ref,
        port: u16,
    },
    DeregisterTarget {
        target_group_arn: String,
        group_name: String,
        instance_id: String,
        port: u16,
    },
    TerminateInstance {
        id: String,
        name: String,
    },
    WaitInstanceTerminated {
        id: String,
        name: String,
    },
    DeleteInstanceProfile {
        name: String,
    },
    DeleteRole {
        name: String,
    },
}

/// Each step's facts. IAM's order (a role before its policies and profile, emptied before
/// it goes), the instance's (its profile usable, its user data's downloads through an
/// available NAT gateway, running before it is registered), and a teardown's
/// (deregistered before terminated, terminated or moved to another profile before its
/// profile goes). A role just put in an instance profile reaches EC2 some seconds later.
impl Step for ComputeStep {
    fn facts(&self) -> Facts {
        use ComputeStep::*;
        let keys_of = |tags: &BTreeMap<String, String>| tags.keys().cloned().collect::<Vec<_>>().join(", ");
        match self {
            CreateRole { name, .. } => Facts {
                change: Change::Create,
                description: format!("IAM role {name} (trusts ec2.amazonaws.com)"),
                actions: &["iam:CreateRole"],
                produces: keys([Ready::RoleCreated]),
                after: vec![],
                typical: None,
                wait: None,
            },
            TagRole { name, tags } => Facts {
                change: Change::Update,
                description: format!("tag IAM role {name}: {}", keys_of(tags)),
                actions: &["iam:TagRole"],
                produces: vec![],
                after: keys([Ready::RoleCreated]),
                typical: None,
                wait: None,
            },
            AttachRolePolicy { role, policy_arn } => Facts {
                change: Change::Update,
                description: format!("attach {} to {role}", policy_arn.rsplit('/').next().unwrap_or(policy_arn)),
                actions: &["iam:AttachRolePolicy"],
                produces: vec![],
                after: keys([Ready::RoleCreated]),
                typical: None,
                wait: None,
            },
            DetachRolePolicy { role, policy_arn } => Facts {
                change: Change::Update,
                description: format!("detach {policy_arn} from {role}"),
                actions: &["iam:DetachRolePolicy"],
                produces: keys([Ready::RolePolicyRemoved(role.clone())]),
                after: keys([Ready::ProfileMoved]),
                typical: None,
                wait: None,
            },
            PutSecretReadPolicy { role, policy } => Facts {
                change: Change::Update,
                description: format!(
                    "let {role} read the master secret of {} ({})",
                    policy.db_instance_identifier, policy.name
                ),
                actions: &["iam:GetRole", "iam:PutRolePolicy"],
                produces: vec![],
                after: keys([Ready::RoleCreated]),
                typical: None,
                wait: None,
            },
            DeleteRolePolicy { role, policy_name } => Facts {
                change: Change::Update,
                description: format!("remove inline policy {policy_name} from {role}"),
                actions: &["iam:DeleteRolePolicy"],
                produces: keys([Ready::RolePolicyRemoved(role.clone())]),
                after: keys([Ready::ProfileMoved]),
                typical: None,
                wait: None,
            },
            CreateInstanceProfile { name, .. } => Facts {
                change: Change::Create,
                description: format!("instance profile {name}"),
                actions: &["iam:CreateInstanceProfile"],
                produces: keys([Ready::InstanceProfileCreated]),
                after: vec![],
                typical: None,
                wait: None,
            },
            TagInstanceProfile { name, tags } => Facts {
                change: Change::Update,
                description: format!("tag instance profile {name}: {}", keys_of(tags)),
                actions: &["iam:TagInstanceProfile"],
                produces: vec![],
                after: keys([Ready::InstanceProfileCreated]),
                typical: None,
                wait: None,
            },
            AddRoleToInstanceProfile { profile, role } => Facts {
                change: Change::Update,
                description: format!("put role {role} in {profile}"),
                actions: &["iam:AddRoleToInstanceProfile"],
                produces: keys([Ready::ProfileHoldsRole]),
                after: keys([
                    Ready::RoleCreated,
                    Ready::InstanceProfileCreated,
                    Ready::ProfileEmptied(profile.clone()),
                ]),
                typical: Some("instance_profile_usable"),
                wait: None,
            },
            RemoveRoleFromInstanceProfile { profile, role } => Facts {
                change: Change::Update,
                description: format!("take role {role} out of {profile}"),
                actions: &["iam:RemoveRoleFromInstanceProfile"],
                produces: keys([Ready::ProfileEmptied(profile.clone()), Ready::RoleOutOfProfiles(role.clone())]),
                after: keys([Ready::InstanceTerminated, Ready::ProfileMoved]),
                typical: None,
                wait: None,
            },
            RunInstance { key, name, image, instance_type, root_volume_gib, instance_profile, .. } => {
                let from = match &image.source {
                    ImageSource::SsmParameter(path) => format!(", the latest of {path}"),
                    ImageSource::Id(_) => String::new(),
                };
                Facts {
                    change: Change::Create,
                    description: format!(
                        "instance {name} ({instance_type}, {}{from}, no public IP, IMDSv2, encrypted {root_volume_gib} GiB root volume)",
                        image.id
                    ),
                    actions: &["ec2:RunInstances"],
                    produces: vec![Key::created(key)],
                    // The user data downloads through the NAT gateway: it and the app
                    // subnet's route to it must be in place.
                    // A replacement launches once the instance it replaces is marked.
                    after: keys([
                        Ready::ProfileHoldsRole,
                        Ready::NatGatewayAvailable,
                        Ready::NatRouted,
                        Ready::SubnetsRouted,
                        Ready::Retired(key.clone()),
                    ]),
                    typical: None,
                    wait: Some(profile_reaching_ec2(instance_profile)),
                }
            }
            MoveInstanceProfile { name, from, to, kept, .. } => {
                let old = if kept.is_empty() {
                    format!("{from} goes")
                } else {
                    format!("{from} stays: {} still run with it", kept.join(", "))
                };
                Facts {
                    change: Change::Update,
                    description: format!(
                        "move instance {name} to instance profile {to} (the region is in IAM names now; {old})"
                    ),
                    actions: &[
                        "ec2:DescribeIamInstanceProfileAssociations",
                        "ec2:ReplaceIamInstanceProfileAssociation",
                    ],
                    produces: keys([Ready::ProfileMoved]),
                    after: keys([Ready::ProfileHoldsRole, Ready::InstanceProfileCreated]),
                    typical: Some("instance_profile_usable"),
                    wait: Some(profile_reaching_ec2(to)),
                }
            }
            WaitInstanceStopped { name, id } => Facts {
                change: Change::Wait,
                description: format!("wait for instance {name} to stop"),
                actions: &["ec2:DescribeInstances"],
                produces: keys([Ready::InstanceStopped]),
                after: vec![],
                typical: None,
                wait: Some(Wait::until(format!("instance {name} ({id}) stopping"), Bound::Instance)),
            },
            StartInstance { name, id } => Facts {
                change: Change::Update,
                description: format!("start stopped instance {name} ({id})"),
                actions: &["ec2:StartInstances"],
                produces: keys([Ready::InstanceStarted]),
                after: keys([Ready::InstanceStopped]),
                typical: None,
                wait: None,
            },
            SetInstanceSecurityGroups { name, security_groups, .. } => Facts {
                change: Change::Update,
                description: format!(
                    "security groups of {name}: {}",
                    security_groups.iter().map(Ref::to_string).collect::<Vec<_>>().join(", ")
                ),
                actions: &["ec2:ModifyInstanceAttribute"],
                produces: vec![],
                after: vec![],
                typical: None,
                wait: None,
            },
            RequireImdsV2 { name, .. } => Facts {
                change: Change::Update,
                description: format!("require IMDSv2 on {name}"),
                actions: &["ec2:ModifyInstanceMetadataOptions"],
                produces: vec![],
                after: vec![],
                typical: None,
                wait: None,
            },
            TagInstance { name, tags, .. } => Facts {
                change: Change::Update,
                description: format!("tag {name}: {}", keys_of(tags)),
                actions: &["ec2:CreateTags"],
                produces: vec![],
                after: vec![],
                typical: None,
                wait: None,
            },
            WaitInstanceRunning { name, instance } => Facts {
                change: Change::Wait,
                description: format!("wait for instance {name} to run"),
                actions: &["ec2:DescribeInstances"],
                produces: keys([Ready::InstanceRunning(instance.to_string())]),
                after: keys([Ready::InstanceStarted]),
                typical: Some("instance_running"),
                wait: Some(Wait::until(format!("instance {name} starting"), Bound::Instance)),
            },
            RetireInstance { id, name, key, reasons, after_healthy } => Facts {
                change: Change::Update,
                description: format!(
                    "replace instance {name} ({id}): it {}; a new one starts, and once it is a healthy target this \
                     one drains and terminates, so the page is served throughout",
                    reasons.join(", ")
                ),
                actions: &["ec2:CreateTags"],
                produces: keys([Ready::Retired(key.clone())]),
                after: after_healthy.iter().map(|previous| Ready::TargetHealthy(previous.clone()).into()).collect(),
                typical: None,
                wait: None,
            },
            WaitTargetHealthy { group_name, instance, name, key, .. } => Facts {
                change: Change::Wait,
                description: format!("wait for instance {name} ({instance}) to be a healthy target of {group_name}"),
                actions: &["elasticloadbalancing:DescribeTargetHealth"],
                produces: keys([Ready::TargetHealthy(key.clone())]),
                after: keys([Ready::TargetRegistered(instance.to_string())]),
                typical: Some("target_in_service"),
                wait: Some(Wait::until(
                    format!("instance {name} becoming a healthy target of {group_name}"),
                    Bound::Instance,
                )),
            },
            DrainTarget { instance_id, port, group_name, replaced_by, .. } => Facts {
                change: Change::Update,
                description: format!(
                    "deregister {instance_id}:{port} from target group {group_name}, its replacement {replaced_by} healthy"
                ),
                actions: &["elasticloadbalancing:DeregisterTargets"],
                produces: keys([Ready::Draining(instance_id.clone())]),
                after: keys([Ready::TargetHealthy(replaced_by.clone())]),
                typical: None,
                wait: None,
            },
            WaitTargetDrained { instance_id, group_name, .. } => Facts {
                change: Change::Wait,
                description: format!("wait for {instance_id} to drain from target group {group_name}"),
                actions: &["elasticloadbalancing:DescribeTargetHealth"],
                produces: keys([Ready::TargetsDeregistered]),
                after: keys([Ready::Draining(instance_id.clone())]),
                typical: Some("target_drained"),
                wait: Some(Wait::until(
                    format!("{instance_id} draining from target group {group_name}"),
                    Bound::LoadBalancer,
                )),
            },
            RegisterTarget { port, instance, group_name, .. } => Facts {
                change: Change::Update,
                description: format!("register instance {instance} in target group {group_name} on port {port}"),
                actions: &["elasticloadbalancing:RegisterTargets"],
                produces: keys([Ready::TargetRegistered(instance.to_string())]),
                after: keys([Ready::InstanceRunning(instance.to_string())]),
                typical: None,
                // A new instance can be unknown to ELB for a few seconds (InvalidTarget).
                wait: Some(Wait::while_refused(
                    format!("waiting for instance {instance} to be known to the load balancer"),
                    Bound::Propagation,
                    "run deploy again in a minute",
                )),
            },
            DeregisterTarget { instance_id, port, group_name, .. } => Facts {
                change: Change::Update,
                description: format!("deregister {instance_id}:{port} from target group {group_name}"),
                actions: &["elasticloadbalancing:DeregisterTargets"],
                produces: keys([Ready::TargetsDeregistered]),
                after: vec![],
                typical: None,
                wait: None,
            },
            TerminateInstance { name, id } => Facts {
                change: Change::Delete,
                description: format!("instance {name} ({id})"),
                actions: &["ec2:TerminateInstances"],
                produces: keys([Ready::InstanceTerminating]),
                after: keys([Ready::TargetsDeregistered]),
                typical: None,
                // The id came from a describe, so "not found" means the instance is too new
                // to be known everywhere in EC2 yet (a deploy stopped right after launching
                // it): asked again, lest it be left running.
                wait: Some(Wait::while_refused(
                    format!("waiting for EC2 to know instance {id}"),
                    Bound::Propagation,
                    format!(
                        "EC2 still answers that instance {name} ({id}) does not exist: `aws ec2 describe-instances \
                         --instance-ids {id}` shows whether it runs; run teardown again"
                    ),
                )),
            },
            WaitInstanceTerminated { name, id } => Facts {
                change: Change::Wait,
                description: format!("wait for instance {name} to terminate"),
                actions: &["ec2:DescribeInstances"],
                produces: keys([Ready::InstanceTerminated]),
                after: keys([Ready::InstanceTerminating]),
                typical: Some("instance_terminated"),
                wait: Some(Wait::until(format!("instance {name} ({id}) terminating"), Bound::Instance)),
            },
            DeleteInstanceProfile { name } => Facts {
                change: Change::Delete,
                description: format!("instance profile {name}"),
                actions: &["iam:DeleteInstanceProfile"],
                produces: vec![],
                after: keys([Ready::ProfileEmptied(name.clone()), Ready::InstanceTerminated]),
                typical: None,
                wait: None,
            },
            DeleteRole { name } => Facts {
                change: Change::Delete,
                description: format!("IAM role {name}"),
                actions: &["iam:DeleteRole"],
                produces: vec![],
                after: keys([Ready::RolePolicyRemoved(name.clone()), Ready::RoleOutOfProfiles(name.clone())]),
                typical: None,
                wait: None,
            },
        }
    }
}

/// IAM is eventually consistent: a new instance profile can be unknown to EC2 for
/// seconds, and RunInstances (or a profile's replacement) then fails with "Invalid IAM
/// Instance Profile".
fn profile_reaching_ec2(profile: &str) -> Wait {
    Wait::while_refused(
        format!("waiting for instance profile {profile} to reach EC2"),
        Bound::Propagation,
        format!("IAM has not made instance profile {profile} visible to EC2 yet; run deploy again in a minute"),
    )
}

/// What resolves a change AWS cannot make to a running instance.
const RECREATE: &str = "run `cargo xtask teardown compute` and deploy it again";

/// The steps from what exists to what is desired: role, profile, instances, registrations.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan<ComputeStep> {
    let mut plan = Plan::new(Tier::Compute);
    let legacy_users: Vec<String> =
        observed.legacy.iter().flat_map(|l| &l.users).map(|(region, id)| format!("{id} in {region}")).collect();
    let steps = &mut plan.steps;
    let conflicts = &mut plan.conflicts;

    let role = &desired.role;
    match &observed.role {
        _ if observed.foreign_names.contains(&role.name) => conflicts.push(Conflict {
            resource: format!("IAM role {}", role.name),
            problem: "exists and is not this stack's (IAM names are unique per account)".into(),
            fix: "delete that role (IAM cannot rename one), or deploy under another --stack".into(),
        }),
        None => {
            steps.push(ComputeStep::CreateRole {
                name: role.name.clone(),
                trust_policy: role.trust_policy.clone(),
                tags: role.tags.clone(),
            });
            for policy in &role.managed_policies {
                steps.push(ComputeStep::AttachRolePolicy { role: role.name.clone(), policy_arn: policy.clone() });
            }
            steps.push(ComputeStep::PutSecretReadPolicy {
                role: role.name.clone(),
                policy: desired.secret_policy.clone(),
            });
        }
        Some(existing) => {
            steps
                .extend(role.tags.retag(&existing.tags, |tags| ComputeStep::TagRole { name: role.name.clone(), tags }));
            for policy in role.managed_policies.iter().filter(|p| !existing.attached_policies.contains(p)) {
                steps.push(ComputeStep::AttachRolePolicy { role: role.name.clone(), policy_arn: policy.clone() });
            }
            for policy in existing.attached_policies.iter().filter(|p| !role.managed_policies.contains(p)) {
                steps.push(ComputeStep::DetachRolePolicy { role: role.name.clone(), policy_arn: policy.clone() });
            }
            let secret_policy = &desired.secret_policy;
            let granted =
                existing.inline_policies.get(&secret_policy.name).is_some_and(|doc| secret_policy.matches(doc));
            if !granted {
                steps.push(ComputeStep::PutSecretReadPolicy { role: role.name.clone(), policy: secret_policy.clone() });
            }
            for name in existing.inline_policies.keys().filter(|name| **name != secret_policy.name) {
                steps.push(ComputeStep::DeleteRolePolicy { role: role.name.clone(), policy_name: name.clone() });
            }
        }
    }

    let profile = &desired.instance_profile;
    match &observed.instance_profile {
        _ if observed.foreign_names.contains(&profile.name) => conflicts.push(Conflict {
            resource: format!("instance profile {}", profile.name),
            problem: "exists and is not this stack's (IAM names are unique per account)".into(),
            fix: "delete that instance profile (IAM cannot rename one), or deploy under another --stack".into(),
        }),
        None => {
            steps.push(ComputeStep::CreateInstanceProfile { name: profile.name.clone(), tags: profile.tags.clone() });
            steps.push(ComputeStep::AddRoleToInstanceProfile {
                profile: profile.name.clone(),
                role: profile.role.clone(),
            });
        }
        Some(existing) => {
            let retag = |tags| ComputeStep::TagInstanceProfile { name: profile.name.clone(), tags };
            steps.extend(profile.tags.retag(&existing.tags, retag));
            for other in existing.roles.iter().filter(|r| **r != profile.role) {
                steps.push(ComputeStep::RemoveRoleFromInstanceProfile {
                    profile: profile.name.clone(),
                    role: other.clone(),
                });
            }
            if !existing.roles.contains(&profile.role) {
                steps.push(ComputeStep::AddRoleToInstanceProfile {
                    profile: profile.name.clone(),
                    role: profile.role.clone(),
                });
            }
        }
    }

    let mut instances = Vec::new();
    // The key of the last instance replaced: the next replacement starts once its new
    // instance is a healthy target, so at most one instance at a time is out of service.
    let mut replacing: Option<String> = None;
    let mut draining: Vec<String> = Vec::new();
    for spec in &desired.instances {
        let mut retiring = observed.retiring(&spec.key);
        let current = observed.keyed(&spec.key);
        let reasons = match current.as_slice() {
            [instance] => replacement_reasons(spec, instance, observed),
            _ => Vec::new(),
        };
        let (instance, needs_wait) = match (current.as_slice(), &observed.image) {
            ([], None) => {
                conflicts.push(Conflict {
                    resource: format!("instance {}", spec.name),
                    problem: "is to be launched, but its AMI was not looked up".into(),
                    fix: "this is a bug in three-tier; please report it with the output of `cargo xtask plan compute`"
                        .into(),
                });
                (Ref::planned(&spec.key), false)
            }
            ([], Some(image)) => {
                steps.push(launch(spec, image, &profile.name));
                (Ref::planned(&spec.key), true)
            }
            ([instance], Some(image)) if !reasons.is_empty() => {
                steps.push(ComputeStep::RetireInstance {
                    id: instance.id.clone(),
                    name: spec.name.clone(),
                    key: spec.key.clone(),
                    reasons,
                    after_healthy: replacing.clone(),
                });
                steps.push(launch(spec, image, &profile.name));
                retiring.push(instance);
                (Ref::planned(&spec.key), true)
            }
            ([instance], _) => keep_instance(spec, instance, observed, &profile.name, &legacy_users, steps, conflicts),
            (several, _) => {
                let ids: Vec<&str> = several.iter().map(|i| i.id.as_str()).collect();
                conflicts.push(Conflict {
                    resource: format!("app instance {}", spec.key),
                    problem: format!("exists {} times ({}), tagged for the same stack", ids.len(), ids.join(", ")),
                    fix: "terminate all but one by hand, or tear the compute tier down and deploy it again".into(),
                });
                (Ref::existing(several[0].id.clone()), false)
            }
        };
        if needs_wait {
            steps.push(ComputeStep::WaitInstanceRunning { name: spec.name.clone(), instance: instance.clone() });
        }
        if !retiring.is_empty() {
            replace(spec, &instance, &retiring, desired, observed, steps);
            replacing = Some(spec.key.clone());
            draining.extend(retiring.iter().map(|old| old.id.clone()));
        }
        instances.push(instance);
    }
    // An instance whose key the config no longer has (fewer instances asked for) is
    // deregistered below, then terminated.
    let removed: Vec<&ObservedInstance> =
        observed.instances.iter().filter(|i| !desired.instances.iter().any(|spec| spec.key == i.key)).collect();
    terminate(removed, steps);
    retire_legacy(observed, steps);

    // In each target group, exactly the stack's instances on the group's port are
    // registered; anything else is not.
    for registration in &desired.registrations {
        // A replaced instance stays registered until its replacement is healthy (see
        // [`replace`]).
        let wanted = |id: &str, port: u16| {
            (port == registration.port && instances.iter().any(|own| matches!(own, Ref::Existing(own) if own == id)))
                || draining.iter().any(|d| d == id)
        };
        // Targets are observed only in a target group that exists.
        let targets = match &registration.target_group {
            Ref::Existing(arn) => observed.targets_of(arn),
            Ref::Planned(_) => &[],
        };
        for target in targets.iter().filter(|t| !wanted(&t.id, t.port)) {
            steps.push(ComputeStep::DeregisterTarget {
                target_group_arn: registration.target_group.to_string(),
                group_name: registration.group_name.clone(),
                instance_id: target.id.clone(),
                port: target.port,
            });
        }
        for instance in &instances {
            let registered = |t: &&ObservedTarget| matches!(instance, Ref::Existing(id) if *id == t.id);
            if !targets.iter().filter(registered).any(|t| t.port == registration.port) {
                steps.push(ComputeStep::RegisterTarget {
                    target_group: registration.target_group.clone(),
                    group_name: registration.group_name.clone(),
                    instance: instance.clone(),
                    port: registration.port,
                });
            }
        }
    }
    plan
}

/// The steps that bring a kept instance to its spec in place, and the conflicts for what
/// AWS cannot change in place; with the instance's reference and whether it must be
/// waited for (it is starting).
fn keep_instance(
    spec: &InstanceSpec,
    instance: &ObservedInstance,
    observed: &Observed,
    profile: &str,
    legacy_users: &[String],
    steps: &mut Vec<ComputeStep>,
    conflicts: &mut Vec<Conflict>,
) -> (Ref, bool) {
    // An instance deployed before IAM names carried the region runs with the
    // stack's legacy profile: it moves to the regional one.
    let legacy_profile = observed
        .legacy
        .as_ref()
        .and_then(|l| l.profile.as_ref())
        .filter(|p| instance.instance_profile_arn.as_ref() == Some(&p.arn));
    if let Some(legacy) = legacy_profile {
        steps.push(ComputeStep::MoveInstanceProfile {
            id: instance.id.clone(),
            name: spec.name.clone(),
            from: iam_name(&legacy.arn),
            to: profile.to_owned(),
            kept: legacy_users.to_vec(),
        });
    }
    for problem in replacement_reasons(spec, instance, observed) {
        // Replaced when the AMI to launch is known (see [`plan`]); a bug otherwise.
        conflicts.push(Conflict {
            resource: format!("instance {} ({})", spec.name, instance.id),
            problem,
            fix: RECREATE.into(),
        });
    }
    if !matches!(instance.security_groups.as_slice(), [only] if spec.security_group.is(only)) {
        steps.push(ComputeStep::SetInstanceSecurityGroups {
            id: instance.id.clone(),
            name: spec.name.clone(),
            security_groups: vec![spec.security_group.clone()],
        });
    }
    if instance.http_tokens != Some(HttpTokensState::Required) {
        steps.push(ComputeStep::RequireImdsV2 { id: instance.id.clone(), name: spec.name.clone() });
    }
    let retag = |tags| ComputeStep::TagInstance { id: instance.id.clone(), name: spec.name.clone(), tags };
    steps.extend(spec.tags.retag(&instance.tags, retag));
    // AWS starts only a stopped instance: one still stopping is waited for first.
    let stopped = matches!(instance.state, InstanceStateName::Stopped | InstanceStateName::Stopping);
    if instance.state == InstanceStateName::Stopping {
        steps.push(ComputeStep::WaitInstanceStopped { id: instance.id.clone(), name: spec.name.clone() });
    }
    if stopped {
        steps.push(ComputeStep::StartInstance { id: instance.id.clone(), name: spec.name.clone() });
    }
    (Ref::existing(&instance.id), stopped || instance.state == InstanceStateName::Pending)
}

/// Why an instance cannot be brought to its spec in place, so a new one replaces it: what
/// EC2 fixes at launch (subnet, type, public address, AMI when the config names one), the
/// user data cloud-init ran at first boot, the instance profile. Empty when it can stay.
pub fn replacement_reasons(spec: &InstanceSpec, instance: &ObservedInstance, observed: &Observed) -> Vec<String> {
    let legacy_profile = observed
        .legacy
        .as_ref()
        .and_then(|l| l.profile.as_ref())
        .is_some_and(|p| instance.instance_profile_arn.as_ref() == Some(&p.arn));
    let pinned = match &spec.image {
        ImageSource::Id(id) => instance.image_id.as_ref().filter(|used| *used != id).map(|used| (used, id)),
        ImageSource::SsmParameter(_) => None,
    };
    let user_data = instance.user_data.as_deref().filter(|data| *data != spec.user_data);
    let reasons = [
        (!spec.subnet.is(&instance.subnet_id), format!("is in subnet {}, not {}", instance.subnet_id, spec.subnet)),
        (
            spec.instance_type != instance.instance_type.as_str(),
            format!("is a {}, not a {}", instance.instance_type, spec.instance_type),
        ),
        (instance.public_ip.is_some(), "has a public IP address".to_owned()),
        (pinned.is_some(), pinned.map(|(used, id)| format!("runs AMI {used}, not {id}")).unwrap_or_default()),
        // Cloud-init runs the user data at first boot only.
        (
            user_data.is_some(),
            match user_data.map(published) {
                Some(ports) if ports != published(&spec.user_data) => format!(
                    "runs nginx published on {}, not on the target groups' ports {}",
                    ports_text(&ports),
                    ports_text(&published(&spec.user_data)),
                ),
                _ => "was launched with other user data than the config gives".to_owned(),
            },
        ),
        (
            !legacy_profile
                && observed
                    .instance_profile
                    .as_ref()
                    .is_some_and(|p| instance.instance_profile_arn.as_ref() != Some(&p.arn)),
            "does not use the stack's instance profile".to_owned(),
        ),
    ];
    reasons.into_iter().filter(|(differs, _)| *differs).map(|(_, reason)| reason).collect()
}

/// RunInstances for `spec`, from `image`, with the stack's instance profile.
fn launch(spec: &InstanceSpec, image: &Image, profile: &str) -> ComputeStep {
    ComputeStep::RunInstance {
        key: spec.key.clone(),
        name: spec.name.clone(),
        image: image.clone(),
        instance_type: spec.instance_type.clone(),
        subnet: spec.subnet.clone(),
        security_group: spec.security_group.clone(),
        root_volume_gib: spec.root_volume_gib.max(image.snapshot_gib),
        instance_profile: profile.to_owned(),
        user_data: spec.user_data.clone(),
        tags: spec.tags.clone(),
    }
}

/// The rest of a replacement: the instance keyed `spec.key` (`current`, new or kept) is
/// waited for until it is a healthy target of each group it is registered in (unless it
/// already is); then each `retiring` instance of the key is deregistered, drained and
/// terminated, so the page is served throughout.
fn replace(
    spec: &InstanceSpec,
    current: &Ref,
    retiring: &[&ObservedInstance],
    desired: &Desired,
    observed: &Observed,
    steps: &mut Vec<ComputeStep>,
) {
    for registration in &desired.registrations {
        let healthy = match (&registration.target_group, current) {
            (Ref::Existing(arn), Ref::Existing(id)) => observed
                .targets_of(arn)
                .iter()
                .any(|t| t.id == *id && t.port == registration.port && t.health == "healthy"),
            _ => false,
        };
        if !healthy {
            steps.push(ComputeStep::WaitTargetHealthy {
                target_group: registration.target_group.clone(),
                group_name: registration.group_name.clone(),
                instance: current.clone(),
                key: spec.key.clone(),
                name: spec.name.clone(),
                port: registration.port,
            });
        }
    }
    for old in retiring {
        for group in &observed.target_groups {
            for target in group.targets.iter().filter(|t| t.id == old.id) {
                steps.push(ComputeStep::DrainTarget {
                    target_group_arn: group.arn.clone(),
                    group_name: group.name.clone(),
                    instance_id: old.id.clone(),
                    port: target.port,
                    replaced_by: spec.key.clone(),
                });
                steps.push(ComputeStep::WaitTargetDrained {
                    target_group_arn: group.arn.clone(),
                    group_name: group.name.clone(),
                    instance_id: old.id.clone(),
                    port: target.port,
                });
            }
        }
    }
    terminate(retiring.iter().copied(), steps);
}

/// Everything of the tier the stack's tags find: the registration, the instance (waiting
/// until it is terminated), then the profile and role it used. IAM resources that are not
/// tagged for the stack are left alone.
pub fn teardown_plan(observed: &Observed) -> Plan<ComputeStep> {
    let mut plan = Plan::new(Tier::Compute);
    let steps = &mut plan.steps;
    for group in &observed.target_groups {
        for target in group.targets.iter().filter(|t| observed.instances.iter().any(|i| i.id == t.id)) {
            steps.push(ComputeStep::DeregisterTarget {
                target_group_arn: group.arn.clone(),
                group_name: group.name.clone(),
                instance_id: target.id.clone(),
                port: target.port,
            });
        }
    }
    terminate(observed.instances.iter(), steps);
    remove_iam(observed.instance_profile.as_ref(), observed.role.as_ref(), steps);
    retire_legacy(observed, steps);
    plan
}

/// Terminates `instances`, each waited for until terminated.
fn terminate<'a>(instances: impl IntoIterator<Item = &'a ObservedInstance> + Clone, steps: &mut Vec<ComputeStep>) {
    let named = |instance: &ObservedInstance| (instance.id.clone(), name_or_id(&instance.tags, &instance.id));
    for (id, name) in instances.clone().into_iter().map(named) {
        steps.push(ComputeStep::TerminateInstance { id, name });
    }
    for (id, name) in instances.into_iter().map(named) {
        steps.push(ComputeStep::WaitInstanceTerminated { id, name });
    }
}

/// Removes an instance profile (emptied first) and a role (its policies first).
fn remove_iam(profile: Option<&ObservedInstanceProfile>, role: Option<&ObservedRole>, steps: &mut Vec<ComputeStep>) {
    if let Some(profile) = profile {
        let name = iam_name(&profile.arn);
        for role in &profile.roles {
            steps.push(ComputeStep::RemoveRoleFromInstanceProfile { profile: name.clone(), role: role.clone() });
        }
        steps.push(ComputeStep::DeleteInstanceProfile { name });
    }
    if let Some(role) = role {
        let name = iam_name(&role.arn);
        for policy in &role.attached_policies {
            steps.push(ComputeStep::DetachRolePolicy { role: name.clone(), policy_arn: policy.clone() });
        }
        for policy_name in role.inline_policies.keys() {
            steps.push(ComputeStep::DeleteRolePolicy { role: name.clone(), policy_name: policy_name.clone() });
        }
        steps.push(ComputeStep::DeleteRole { name });
    }
}

/// Removes the role and profile under the names used before they carried the region, once
/// no instance but the stack's own here (moved or terminated first) runs with them: the
/// same stack name in another region may, until its next deploy moves it.
fn retire_legacy(observed: &Observed, steps: &mut Vec<ComputeStep>) {
    if let Some(legacy) = observed.legacy.as_ref().filter(|l| l.users.is_empty()) {
        remove_iam(legacy.profile.as_ref(), legacy.role.as_ref(), steps);
    }
}

/// An IAM resource's name: the last part of its ARN (after its path).
fn iam_name(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or(arn).to_owned()
}

/// The host ports a user data's compose file publishes.
fn published(user_data: &str) -> Vec<u16> {
    let mut ports: Vec<u16> = crate::user_data::published(user_data).into_iter().map(|(host, _)| host).collect();
    ports.sort_unstable();
    ports
}

fn ports_text(ports: &[u16]) -> String {
    if ports.is_empty() {
        return "no port".into();
    }
    ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
}
