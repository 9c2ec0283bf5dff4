//! The database tier's plans. Pure functions: no I/O.

use std::collections::BTreeMap;

use serde::Serialize;
use three_tier_core::naming::Tags;
use three_tier_core::{Bound, Change, Conflict, Facts, Plan, Ready, Ref, Step, Tier, Wait, keys};

use crate::desired::{Desired, InstanceSpec};
use crate::observe::{DbStatus, Observed};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum DatabaseStep {
    CreateDbSubnetGroup {
        name: String,
        description: String,
        subnets: Vec<Ref>,
        tags: Tags,
    },
    ModifyDbSubnetGroup {
        name: String,
        description: String,
        subnets: Vec<Ref>,
    },
    /// The instance as its spec says, in `subnet_group` (the spec's whole: the step reads
    /// what it was given, nothing copied field by field).
    CreateDbInstance {
        #[serde(flatten)]
        spec: InstanceSpec,
        subnet_group: String,
    },
    ModifyDbInstance {
        identifier: String,
        deletion_protection: Option<bool>,
        security_groups: Option<Vec<Ref>>,
        /// RDS adds or removes the standby while the instance keeps serving.
        multi_az: Option<bool>,
    },
    StartDbInstance {
        identifier: String,
    },
    /// A started instance becoming available, before it takes a modification.
    WaitDbInstanceStarted {
        identifier: String,
    },
    AddTags {
        arn: String,
        name: String,
        tags: BTreeMap<String, String>,
    },
    WaitDbInstanceAvailable {
        identifier: String,
    },
    /// Deletes the instance, after a final snapshot of this name if there is one.
    DeleteDbInstance {
        identifier: String,
        final_snapshot: Option<String>,
    },
    WaitDbInstanceDeleted {
        identifier: String,
    },
    DeleteDbSubnetGroup {
        name: String,
    },
}

