//! The pure half of the tier: plans from hand-built observed states.

use three_tier_core::outputs::NetworkRefs;
use three_tier_core::{Config, Graph, Ref, Step, Tier};

use crate::desired::{Desired, desired};
use crate::observe::{DbStatus, Observed, ObservedInstance, ObservedSubnetGroup};
use crate::plan::{DatabaseStep, plan, teardown_plan};

fn network() -> NetworkRefs {
    NetworkRefs::example()
}

fn default_desired() -> Desired {
    desired(&Config::default_config(), &network())
}

fn deployed(desired: &Desired) -> Observed {
    let spec = &desired.instance;
    let mut subnet_ids: Vec<String> = desired.subnet_group.subnets.iter().map(Ref::to_string).collect();
    subnet_ids.sort();
    Observed {
        subnet_group: Some(ObservedSubnetGroup {
            arn: format!("arn:aws:rds:ap-northeast-1:1:subgrp:{}", desired.subnet_group.name),
            subnet_ids,
            tags: desired.subnet_group.tags.pairs.clone(),
        }),
        instance: Some(ObservedInstance {
            arn: format!("arn:aws:rds:ap-northeast-1:1:db:{}", spec.identifier),
            status: DbStatus::Available,
            engine: "mysql".into(),
            engine_version: "8.4.7".into(),
            instance_class: spec.instance_class.to_string(),
            storage_type: "gp2".into(),
            allocated_storage_gib: 20,
            max_allocated_storage_gib: None,
            multi_az: spec.multi_az,
            zone: Some("ap-northeast-1a".into()),
            standby_zone: spec.multi_az.then(|| "ap-northeast-1c".into()),
            publicly_accessible: false,
            storage_encrypted: true,
            deletion_protection: false,
            subnet_group: Some(desired.subnet_group.name.clone()),
            security_groups: vec![spec.security_group.to_string()],
            database_name: "sample".into(),
            master_username: "admin".into(),
            endpoint: Some(("three-tier-db.x.ap-northeast-1.rds.amazonaws.com".into(), 3306)),
            master_secret_arn: Some("arn:aws:secretsmanager:ap-northeast-1:1:secret:rds!db-1".into()),
            tags: spec.tags.pairs.clone(),
        }),
        foreign_names: vec![],
        observed_at: 1,
    }
}

#[test]
fn fresh_plan_builds_the_spec() {
    let plan = plan(&default_desired(), &Observed::default());
    assert!(plan.conflicts.is_empty());
    insta::assert_yaml_snapshot!("database_fresh_plan", plan);
    insta::assert_snapshot!("database_fresh_plan_text", plan.render());
}

#[test]
fn the_plan_never_holds_a_password() {
    /// The paths of the keys that would hold a password or a secret's value, anywhere in
    /// `value`.
    fn secret_keys(value: &serde_json::Value, path: &str, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(fields) => {
                for (key, field) in fields {
                    let lower = key.to_lowercase();
                    if ["password", "passwd", "pwd", "secret_string"].iter().any(|word| lower.contains(word)) {
                        found.push(format!("{path}.{key}"));
                    }
                    secret_keys(field, &format!("{path}.{key}"), found);
                }
            }
            serde_json::Value::Array(items) => {
                items.iter().enumerate().for_each(|(i, item)| secret_keys(item, &format!("{path}[{i}]"), found))
            }
            _ => {}
        }
    }
    let desired = default_desired();
    let plans = [plan(&desired, &Observed::default()), plan(&desired, &deployed(&desired))];
    for plan in plans {
        let serialized = serde_json::to_value(&plan).unwrap();
        let mut found = Vec::new();
        secret_keys(&serialized, "plan", &mut found);
        assert_eq!(found, Vec::<String>::new(), "{serialized:#}");
    }
}

#[test]
fn a_complete_deploy_plans_nothing_and_a_minor_version_is_the_configured_major() {
    let desired = default_desired();
    let plan = plan(&desired, &deployed(&desired));
    assert_eq!(plan.steps, vec![], "{}", plan.render());
    assert!(plan.conflicts.is_empty());
}

#[test]
fn a_creating_instance_is_waited_for() {
    let desired = default_desired();
    let mut observed = deployed(&desired);
    observed.instance.as_mut().unwrap().status = DbStatus::Creating;
    let plan = plan(&desired, &observed);
    assert_eq!(plan.steps, vec![DatabaseStep::WaitDbInstanceAvailable { identifier: "three-tier-db".into() }]);
}

#[test]
fn drift_and_conflicts() {
    let desired = default_desired();
    let mut observed = deployed(&desired);
    let instance = observed.instance.as_mut().unwrap();
    instance.deletion_protection = true;
    instance.security_groups = vec!["sg-default".into()];
    instance.publicly_accessible = true;
    instance.engine_version = "8.0.39".into();
    let plan = plan(&desired, &observed);
    insta::assert_snapshot!("database_drift_plan_text", plan.render());
    assert!(plan.conflicts.iter().any(|c| c.problem == "is publicly accessible"));
    assert!(plan.conflicts.iter().any(|c| c.problem.contains("8.0.39")));
    assert!(plan.steps.contains(&DatabaseStep::ModifyDbInstance {
        identifier: "three-tier-db".into(),
        deletion_protection: Some(false),
        security_groups: Some(vec![Ref::existing("sg-db")]),
        multi_az: None,
    }));
}

fn multi_az_desired() -> Desired {
    let mut config = Config::default_config();
    config.database.multi_az = true;
    desired(&config, &network())
}

