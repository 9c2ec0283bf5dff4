//! The pure half of the tier, and the user data it renders.

use std::collections::BTreeMap;
use std::process::Command;

use aws_sdk_ec2::types::{HttpTokensState, InstanceStateName};
use three_tier_core::outputs::{AlbRefs, NetworkRefs};
use three_tier_core::{Config, Ref, Step};

use crate::desired::{Desired, Image, ImageSource, desired};
use crate::observe::{
    LegacyIam, Observed, ObservedInstance, ObservedInstanceProfile, ObservedRole, ObservedTarget, ObservedTargetGroup,
};
use crate::plan::{ComputeStep, plan, teardown_plan};
use crate::user_data;

fn inputs() -> (NetworkRefs, AlbRefs) {
    let network = NetworkRefs::example();
    let alb = AlbRefs {
        app_target_group: Ref::existing("arn:aws:elasticloadbalancing:ap-northeast-1:1:targetgroup/app-target-group/1"),
        rule_target_groups: Vec::new(),
    };
    (network, alb)
}

/// An account without the tier: the plan launches the AMI the parameter names now.
fn fresh(desired: &Desired) -> Observed {
    let image = Image {
        id: "ami-0123".into(),
        source: desired.instances[0].image.clone(),
        root_device: "/dev/xvda".into(),
        snapshot_gib: 8,
    };
    Observed { image: Some(image), ..Observed::default() }
}

fn default_desired() -> Desired {
    let (network, alb) = inputs();
    desired(&Config::default_config(), &network, &alb)
}

fn deployed(desired: &Desired) -> Observed {
    Observed {
        image: None,
        role: Some(ObservedRole {
            arn: format!("arn:aws:iam::1:role/{}", desired.role.name),
            attached_policies: desired.role.managed_policies.clone(),
            inline_policies: BTreeMap::from([(
                desired.secret_policy.name.clone(),
                desired.secret_policy.document("123456789012").replace('"', "%22").replace(':', "%3A"),
            )]),
            tags: desired.role.tags.pairs.clone(),
        }),
        instance_profile: Some(ObservedInstanceProfile {
            arn: format!("arn:aws:iam::1:instance-profile/{}", desired.instance_profile.name),
            roles: vec![desired.role.name.clone()],
            tags: desired.instance_profile.tags.pairs.clone(),
        }),
        instances: desired
            .instances
            .iter()
            .enumerate()
            .map(|(index, spec)| ObservedInstance {
                key: spec.key.clone(),
                retiring: false,
                id: format!("i-{}", index + 1),
                image_id: Some("ami-0123".into()),
                state: InstanceStateName::Running,
                subnet_id: spec.subnet.to_string(),
                security_groups: vec![spec.security_group.to_string()],
                instance_type: spec.instance_type.to_string(),
                private_ip: format!("10.0.0.{}", index + 4),
                public_ip: None,
                instance_profile_arn: Some(format!(
                    "arn:aws:iam::1:instance-profile/{}",
                    desired.instance_profile.name
                )),
                http_tokens: Some(HttpTokensState::Required),
                user_data: Some(spec.user_data.clone()),
                root_volume: None,
                tags: spec.tags.pairs.clone(),
            })
            .collect(),
        target_groups: vec![ObservedTargetGroup {
            name: desired.registrations[0].group_name.clone(),
            arn: desired.registrations[0].target_group.to_string(),
            targets: (1..=desired.instances.len())
                .map(|n| ObservedTarget { id: format!("i-{n}"), port: 3030, health: "healthy".into() })
                .collect(),
        }],
        foreign_names: vec![],
        legacy: None,
    }
}

#[test]
fn fresh_plan_builds_the_spec() {
    let desired = default_desired();
    let plan = plan(&desired, &fresh(&desired));
    assert!(plan.conflicts.is_empty());
    insta::assert_snapshot!("compute_fresh_plan_text", plan.render());
    // The script is snapshot-tested on its own; here it would only repeat it.
    let mut without_script = plan.clone();
    for step in &mut without_script.steps {
        if let ComputeStep::RunInstance { user_data, .. } = step {
            *user_data = format!("[{} bytes: see the user_data snapshot]", user_data.len());
        }
    }
    insta::assert_yaml_snapshot!("compute_fresh_plan", without_script);
}