/// Each step's facts. The instance goes into its subnet group; a stopped one takes changes
/// once started; the subnet group goes once the instance is gone.
impl Step for DatabaseStep {
    fn facts(&self) -> Facts {
        use DatabaseStep::*;
        match self {
            CreateDbSubnetGroup { name, subnets, .. } => Facts {
                change: Change::Create,
                description: format!("DB subnet group {name} ({} subnets)", subnets.len()),
                actions: &["rds:CreateDBSubnetGroup"],
                produces: keys([Ready::DbSubnetGroupInPlace]),
                after: vec![],
                typical: None,
                wait: None,
            },
            ModifyDbSubnetGroup { name, subnets, .. } => Facts {
                change: Change::Update,
                description: format!("subnets of {name}: {}", join(subnets)),
                actions: &["rds:ModifyDBSubnetGroup"],
                produces: keys([Ready::DbSubnetGroupInPlace]),
                after: vec![],
                typical: None,
                wait: None,
            },
            CreateDbInstance { spec, .. } => Facts {
                change: Change::Create,
                description: format!(
                    "RDS instance {} ({} {}, {}, {} {} GiB, {}, private, encrypted, database {}, password managed by RDS)",
                    spec.identifier,
                    spec.engine,
                    spec.engine_version,
                    spec.instance_class,
                    spec.storage_type,
                    spec.allocated_storage_gib,
                    if spec.multi_az { "Multi-AZ with a standby in another zone" } else { "single AZ" },
                    spec.database_name
                ),
                actions: &["rds:CreateDBInstance"],
                produces: keys([Ready::DbInstanceCreated]),
                after: keys([Ready::DbSubnetGroupInPlace]),
                // A Multi-AZ instance is available once RDS has added its standby too.
                typical: spec.multi_az.then_some("db_standby_added"),
                wait: None,
            },
            ModifyDbInstance { identifier, deletion_protection, security_groups, multi_az } => {
                let mut changes = Vec::new();
                if let Some(on) = multi_az {
                    changes.push(match on {
                        true => "Multi-AZ on: a standby in another zone, without downtime".to_owned(),
                        false => "Multi-AZ off: the standby goes, without downtime".to_owned(),
                    });
                }
                if let Some(on) = deletion_protection {
                    changes.push(format!("deletion protection {}", if *on { "on" } else { "off" }));
                }
                if let Some(groups) = security_groups {
                    changes.push(format!("security groups {}", join(groups)));
                }
                Facts {
                    change: Change::Update,
                    description: format!("{identifier}: {}", changes.join(", ")),
                    actions: &["rds:ModifyDBInstance"],
                    produces: keys([Ready::DbInstanceModified]),
                    after: keys([Ready::DbInstanceStarted]),
                    typical: (*multi_az == Some(true)).then_some("db_standby_added"),
                    wait: None,
                }
            }
            StartDbInstance { identifier } => Facts {
                change: Change::Update,
                description: format!("start stopped RDS instance {identifier}"),
                actions: &["rds:StartDBInstance"],
                produces: keys([Ready::DbInstanceStarting]),
                after: vec![],
                typical: None,
                wait: None,
            },
            WaitDbInstanceStarted { identifier } => Facts {
                change: Change::Wait,
                description: format!("wait for {identifier} to start"),
                actions: &["rds:DescribeDBInstances"],
                produces: keys([Ready::DbInstanceStarted]),
                after: keys([Ready::DbInstanceStarting]),
                typical: Some("db_instance_available"),
                wait: Some(Wait::until(format!("RDS instance {identifier} becoming available"), Bound::Database)),
            },
            AddTags { name, tags, .. } => Facts {
                change: Change::Update,
                description: format!("tag {name}: {}", tags.keys().cloned().collect::<Vec<_>>().join(", ")),
                actions: &["rds:AddTagsToResource"],
                produces: vec![],
                after: vec![],
                typical: None,
                wait: None,
            },
            WaitDbInstanceAvailable { identifier } => Facts {
                change: Change::Wait,
                description: format!("wait for {identifier} to be available"),
                actions: &["rds:DescribeDBInstances"],
                produces: vec![],
                after: keys([Ready::DbInstanceCreated, Ready::DbInstanceStarted, Ready::DbInstanceModified]),
                typical: Some("db_instance_available"),
                wait: Some(Wait::until(format!("RDS instance {identifier} becoming available"), Bound::Database)),
            },
            DeleteDbInstance { identifier, final_snapshot } => Facts {
                change: Change::Delete,
                description: match final_snapshot {
                    Some(snapshot) => format!(
                        "RDS instance {identifier} (after final snapshot {snapshot}, with its automated backups)"
                    ),
                    None => format!("RDS instance {identifier} (without a final snapshot, with its automated backups)"),
                },
                actions: &["rds:DeleteDBInstance"],
                produces: keys([Ready::DbInstanceDeleting]),
                after: vec![],
                typical: None,
                wait: None,
            },
            WaitDbInstanceDeleted { identifier } => Facts {
                change: Change::Wait,
                description: format!("wait for {identifier} to be deleted"),
                actions: &["rds:DescribeDBInstances"],
                produces: keys([Ready::DbInstanceDeleted]),
                after: keys([Ready::DbInstanceDeleting]),
                typical: Some("db_instance_deleted"),
                wait: Some(Wait::until(format!("RDS instance {identifier} being deleted"), Bound::Database)),
            },
            DeleteDbSubnetGroup { name } => Facts {
                change: Change::Delete,
                description: format!("DB subnet group {name}"),
                actions: &["rds:DeleteDBSubnetGroup"],
                produces: keys([Ready::DbSubnetGroupDeleted]),
                after: keys([Ready::DbInstanceDeleted]),
                typical: None,
                wait: Some(Wait::while_refused(
                    format!("waiting for DB subnet group {name} to be unused"),
                    Bound::DependencyViolation,
                    format!(
                        "DB subnet group {name} is still used by an RDS instance outside this stack: delete it and \
                         run teardown again"
                    ),
                )),
            },
        }
    }
}

fn join(refs: &[Ref]) -> String {
    refs.iter().map(Ref::to_string).collect::<Vec<_>>().join(", ")
}