#[test]
fn multi_az_is_created_and_turned_on_and_off_in_place() {
    let multi = multi_az_desired();
    let fresh = plan(&multi, &Observed::default());
    let create = fresh.steps.iter().map(Step::describe).find(|d| d.starts_with("RDS instance")).unwrap();
    assert!(create.contains("Multi-AZ with a standby in another zone"), "{create}");

    // Single-AZ running, Multi-AZ asked for: modified in place, waited for, no conflict.
    for (wanted, running) in [(&multi, &default_desired()), (&default_desired(), &multi)] {
        let plan = plan(wanted, &deployed(running));
        assert!(plan.conflicts.is_empty(), "{:?}", plan.conflicts);
        assert_eq!(
            plan.steps,
            [
                DatabaseStep::ModifyDbInstance {
                    identifier: "three-tier-db".into(),
                    deletion_protection: None,
                    security_groups: None,
                    multi_az: Some(wanted.instance.multi_az),
                },
                DatabaseStep::WaitDbInstanceAvailable { identifier: "three-tier-db".into() },
            ]
        );
    }
    assert!(plan(&multi, &deployed(&multi)).steps.is_empty());
}

#[test]
fn another_stacks_instance_is_a_conflict_and_left_alone_by_teardown() {
    let desired = default_desired();
    let mut observed = deployed(&desired);
    // Observe leaves out an instance another holds, and names it.
    observed.instance = None;
    observed.foreign_names.push(desired.instance.identifier.clone());
    let plan = plan(&desired, &observed);
    assert!(plan.conflicts.iter().any(|c| c.problem.starts_with("exists and is not this stack's")));
    let teardown = teardown_plan(&observed, "three-tier-db", "db-subnet-group", None);
    assert!(!teardown.steps.iter().any(|s| matches!(s, DatabaseStep::DeleteDbInstance { .. })));
}

#[test]
fn teardown_deletes_the_instance_then_its_subnet_group() {
    let observed = deployed(&default_desired());
    let plan = teardown_plan(&observed, "three-tier-db", "db-subnet-group", None);
    insta::assert_snapshot!("database_teardown_plan_text", plan.render());
    // Its waits declare their bounds: the graph refuses one that does not.
    Graph::build(plan.steps.iter().map(|s| (Tier::Database, s.clone()))).unwrap();
    assert_eq!(
        plan.steps,
        vec![
            DatabaseStep::DeleteDbInstance { identifier: "three-tier-db".into(), final_snapshot: None },
            DatabaseStep::WaitDbInstanceDeleted { identifier: "three-tier-db".into() },
            DatabaseStep::DeleteDbSubnetGroup { name: "db-subnet-group".into() },
        ]
    );
    let with_snapshot =
        teardown_plan(&observed, "three-tier-db", "db-subnet-group", Some("three-tier-db-final-1".into()));
    assert!(with_snapshot.steps[0].describe().contains("after final snapshot three-tier-db-final-1"));
}

#[test]
fn teardown_refuses_a_protected_instance() {
    let mut observed = deployed(&default_desired());
    observed.instance.as_mut().unwrap().deletion_protection = true;
    let plan = teardown_plan(&observed, "three-tier-db", "db-subnet-group", None);
    let err = plan.check_conflicts().unwrap_err().to_string();
    assert!(err.contains("deletion protection") && err.contains("database.deletion_protection = false"), "{err}");
}

#[test]
fn minor_upgrades_by_rds_are_not_drift() {
    let desired = default_desired();
    let mut observed = deployed(&desired);
    for (running, configured, fits) in [
        ("8.4.7", "8.4", true),
        ("8.4.7", "8.4.3", true),
        ("8.4.2", "8.4.3", false),
        ("8.0.39", "8.4", false),
        ("9.0.1", "8.4", false),
    ] {
        observed.instance.as_mut().unwrap().engine_version = running.into();
        let mut desired = desired.clone();
        desired.instance.engine_version = configured.into();
        let plan = plan(&desired, &observed);
        assert_eq!(plan.conflicts.is_empty(), fits, "{running} for {configured}: {:?}", plan.conflicts);
    }
}

#[test]
fn a_stopped_instance_is_started() {
    let desired = default_desired();
    let mut observed = deployed(&desired);
    observed.instance.as_mut().unwrap().status = DbStatus::Stopped;
    let plan = plan(&desired, &observed);
    assert_eq!(
        plan.steps,
        vec![
            DatabaseStep::StartDbInstance { identifier: "three-tier-db".into() },
            DatabaseStep::WaitDbInstanceStarted { identifier: "three-tier-db".into() },
        ]
    );

    // A change to a stopped instance waits until it has started, then for the change.
    observed.instance.as_mut().unwrap().deletion_protection = true;
    let changed = crate::plan::plan(&desired, &observed);
    let graph = Graph::build(changed.steps.iter().map(|s| (Tier::Database, s.clone()))).unwrap();
    let node = |matches: fn(&DatabaseStep) -> bool| graph.find(matches).unwrap();
    let started = node(|s| matches!(s, DatabaseStep::WaitDbInstanceStarted { .. }));
    let modify = node(|s| matches!(s, DatabaseStep::ModifyDbInstance { .. }));
    let available = node(|s| matches!(s, DatabaseStep::WaitDbInstanceAvailable { .. }));
    assert!(graph.ancestors(modify).contains(&started));
    assert!(graph.ancestors(available).contains(&modify));
}
