//! One stack name in two regions: IAM is account-wide, so each region's stack holds a
//! role and an instance profile of its own, and neither's teardown touches the other's.
//! Each test runs on an emulator of its own (one account), and judges IAM and EC2 with
//! its own reads.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Filter, IamInstanceProfileSpecification};
use three_tier_core::{AwsContext, Config};

use crate::stack::percent_decode;
use crate::support::PrivateEmulator;

const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

/// The default config in `region` (zones `<region>a` and `<region>b`) for `stack`.
fn config_in(stack: &str, region: &str) -> Config {
    let text = Config::DEFAULT_TOML.replace("ap-northeast-1c", &format!("{region}b")).replace("ap-northeast-1", region);
    let mut config = Config::parse(Path::new("test"), &text).expect("test config parses");
    config.stack.name = stack.to_owned();
    config.validate(Path::new("test")).expect("test config is valid");
    config
}

/// The instance profile the stack's instance in `ctx`'s region runs with, by its ARN's name.
async fn instance_profile_of(ctx: &AwsContext, stack: &str) -> String {
    let answer = ctx
        .ec2
        .describe_instances()
        .filters(Filter::builder().name("tag:three-tier:stack").values(stack).build())
        .filters(Filter::builder().name("instance-state-name").values("running").build())
        .send()
        .await
        .unwrap();
    let instances: Vec<_> = answer.reservations().iter().flat_map(|r| r.instances()).collect();
    assert_eq!(instances.len(), 1, "{instances:?}");
    let arn = instances[0].iam_instance_profile().and_then(|p| p.arn()).unwrap();
    arn.rsplit('/').next().unwrap().to_owned()
}

/// The roles in the instance profile `name`, or `None` when there is no such profile.
async fn profile_roles(ctx: &AwsContext, name: &str) -> Option<Vec<String>> {
    let answer = ctx.iam.get_instance_profile().instance_profile_name(name).send().await.ok()?;
    Some(answer.instance_profile().unwrap().roles().iter().map(|r| r.role_name().to_owned()).collect())
}

/// The database ARN the role's secret policy names, decoded.
async fn secret_policy(ctx: &AwsContext, role: &str) -> String {
    let policy = ctx.iam.get_role_policy().role_name(role).policy_name("read-database-secret").send().await.unwrap();
    percent_decode(policy.policy_document())
}

async fn deploy(ctx: &AwsContext, config: &Config) {
    stack::deploy(ctx, config, stack::TIERS).await.unwrap();
}

async fn plan_deploy(ctx: &AwsContext, config: &Config) -> stack::StackPlan {
    stack::plan_deploy(ctx, config, stack::TIERS).await.unwrap()
}

async fn teardown(ctx: &AwsContext, config: &Config) {
    let plan = stack::plan_teardown(ctx, config, stack::TIERS, false).await.unwrap();
    stack::teardown(ctx, &plan).await.unwrap();
}