#[test]
fn the_instance_is_registered_once_it_runs() {
    let desired = default_desired();
    let plan = plan(&desired, &fresh(&desired));
    let kinds: Vec<&str> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            ComputeStep::RunInstance { .. } => Some("run"),
            ComputeStep::WaitInstanceRunning { .. } => Some("wait"),
            ComputeStep::RegisterTarget { instance: Ref::Planned(_), port: 3030, .. } => Some("register on 3030"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["run", "wait", "register on 3030"]);
}

#[test]
fn a_complete_deploy_plans_nothing() {
    let desired = default_desired();
    let plan = plan(&desired, &deployed(&desired));
    assert_eq!(plan.steps, vec![], "{}", plan.render());
    assert!(plan.conflicts.is_empty());
}

#[test]
fn drift_is_repaired_in_place() {
    let desired = default_desired();
    let mut observed = deployed(&desired);
    let instance = &mut observed.instances[0];
    instance.state = InstanceStateName::Stopped;
    instance.http_tokens = Some(HttpTokensState::Optional);
    instance.security_groups = vec!["sg-default".into()];
    observed.role.as_mut().unwrap().attached_policies.push("arn:aws:iam::aws:policy/AdministratorAccess".into());
    observed.target_groups[0].targets =
        vec![ObservedTarget { id: "i-old".into(), port: 3030, health: "unused".into() }];
    let plan = plan(&desired, &observed);
    assert!(plan.conflicts.is_empty(), "{:?}", plan.conflicts);
    insta::assert_snapshot!("compute_drift_plan_text", plan.render());
}

#[test]
fn iam_names_held_by_others_and_public_instances_are_conflicts() {
    let desired = default_desired();
    let mut observed = deployed(&desired);
    // Observe leaves out a role another holds, and names it.
    observed.role = None;
    observed.foreign_names.push(desired.role.name.clone());
    observed.instances[0].public_ip = Some("203.0.113.7".into());
    let plan = plan(&desired, &observed);
    let problems: Vec<String> = plan.conflicts.iter().map(|c| format!("{} {}", c.resource, c.problem)).collect();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(&format!("IAM role {} exists and is not this stack's", desired.role.name))),
        "{problems:?}"
    );
    assert!(problems.iter().any(|p| p.contains("public IP")), "{problems:?}");
}

#[test]
fn teardown_deregisters_terminates_then_removes_iam() {
    let desired = default_desired();
    let observed = deployed(&desired);
    let plan = teardown_plan(&observed);
    insta::assert_snapshot!("compute_teardown_plan_text", plan.render());
    // Its waits declare their bounds: the graph refuses one that does not.
    three_tier_core::Graph::build(plan.steps.iter().map(|s| (three_tier_core::Tier::Compute, s.clone()))).unwrap();
    let names: Vec<String> = plan.steps.iter().map(|s| s.describe()).collect();
    let at = |prefix: &str| names.iter().position(|n| n.starts_with(prefix)).unwrap();
    assert!(at("deregister") < at("instance three-tier-app"));
    assert!(at("wait for instance") < at("take role"));
    assert!(at("take role") < at("instance profile"));
    assert!(at("detach") < at("IAM role"));

    // IAM resources another stack owns are not observed, so they are left alone.
    let mut foreign = observed.clone();
    foreign.role = None;
    foreign.instance_profile = None;
    foreign.foreign_names = vec![desired.role.name.clone(), desired.instance_profile.name.clone()];
    let plan = teardown_plan(&foreign);
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s, ComputeStep::DeleteRole { .. } | ComputeStep::DeleteInstanceProfile { .. }))
    );
}

#[test]
fn a_launch_uses_the_images_id_and_a_root_volume_that_holds_its_snapshot() {
    let desired = default_desired();
    let mut observed = fresh(&desired);
    observed.image.as_mut().unwrap().snapshot_gib = 30;
    let plan = plan(&desired, &observed);
    let launch = plan.steps.iter().find_map(|s| match s {
        ComputeStep::RunInstance { image, root_volume_gib, .. } => Some((image.id.clone(), *root_volume_gib)),
        _ => None,
    });
    assert_eq!(launch, Some(("ami-0123".to_owned(), 30)));
    assert!(matches!(&desired.instances[0].image, ImageSource::SsmParameter(_)));

    // Without the image looked up, nothing is launched blind.
    let blind = crate::plan::plan(&desired, &Observed::default());
    assert!(!blind.conflicts.is_empty());
}

