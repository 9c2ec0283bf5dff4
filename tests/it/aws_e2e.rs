//! The seed's two goals on a real AWS account: deploy the whole stack, verify, and always
//! tear down, even when verify fails.
//!
//! Opt-in: it costs money (the NAT gateway, the ALB and the RDS instance are billed by the
//! hour; a run takes about 20 minutes) and needs credentials. Run it with
//!
//! ```sh
//! THREE_TIER_E2E_AWS=1 AWS_PROFILE=... cargo test -p integration-tests --test it aws_e2e -- --ignored
//! ```

use three_tier_core::progress::Progress;
use three_tier_core::wait::WaitSettings;
use three_tier_core::{AwsContext, Config, Target};

#[tokio::test]
#[ignore = "deploys to a real AWS account: THREE_TIER_E2E_AWS=1 and credentials, then --ignored"]
async fn the_seeds_goals_hold_on_real_aws() {
    assert_eq!(
        std::env::var("THREE_TIER_E2E_AWS").as_deref(),
        Ok("1"),
        "set THREE_TIER_E2E_AWS=1 (and AWS credentials) to run this test: it deploys to AWS and costs money"
    );
    let mut config = Config::default_config();
    // A stack of its own, so it never touches a stack someone is using.
    config.stack.name = format!("e2e-{}", std::process::id());
    if let Ok(region) = std::env::var("AWS_REGION") {
        let text = Config::DEFAULT_TOML.replace("ap-northeast-1", &region);
        let name = config.stack.name.clone();
        config = Config::parse(std::path::Path::new("e2e"), &text).unwrap();
        config.stack.name = name;
    }
    config.validate(std::path::Path::new("e2e")).unwrap();
    let ctx =
        AwsContext::connect(&Target::Aws, &config.stack.region, WaitSettings::default(), Progress::stderr()).await;

    let outcome = async {
        stack::deploy(&ctx, &config, stack::TIERS).await?;
        stack::verify(&ctx, &config, &stack::Traffic::Aws, stack::VerifyLimits::default()).await
    }
    .await;

    // Always torn down, whatever happened above.
    let teardown = async {
        let plan = stack::plan_teardown(&ctx, &config, stack::TIERS, false).await?;
        stack::teardown(&ctx, &plan).await
    }
    .await;

    let checks = outcome.expect("deploy and verify");
    for check in &checks {
        assert_eq!(check.outcome, stack::Outcome::Passed, "{}: {}", check.name, check.detail);
    }
    teardown.expect("teardown");
    let states = stack::status(&ctx, &config).await.unwrap();
    assert!(states.iter().all(|(_, s)| *s == stack::TierStatus::Absent), "left behind: {states:?}");
}