async fn verify_passes(private: &PrivateEmulator, ctx: &AwsContext, config: &Config) {
    let traffic = stack::Traffic::Emulator { endpoint: private.running.endpoint() };
    let checks = stack::verify(ctx, config, &traffic, stack::VerifyLimits::default()).await.unwrap();
    assert!(checks.iter().all(|c| c.outcome == stack::Outcome::Passed), "{}: {checks:#?}", config.stack.region);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_stack_name_in_two_regions_holds_two_roles_and_one_teardown_leaves_the_other_running() {
    let private = PrivateEmulator::start("it-twin");
    let stack = "it-twin";
    let configs = REGIONS.map(|region| config_in(stack, region));
    let mut contexts = Vec::new();
    for config in &configs {
        let ctx = private.context(&config.stack.region).await;
        deploy(&ctx, config).await;
        contexts.push(ctx);
    }
    let (east, west) = (&contexts[0], &contexts[1]);
    for (ctx, region) in contexts.iter().zip(REGIONS) {
        let profile = format!("{stack}-app-profile-{region}");
        assert_eq!(instance_profile_of(ctx, stack).await, profile);
        assert_eq!(profile_roles(ctx, &profile).await, Some(vec![format!("{stack}-app-role-{region}")]));
        let role = ctx.iam.get_role().role_name(format!("{stack}-app-role-{region}")).send().await.unwrap();
        let tags: Vec<(&str, &str)> = role.role().unwrap().tags().iter().map(|t| (t.key(), t.value())).collect();
        assert!(tags.contains(&("three-tier:region", region)), "{tags:?}");
        // Each role reads its own region's database secret.
        let document = secret_policy(ctx, &format!("{stack}-app-role-{region}")).await;
        assert!(document.contains(&format!(":rds:{region}:")), "{document}");
    }

    // Torn down in us-east-1: eu-west-1's role and profile stand, and its stack verifies.
    teardown(east, &configs[0]).await;
    assert_eq!(profile_roles(east, &format!("{stack}-app-profile-us-east-1")).await, None);
    let west_profile = format!("{stack}-app-profile-eu-west-1");
    assert_eq!(profile_roles(west, &west_profile).await, Some(vec![format!("{stack}-app-role-eu-west-1")]));
    assert_eq!(instance_profile_of(west, stack).await, west_profile);
    verify_passes(&private, west, &configs[1]).await;
    // A redeploy in eu-west-1 changes nothing.
    let plan = plan_deploy(west, &configs[1]).await;
    assert!(plan.tiers.iter().all(|tier| tier.changes_nothing()), "{}", plan.render());
}

/// Turns the stack deployed in each of `contexts` into one deployed before IAM names held
/// the region: one role and one profile for every region (the last deploy's secret
/// policy in the role), the instances moved to them, the regional ones gone.
async fn as_deployed_with_shared_names(contexts: &[AwsContext], stack: &str, last: &str) {
    let iam = &contexts[0].iam;
    let (role, profile) = (format!("{stack}-app-role"), format!("{stack}-app-profile"));
    let tags = |kind: &str, name: &str| {
        [("Name", name), ("three-tier:stack", stack), ("three-tier:tier", "compute"), ("three-tier:role", kind)]
            .map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build().unwrap())
            .to_vec()
    };
    let regional_role = format!("{stack}-app-role-{last}");
    let trust = iam.get_role().role_name(&regional_role).send().await.unwrap();
    let trust = percent_decode(trust.role().unwrap().assume_role_policy_document().unwrap());
    let secret = secret_policy(&contexts[0], &regional_role).await;
    iam.create_role()
        .role_name(&role)
        .assume_role_policy_document(trust)
        .set_tags(Some(tags("role", &role)))
        .send()
        .await
        .unwrap();
    iam.attach_role_policy()
        .role_name(&role)
        .policy_arn("arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore")
        .send()
        .await
        .unwrap();
    iam.put_role_policy()
        .role_name(&role)
        .policy_name("read-database-secret")
        .policy_document(secret)
        .send()
        .await
        .unwrap();
    let created = iam
        .create_instance_profile()
        .instance_profile_name(&profile)
        .set_tags(Some(tags("instance-profile", &profile)))
        .send()
        .await
        .unwrap();
    let legacy_arn = created.instance_profile().unwrap().arn().to_owned();
    iam.add_role_to_instance_profile().instance_profile_name(&profile).role_name(&role).send().await.unwrap();
    for ctx in contexts {
        let associations = ctx.ec2.describe_iam_instance_profile_associations().send().await.unwrap();
        let association = associations
            .iam_instance_profile_associations()
            .iter()
            .find(|a| a.iam_instance_profile().and_then(|p| p.arn()).is_some_and(|arn| arn.ends_with(&ctx.region)))
            .and_then(|a| a.association_id())
            .unwrap()
            .to_owned();
        // A new profile reaches EC2 after some seconds (the strict emulator's clock).
        let started = Instant::now();
        while let Err(err) = ctx
            .ec2
            .replace_iam_instance_profile_association()
            .association_id(&association)
            .iam_instance_profile(IamInstanceProfileSpecification::builder().arn(&legacy_arn).build())
            .send()
            .await
        {
            assert!(started.elapsed() < Duration::from_secs(60), "{err:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (role, profile) =
            (format!("{stack}-app-role-{}", ctx.region), format!("{stack}-app-profile-{}", ctx.region));
        iam.remove_role_from_instance_profile().instance_profile_name(&profile).role_name(&role).send().await.unwrap();
        iam.delete_instance_profile().instance_profile_name(&profile).send().await.unwrap();
        iam.detach_role_policy()
            .role_name(&role)
            .policy_arn("arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore")
            .send()
            .await
            .unwrap();
        iam.delete_role_policy().role_name(&role).policy_name("read-database-secret").send().await.unwrap();
        iam.delete_role().role_name(&role).send().await.unwrap();
        assert_eq!(instance_profile_of(ctx, stack).await, profile.replace(&format!("-{}", ctx.region), ""));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stacks_deployed_with_shared_iam_names_move_to_regional_ones_and_the_shared_go_when_unused() {
    let private = PrivateEmulator::start("it-legacy-iam");
    let stack = "it-legacy";
    let configs = REGIONS.map(|region| config_in(stack, region));
    let mut contexts = Vec::new();
    for config in &configs {
        let ctx = private.context(&config.stack.region).await;
        deploy(&ctx, config).await;
        contexts.push(ctx);
    }
    as_deployed_with_shared_names(&contexts, stack, "eu-west-1").await;
    let (east, west) = (&contexts[0], &contexts[1]);
    let (legacy_role, legacy_profile) = (format!("{stack}-app-role"), format!("{stack}-app-profile"));

    // us-east-1 moves its instance and says so; eu-west-1's instance runs with the shared
    // profile, which stays.
    let plan = plan_deploy(east, &configs[0]).await;
    let text = plan.render();
    let west_instance = {
        let answer = west.ec2.describe_iam_instance_profile_associations().send().await.unwrap();
        answer.iam_instance_profile_associations()[0].instance_id().unwrap().to_owned()
    };
    assert!(
        text.contains(&format!("move instance {stack}-app to instance profile {stack}-app-profile-us-east-1"))
            && text.contains(&format!("{legacy_profile} stays: {west_instance} in eu-west-1 still run with it")),
        "{text}"
    );
    deploy(east, &configs[0]).await;
    assert_eq!(instance_profile_of(east, stack).await, format!("{stack}-app-profile-us-east-1"));
    assert_eq!(profile_roles(east, &legacy_profile).await, Some(vec![legacy_role.clone()]));
    let again = plan_deploy(east, &configs[0]).await;
    assert!(again.tiers.iter().all(|tier| tier.changes_nothing()), "{}", again.render());

    // Torn down in us-east-1, the shared role and profile stay for eu-west-1, which verifies.
    teardown(east, &configs[0]).await;
    assert_eq!(profile_roles(west, &legacy_profile).await, Some(vec![legacy_role.clone()]));
    assert_eq!(instance_profile_of(west, stack).await, legacy_profile);
    verify_passes(&private, west, &configs[1]).await;

    // eu-west-1's deploy moves its instance, and, with no instance left on them, removes
    // the shared role and profile.
    deploy(west, &configs[1]).await;
    assert_eq!(instance_profile_of(west, stack).await, format!("{stack}-app-profile-eu-west-1"));
    assert_eq!(profile_roles(west, &legacy_profile).await, None);
    assert!(west.iam.get_role().role_name(&legacy_role).send().await.is_err());
    verify_passes(&private, west, &configs[1]).await;
    teardown(west, &configs[1]).await;
    let roles = west.iam.list_roles().send().await.unwrap();
    let left: Vec<&str> = roles.roles().iter().map(|r| r.role_name()).filter(|name| name.starts_with(stack)).collect();
    assert!(left.is_empty(), "{left:?}");
}