#[test]
fn user_data_is_the_rendered_template() {
    insta::assert_snapshot!("user_data", user_data::render(&[3030]));
}

#[test]
fn user_data_writes_the_seeds_compose_file() {
    let script = user_data::render(&Config::default_config().target_ports());
    let compose = user_data::compose_file_in(&script).expect("the script writes a compose file");
    let written: serde_yaml_ng::Value = serde_yaml_ng::from_str(&compose).unwrap();
    // The seed's file, as its blog post shows it.
    let seed: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        "version: '3'\nservices:\n  nginx:\n    image: nginx:latest\n    ports:\n      - \"3030:80\"\n",
    )
    .unwrap();
    assert_eq!(written, seed);
    assert!(script.contains("docker compose up -d"), "started with `docker compose up -d`");
    assert!(script.contains("systemctl enable --now three-tier-app.service"), "kept up across reboots");
    assert!(script.contains("systemctl enable --now docker.service"));
    assert!(script.contains("dnf install -y docker"), "Docker from the AL2023 repositories");
    assert!(
        script.contains(&format!(
            "{}  $plugins/docker-compose.download\" | sha256sum --check",
            user_data::COMPOSE_SHA256
        ))
    );
    assert!(!script.contains("{{"), "every placeholder is filled");
}

#[test]
fn the_compose_file_publishes_nginx_on_the_configured_app_port() {
    let mut config = Config::default_config();
    config.ports.app = three_tier_core::config::Port::new(8081).unwrap();
    let (network, alb) = inputs();
    let desired = desired(&config, &network, &alb);
    let compose =
        user_data::compose_file_in(&desired.instances[0].user_data).expect("the script writes a compose file");
    let written: serde_yaml_ng::Value = serde_yaml_ng::from_str(&compose).unwrap();
    let ports = &written["services"]["nginx"]["ports"];
    assert_eq!(ports, &serde_yaml_ng::Value::Sequence(vec!["8081:80".into()]), "{compose}");
    assert_eq!(desired.registrations[0].port, 8081, "the target registers on the same port");
    assert!(desired.instances[0].user_data.contains("Environment=HOME=/root"));
}