fn add_tags(arn: &str, wanted: &Tags, present: &BTreeMap<String, String>) -> Option<DatabaseStep> {
    wanted.retag(present, |tags| DatabaseStep::AddTags { arn: arn.to_owned(), name: wanted.name().to_owned(), tags })
}

/// Whether a running engine version fits the configured one. RDS applies minor upgrades
/// by itself, so `8.4` accepts any 8.4.x and `8.4.3` accepts 8.4.3 or a later 8.4.x.
fn version_satisfies(running: &str, configured: &str) -> bool {
    let parts = |v: &str| v.split('.').map(|p| p.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>();
    let (running, configured) = (parts(running), parts(configured));
    let major = configured.len().min(2);
    running.len() >= major && running[..major] == configured[..major] && running >= configured
}

pub fn plan(desired: &Desired, observed: &Observed) -> Plan<DatabaseStep> {
    let mut plan = Plan::new(Tier::Database);
    let steps = &mut plan.steps;
    let conflicts = &mut plan.conflicts;
    let recreate = "restore the config value, or run `cargo xtask teardown database` and deploy it again (the data is lost unless database.final_snapshot is on)";

    let group = &desired.subnet_group;
    match &observed.subnet_group {
        _ if observed.foreign_names.contains(&group.name) => conflicts.push(Conflict {
            resource: format!("DB subnet group {}", group.name),
            problem: "exists and is not this stack's (the name is unique per account and region)".into(),
            fix: "set another database.subnet_group_name, or use another --stack".into(),
        }),
        None => steps.push(DatabaseStep::CreateDbSubnetGroup {
            name: group.name.clone(),
            description: group.description.clone(),
            subnets: group.subnets.clone(),
            tags: group.tags.clone(),
        }),
        Some(existing) => {
            let mut wanted: Vec<&Ref> = group.subnets.iter().collect();
            wanted.sort_by_key(|r| r.to_string());
            let same = wanted.len() == existing.subnet_ids.len()
                && wanted.iter().zip(&existing.subnet_ids).all(|(w, id)| w.is(id));
            if !same {
                steps.push(DatabaseStep::ModifyDbSubnetGroup {
                    name: group.name.clone(),
                    description: group.description.clone(),
                    subnets: wanted.into_iter().cloned().collect(),
                });
            }
            steps.extend(add_tags(&existing.arn, &group.tags, &existing.tags));
        }
    }

    let spec = &desired.instance;
    match &observed.instance {
        _ if observed.foreign_names.contains(&spec.identifier) => conflicts.push(Conflict {
            resource: format!("RDS instance {}", spec.identifier),
            problem: "exists and is not this stack's (the identifier is unique per account and region)".into(),
            fix: "use another --stack".into(),
        }),
        None => {
            steps.push(DatabaseStep::CreateDbInstance { spec: spec.clone(), subnet_group: group.name.clone() });
            steps.push(DatabaseStep::WaitDbInstanceAvailable { identifier: spec.identifier.clone() });
        }
        Some(existing) if existing.status == DbStatus::Stopping => conflicts.push(Conflict {
            resource: format!("RDS instance {}", spec.identifier),
            problem: "is stopping".into(),
            fix: "wait for it to be stopped (`cargo xtask status`), then deploy again: deploy starts it".into(),
        }),
        Some(existing) if existing.status == DbStatus::Deleting => conflicts.push(Conflict {
            resource: format!("RDS instance {}", spec.identifier),
            problem: "is being deleted".into(),
            fix: "wait a few minutes for the deletion to finish (`cargo xtask status` shows it), then deploy again"
                .into(),
        }),
        Some(existing) => {
            let version_matches = version_satisfies(&existing.engine_version, &spec.engine_version);
            let fixed = [
                (existing.engine != spec.engine, format!("runs {}, not {}", existing.engine, spec.engine)),
                (!version_matches, format!("runs version {}, not {}", existing.engine_version, spec.engine_version)),
                (
                    spec.instance_class != existing.instance_class.as_str(),
                    format!("is a {}, not a {}", existing.instance_class, spec.instance_class),
                ),
                (
                    spec.storage_type != existing.storage_type.as_str(),
                    format!("has {} storage, not {}", existing.storage_type, spec.storage_type),
                ),
                (
                    existing.allocated_storage_gib != spec.allocated_storage_gib,
                    format!("has {} GiB, not {}", existing.allocated_storage_gib, spec.allocated_storage_gib),
                ),
                (existing.max_allocated_storage_gib.is_some(), "has storage autoscaling on".to_owned()),
                (existing.publicly_accessible, "is publicly accessible".to_owned()),
                (!existing.storage_encrypted, "has unencrypted storage".to_owned()),
                (
                    existing.subnet_group.as_ref() != Some(&group.name),
                    format!("is in subnet group {}", existing.subnet_group.as_deref().unwrap_or("(none)")),
                ),
                (
                    existing.database_name != spec.database_name,
                    format!("holds database {}, not {}", existing.database_name, spec.database_name),
                ),
                (
                    existing.master_username != spec.master_username,
                    format!("has master user {}", existing.master_username),
                ),
                (existing.master_secret_arn.is_none(), "does not have its password managed by RDS".to_owned()),
            ];
            for (differs, problem) in fixed {
                if differs {
                    conflicts.push(Conflict {
                        resource: format!("RDS instance {}", spec.identifier),
                        problem,
                        fix: recreate.into(),
                    });
                }
            }
            // A stopped instance takes no modification: it is started first.
            if existing.status == DbStatus::Stopped {
                steps.push(DatabaseStep::StartDbInstance { identifier: spec.identifier.clone() });
                steps.push(DatabaseStep::WaitDbInstanceStarted { identifier: spec.identifier.clone() });
            }
            let groups_differ = !matches!(existing.security_groups.as_slice(), [only] if spec.security_group.is(only));
            let protection_differs = existing.deletion_protection != spec.deletion_protection;
            let multi_az_differs = existing.multi_az != spec.multi_az;
            let modified = groups_differ || protection_differs || multi_az_differs;
            if modified {
                steps.push(DatabaseStep::ModifyDbInstance {
                    identifier: spec.identifier.clone(),
                    deletion_protection: protection_differs.then_some(spec.deletion_protection),
                    security_groups: groups_differ.then(|| vec![spec.security_group.clone()]),
                    multi_az: multi_az_differs.then_some(spec.multi_az),
                });
            }
            steps.extend(add_tags(&existing.arn, &spec.tags, &existing.tags));
            if !matches!(existing.status, DbStatus::Available | DbStatus::Stopped) || modified {
                steps.push(DatabaseStep::WaitDbInstanceAvailable { identifier: spec.identifier.clone() });
            }
        }
    }
    plan
}

/// The instance (after a final snapshot of the given name, if any; with its automated
/// backups), waited for until gone, then its subnet group. Only the stack's are observed;
/// deletion protection is never turned off behind the user's back.
pub fn teardown_plan(
    observed: &Observed,
    identifier: &str,
    subnet_group: &str,
    final_snapshot: Option<String>,
) -> Plan<DatabaseStep> {
    let mut plan = Plan::new(Tier::Database);
    if let Some(instance) = &observed.instance {
        if instance.deletion_protection {
            plan.conflicts.push(Conflict {
                resource: format!("RDS instance {identifier}"),
                problem: "has deletion protection on".into(),
                fix: "set database.deletion_protection = false, run `cargo xtask deploy database`, then tear down"
                    .into(),
            });
        }
        if instance.status != DbStatus::Deleting {
            plan.steps.push(DatabaseStep::DeleteDbInstance { identifier: identifier.to_owned(), final_snapshot });
        }
        plan.steps.push(DatabaseStep::WaitDbInstanceDeleted { identifier: identifier.to_owned() });
    }
    if observed.subnet_group.is_some() {
        plan.steps.push(DatabaseStep::DeleteDbSubnetGroup { name: subnet_group.to_owned() });
    }
    plan
}