#[test]
fn user_data_passes_shellcheck() {
    let dir = std::env::temp_dir().join(format!("three-tier-user-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("user-data.sh");
    std::fs::write(&path, user_data::render(&[3030])).unwrap();
    let output = Command::new("shellcheck").arg("--severity=style").arg(&path).output().unwrap_or_else(|err| {
        panic!("shellcheck is needed ({err}): `cargo xtask ci` installs it, or `apt-get install shellcheck`")
    });
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
}

#[test]
fn user_data_holds_no_secret() {
    let script = user_data::render(&[3030]).to_lowercase();
    for word in ["password", "secret", "aws_secret_access_key"] {
        assert!(!script.contains(word), "{word}");
    }
}

#[test]
fn the_secret_policy_grants_the_stacks_database_secret_only() {
    let policy = default_desired().secret_policy;
    let document: serde_json::Value = serde_json::from_str(&policy.document("123456789012")).unwrap();
    let statement = &document["Statement"][0];
    assert_eq!(statement["Action"], "secretsmanager:GetSecretValue");
    assert_eq!(statement["Resource"], "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:rds!db-*");
    assert_eq!(
        statement["Condition"]["StringEquals"]["secretsmanager:ResourceTag/aws:rds:primaryDBInstanceArn"],
        "arn:aws:rds:ap-northeast-1:123456789012:db:three-tier-db"
    );
    assert!(policy.matches(&policy.document("1")));
    let other = crate::desired::SecretPolicySpec { db_instance_identifier: "other-db".into(), ..policy.clone() };
    assert!(!other.matches(&policy.document("1")));
}

#[test]
fn an_instance_still_stopping_is_waited_for_before_it_is_started() {
    let desired = default_desired();
    let mut observed = deployed(&desired);
    observed.instances[0].state = InstanceStateName::Stopping;
    let plan = plan(&desired, &observed);
    let kinds: Vec<&str> = plan
        .steps
        .iter()
        .map(|s| match s {
            ComputeStep::WaitInstanceStopped { .. } => "wait stopped",
            ComputeStep::StartInstance { .. } => "start",
            ComputeStep::WaitInstanceRunning { .. } => "wait running",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["wait stopped", "start", "wait running"]);
}

#[test]
fn an_instance_whose_compose_file_misses_a_target_groups_port_is_replaced_while_the_old_one_serves() {
    // Deployed before the config gained a listener rule on 8082: the running instance
    // publishes 3030 alone, and cloud-init will not run the new user data on it.
    let deployed_desired = default_desired();
    let mut observed = deployed(&deployed_desired);
    observed.image = fresh(&deployed_desired).image;
    let mut config = Config::default_config();
    config.alb.rules.push(three_tier_core::config::ListenerRuleConfig {
        priority: 10,
        path_pattern: "/api/*".into(),
        target_group_name: "api-target-group".into(),
        port: three_tier_core::config::Port::new(8082).unwrap(),
    });
    let (network, mut alb) = inputs();
    alb.rule_target_groups.push(Ref::existing("arn:aws:elasticloadbalancing:ap-northeast-1:1:targetgroup/api/2"));
    let desired = desired(&config, &network, &alb);
    let plan = plan(&desired, &observed);
    assert!(plan.conflicts.is_empty(), "{:?}", plan.conflicts);
    let steps: Vec<String> = plan.steps.iter().map(Step::describe).collect();
    let group = &desired.registrations[0].group_name;
    assert_eq!(
        steps[0],
        "replace instance three-tier-app (i-1): it runs nginx published on 3030, not on the target groups' ports \
         3030, 8082; a new one starts, and once it is a healthy target this one drains and terminates, so the page \
         is served throughout"
    );
    assert!(steps[1].starts_with("instance three-tier-app (t3.micro, ami-0123"), "{steps:?}");
    assert_eq!(
        steps[2..],
        [
            "wait for instance three-tier-app to run".to_owned(),
            format!("wait for instance three-tier-app ((new instance)) to be a healthy target of {group}"),
            "wait for instance three-tier-app ((new instance)) to be a healthy target of api-target-group".to_owned(),
            format!("deregister i-1:3030 from target group {group}, its replacement instance healthy"),
            format!("wait for i-1 to drain from target group {group}"),
            "instance three-tier-app (i-1)".to_owned(),
            "wait for instance three-tier-app to terminate".to_owned(),
            format!("register instance (new instance) in target group {group} on port 3030"),
            "register instance (new instance) in target group api-target-group on port 8082".to_owned(),
        ]
    );
    // The old instance leaves only once the new one is a healthy target.
    let graph =
        three_tier_core::Graph::build(plan.steps.iter().map(|s| (three_tier_core::Tier::Compute, s.clone()))).unwrap();
    let healthy = graph.find(|s| matches!(s, ComputeStep::WaitTargetHealthy { .. })).unwrap();
    let launch = graph.find(|s| matches!(s, ComputeStep::RunInstance { .. })).unwrap();
    let retire = graph.find(|s| matches!(s, ComputeStep::RetireInstance { .. })).unwrap();
    for leaving in [
        graph.find(|s| matches!(s, ComputeStep::DrainTarget { .. })).unwrap(),
        graph.find(|s| matches!(s, ComputeStep::TerminateInstance { .. })).unwrap(),
    ] {
        assert!(graph.ancestors(leaving).contains(&healthy), "{}", graph.nodes[leaving].step.describe());
    }
    assert!(graph.ancestors(launch).contains(&retire), "the old one is marked before its key has two");

    // Any other change of the script replaces it too: cloud-init ran the old one.
    let mut observed = deployed(&deployed_desired);
    observed.image = fresh(&deployed_desired).image;
    let edited = deployed_desired.instances[0].user_data.replace("set -euxo pipefail", "set -eux");
    assert_ne!(edited, deployed_desired.instances[0].user_data);
    observed.instances[0].user_data = Some(edited);
    let plan = crate::plan::plan(&deployed_desired, &observed);
    assert!(plan.steps[0].describe().contains("it was launched with other user data than the config gives"));
    // Without the AMI looked up (a bug: deploy reads it whenever one is replaced), it is
    // a conflict, not a blind launch.
    observed.image = None;
    let problems = plan_conflicts(&deployed_desired, &observed);
    assert_eq!(problems, ["was launched with other user data than the config gives"]);
}

#[test]
fn instances_are_replaced_one_at_a_time() {
    let two = spread(2);
    let mut observed = deployed(&two);
    observed.image = fresh(&two).image;
    for instance in &mut observed.instances {
        instance.instance_type = "t3.nano".into();
    }
    let plan = plan(&two, &observed);
    assert!(plan.conflicts.is_empty(), "{:?}", plan.conflicts);
    let graph =
        three_tier_core::Graph::build(plan.steps.iter().map(|s| (three_tier_core::Tier::Compute, s.clone()))).unwrap();
    let healthy =
        |key: &str| graph.find(|s| matches!(s, ComputeStep::WaitTargetHealthy { key: k, .. } if k == key)).unwrap();
    let launch = |key: &str| graph.find(|s| matches!(s, ComputeStep::RunInstance { key: k, .. } if k == key)).unwrap();
    let drain = |id: &str| {
        graph.find(|s| matches!(s, ComputeStep::DrainTarget { instance_id, .. } if instance_id == id)).unwrap()
    };
    // The second is launched only once the first's replacement is healthy; each old one
    // is drained only once its own replacement is.
    assert!(graph.ancestors(launch("instance-2")).contains(&healthy("instance")));
    assert!(graph.ancestors(drain("i-1")).contains(&healthy("instance")));
    assert!(graph.ancestors(drain("i-2")).contains(&healthy("instance-2")));
    assert!(!graph.ancestors(launch("instance")).contains(&healthy("instance-2")));
    let reasons: Vec<&Vec<String>> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            ComputeStep::RetireInstance { reasons, .. } => Some(reasons),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, [&vec!["is a t3.nano, not a t3.micro".to_owned()]; 2]);
}

#[test]
fn a_replacement_cut_short_goes_on_from_where_it_stopped() {
    // The run died after the new instance launched: the key has the new one (not healthy
    // yet) and the old one, marked retiring; both are registered.
    let desired = default_desired();
    let mut observed = deployed(&desired);
    let mut new = observed.instances[0].clone();
    new.id = "i-9".into();
    observed.instances[0].retiring = true;
    observed.instances.push(new);
    observed.target_groups[0].targets.push(ObservedTarget { id: "i-9".into(), port: 3030, health: "initial".into() });
    let plan = plan(&desired, &observed);
    assert!(plan.conflicts.is_empty(), "{:?}", plan.conflicts);
    let steps: Vec<String> = plan.steps.iter().map(Step::describe).collect();
    let group = &desired.registrations[0].group_name;
    assert_eq!(
        steps,
        [
            format!("wait for instance three-tier-app (i-9) to be a healthy target of {group}"),
            format!("deregister i-1:3030 from target group {group}, its replacement instance healthy"),
            format!("wait for i-1 to drain from target group {group}"),
            "instance three-tier-app (i-1)".to_owned(),
            "wait for instance three-tier-app to terminate".to_owned(),
        ]
    );
    // Once the new one is healthy, only the old one's leaving is left.
    observed.target_groups[0].targets.last_mut().unwrap().health = "healthy".into();
    let plan = crate::plan::plan(&desired, &observed);
    assert_eq!(plan.steps.len(), 4, "{:?}", plan.steps);
}

fn plan_conflicts(desired: &Desired, observed: &Observed) -> Vec<String> {
    plan(desired, observed).conflicts.into_iter().map(|c| c.problem).collect()
}

#[test]
fn iam_names_carry_the_region_and_the_region_tag() {
    let mut config = Config::default_config();
    config.stack.name = "shop".into();
    config.stack.region = "eu-west-1".into();
    let (network, alb) = inputs();
    let desired = desired(&config, &network, &alb);
    assert_eq!(desired.role.name, "shop-app-role-eu-west-1");
    assert_eq!(desired.instance_profile.name, "shop-app-profile-eu-west-1");
    assert_eq!(desired.instance_profile.role, desired.role.name);
    for tags in [&desired.role.tags, &desired.instance_profile.tags] {
        assert_eq!(tags.pairs.get("three-tier:region").map(String::as_str), Some("eu-west-1"));
    }
    // The longest stack name in the longest region still fits IAM's 64 characters.
    config.stack.name = "a".repeat(24);
    config.stack.region = "ap-southeast-5".into();
    let desired = crate::desired::desired(&config, &network, &alb);
    assert!(desired.role.name.len() <= 64, "{}", desired.role.name);
}

/// A stack deployed before IAM names carried the region: its instance runs with the
/// legacy profile, which holds the legacy role.
fn deployed_with_legacy_names(desired: &Desired, users: Vec<(String, String)>) -> Observed {
    let mut observed = deployed(desired);
    let role =
        observed.role.take().map(|role| ObservedRole { arn: "arn:aws:iam::1:role/three-tier-app-role".into(), ..role });
    let profile = ObservedInstanceProfile {
        arn: "arn:aws:iam::1:instance-profile/three-tier-app-profile".into(),
        roles: vec!["three-tier-app-role".into()],
        tags: observed.instance_profile.take().unwrap().tags,
    };
    observed.instances[0].instance_profile_arn = Some(profile.arn.clone());
    observed.legacy = Some(LegacyIam { role, profile: Some(profile), users });
    observed
}

#[test]
fn an_instance_on_the_legacy_profile_moves_to_the_regional_one_and_the_legacy_goes_after() {
    let desired = default_desired();
    let observed = deployed_with_legacy_names(&desired, vec![]);
    let plan = plan(&desired, &observed);
    assert!(plan.conflicts.is_empty(), "{:?}", plan.conflicts);
    let graph =
        three_tier_core::graph::Graph::build(plan.steps.iter().map(|s| (three_tier_core::Tier::Compute, s.clone())));
    assert!(graph.is_ok(), "the steps make one graph: {:?}", graph.err());
    let moved = plan.steps.iter().find(|s| matches!(s, ComputeStep::MoveInstanceProfile { .. }));
    let Some(ComputeStep::MoveInstanceProfile { id, from, to, kept, .. }) = moved else { panic!("{:#?}", plan.steps) };
    assert_eq!(
        (id.as_str(), from.as_str(), to.as_str()),
        ("i-1", "three-tier-app-profile", desired.instance_profile.name.as_str())
    );
    assert!(kept.is_empty());
    // The new profile holds its role before the instance moves to it, and the legacy role
    // and profile are emptied only after the move.
    let produced = |step: &ComputeStep| step.produces();
    let holds_role = plan.steps.iter().find(|s| matches!(s, ComputeStep::AddRoleToInstanceProfile { .. })).unwrap();
    assert!(moved.unwrap().after().iter().any(|key| produced(holds_role).contains(key)));
    let removals: Vec<&ComputeStep> = plan
        .steps
        .iter()
        .filter(|s| {
            matches!(s, ComputeStep::RemoveRoleFromInstanceProfile { profile, .. } if profile == "three-tier-app-profile")
                || matches!(s, ComputeStep::DetachRolePolicy { role, .. } | ComputeStep::DeleteRolePolicy { role, .. } if role == "three-tier-app-role")
        })
        .collect();
    assert_eq!(removals.len(), 3, "{:#?}", plan.steps);
    for removal in removals {
        assert!(removal.after().iter().any(|key| produced(moved.unwrap()).contains(key)), "{removal:?}");
    }
    assert!(plan.steps.contains(&ComputeStep::DeleteInstanceProfile { name: "three-tier-app-profile".into() }));
    assert!(plan.steps.contains(&ComputeStep::DeleteRole { name: "three-tier-app-role".into() }));
    assert!(!plan.steps.iter().any(|s| matches!(s, ComputeStep::DeleteRole { name } if *name == desired.role.name)));
}

#[test]
fn a_legacy_profile_another_region_runs_with_stays() {
    let desired = default_desired();
    let users = vec![("eu-west-1".to_owned(), "i-9".to_owned())];
    let observed = deployed_with_legacy_names(&desired, users);
    for plan in [plan(&desired, &observed), teardown_plan(&observed)] {
        assert!(
            !plan.steps.iter().any(|s| matches!(s,
                ComputeStep::DeleteRole { name } | ComputeStep::DeleteInstanceProfile { name } if name.ends_with("-app-role") || name.ends_with("-app-profile"))),
            "{:#?}",
            plan.steps
        );
    }
    let plan = plan(&desired, &observed);
    let text = plan.render();
    assert!(text.contains("three-tier-app-profile stays: i-9 in eu-west-1 still run with it"), "{text}");
    // Torn down here, the stack's regional role goes; the legacy one stays for eu-west-1.
    let mut teardown_observed = observed.clone();
    teardown_observed.role = deployed(&desired).role;
    let teardown = teardown_plan(&teardown_observed);
    assert!(teardown.steps.contains(&ComputeStep::DeleteRole { name: desired.role.name.clone() }));
    // With no other user, a teardown removes the legacy role and profile too.
    let alone = deployed_with_legacy_names(&desired, vec![]);
    let teardown = teardown_plan(&alone);
    assert!(teardown.steps.contains(&ComputeStep::DeleteInstanceProfile { name: "three-tier-app-profile".into() }));
    assert!(teardown.steps.contains(&ComputeStep::DeleteRole { name: "three-tier-app-role".into() }));
}

/// The default config with an app subnet in the other zone and `instances` instances.
fn spread(instances: u32) -> Desired {
    let text = format!(
        "{}\n[network.subnets.app-b]\nname = \"app-subnet2\"\ncidr = \"10.0.1.64/26\"\navailability_zone = \"ap-northeast-1c\"\n",
        Config::DEFAULT_TOML.replace("instances = 1", &format!("instances = {instances}"))
    );
    let path = std::path::Path::new("x.toml");
    let config = Config::parse(path, &text).unwrap();
    config.validate(path).unwrap();
    let (_, alb) = inputs();
    desired(&config, &NetworkRefs::example_for(&config), &alb)
}

#[test]
fn instances_are_keyed_and_spread_over_the_app_subnets() {
    let desired = spread(3);
    let placed: Vec<(&str, String, String)> =
        desired.instances.iter().map(|i| (i.key.as_str(), i.name.clone(), i.subnet.to_string())).collect();
    assert_eq!(
        placed,
        [
            ("instance", "three-tier-app".to_owned(), "subnet-app".to_owned()),
            ("instance-2", "three-tier-app-2".to_owned(), "subnet-app-b".to_owned()),
            ("instance-3", "three-tier-app-3".to_owned(), "subnet-app".to_owned()),
        ]
    );
    let plan = plan(&desired, &fresh(&desired));
    let launched: Vec<(&str, &str)> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            ComputeStep::RunInstance { key, tags, .. } => Some((key.as_str(), tags.pairs["three-tier:role"].as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(launched, [("instance", "instance"), ("instance-2", "instance-2"), ("instance-3", "instance-3")]);
    let registered: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            ComputeStep::RegisterTarget { instance, .. } => Some(instance.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(registered.len(), 3, "each instance in the app target group: {registered:?}");
}

#[test]
fn a_second_instance_is_launched_beside_the_first_and_removed_again_alone() {
    let one = spread(1);
    let two = spread(2);
    let mut observed = deployed(&one);
    observed.image = fresh(&two).image;
    let grow = plan(&two, &observed);
    let steps: Vec<String> = grow.steps.iter().map(Step::describe).collect();
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert!(steps[0].starts_with("instance three-tier-app-2 (t3.micro, ami-0123"), "{steps:?}");
    assert_eq!(steps[1], "wait for instance three-tier-app-2 to run");
    assert!(steps[2].starts_with("register instance (new instance-2) in target group"), "{steps:?}");

    let shrink = plan(&one, &deployed(&two));
    let steps: Vec<String> = shrink.steps.iter().map(Step::describe).collect();
    assert_eq!(
        steps,
        [
            "instance three-tier-app-2 (i-2)".to_owned(),
            "wait for instance three-tier-app-2 to terminate".to_owned(),
            format!("deregister i-2:3030 from target group {}", one.registrations[0].group_name),
        ]
    );
    assert!(shrink.conflicts.is_empty(), "{:?}", shrink.conflicts);
}

#[test]
fn an_instance_is_found_again_by_the_key_its_role_tag_holds() {
    use crate::desired::{instance_key, is_instance_key};
    assert!((0..12).map(instance_key).all(|key| is_instance_key(&key)));
    for other in ["instance-1", "instance-02", "instance-", "app", "instance-x"] {
        assert!(!is_instance_key(other), "{other}");
    }
}
