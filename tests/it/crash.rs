//! A run that dies at any change. For every N, the N-th change of a whole-stack deploy
//! (or teardown) fails for good, as if the run died there; running the command again
//! completes it: the whole stack with exactly one of each resource, or nothing left of it,
//! and nothing of anyone else's touched. Each sweep runs its region's AWS time fast.

use three_tier_core::{AwsContext, Config};

use crate::support::{RegionClock, clean, config_in, context, emulator};

/// How much faster than the emulator's usual pace AWS time runs in a sweep's region.
const FAST: f64 = 20.0;

/// The changes the emulator saw in `region` since `mark`.
fn changes_since(mark: usize, region: &str) -> usize {
    emulator().requests_since(mark, region).unwrap().iter().filter(|r| r.is_mutating()).count()
}

/// Runs `run` with the `n`-th change in the config's region failing; returns whether the
/// run reached that change and failed on it.
async fn dies_at<T>(config: &Config, n: usize, run: impl Future<Output = three_tier_core::Result<T>>) -> bool {
    let region = config.stack.region.as_str();
    let mark = emulator().request_mark().unwrap();
    emulator().set_faults(&serde_json::json!({"region": region, "fail_nth_mutating": n})).unwrap();
    let outcome = run.await;
    emulator().set_faults(&serde_json::json!({ "region": region })).unwrap();
    let reached = changes_since(mark, region) >= n;
    match outcome {
        Err(err) if reached => {
            assert!(format!("{err:?}").contains("InjectedFailure"), "change {n} failed for good: {err}");
            true
        }
        Err(err) => panic!("the run failed before its change {n}: {err}"),
        Ok(_) => {
            assert!(!reached, "the run reached its change {n}, which failed, yet it succeeded");
            false
        }
    }
}

/// Every run died where it was told to, but for runs told to die at one of the first run's
/// last three changes: a later run may make that many fewer (the first one's retried calls).
fn assert_reached_all_but_the_last_three(skipped: &[usize], changes: usize) {
    assert!(skipped.iter().all(|n| n + 3 > changes), "runs that never reached change N, of {changes}: {skipped:?}");
}

/// The stack stands whole, matching its config, with one of each billed resource.
async fn assert_whole(ctx: &AwsContext, config: &Config, n: usize) {
    let states = stack::status(ctx, config).await.unwrap();
    assert!(states.iter().all(|(_, s)| *s == stack::TierStatus::UpToDate), "after dying at change {n}: {states:?}");
    let listed = stack::stacks(ctx).await.unwrap();
    let ours = listed.iter().find(|s| s.name == config.stack.name).unwrap();
    let mut planned = stack::cost::Running::planned(config, stack::TIERS);
    planned.volumes.clone_from(&ours.running.volumes);
    assert_eq!(ours.running, planned, "after dying at change {n}: one of each");
    assert_eq!(ours.running.volumes.len(), 1, "after dying at change {n}: one volume");
}

/// Nothing of the stack is left, by its tags.
async fn assert_gone(ctx: &AwsContext, config: &Config, n: usize) {
    let states = stack::status(ctx, config).await.unwrap();
    assert!(states.iter().all(|(_, s)| *s == stack::TierStatus::Absent), "after dying at change {n}: {states:?}");
    let listed = stack::stacks(ctx).await.unwrap();
    assert!(listed.iter().all(|s| s.name != config.stack.name), "after dying at change {n}: {listed:?}");
}

#[tokio::test]
async fn a_deploy_that_dies_at_any_change_completes_when_run_again() {
    let config = config_in("it-crash-deploy", "il-central-1");
    let region = config.stack.region.clone();
    let ctx = context(&config).await;
    let _fast = RegionClock::at_rate(&region, FAST);
    clean(&ctx, &config).await;
    let mark = emulator().request_mark().unwrap();
    stack::deploy(&ctx, &config, stack::TIERS).await.unwrap();
    let changes = changes_since(mark, &region);
    assert!(changes > 30, "a whole deploy makes some 40 changes ({changes})");
    clean(&ctx, &config).await;

    let mut skipped = Vec::new();
    for n in 1..=changes {
        if !dies_at(&config, n, stack::deploy(&ctx, &config, stack::TIERS)).await {
            skipped.push(n);
        }
        stack::deploy(&ctx, &config, stack::TIERS).await.unwrap_or_else(|err| panic!("after change {n} failed: {err}"));
        assert_whole(&ctx, &config, n).await;
        clean(&ctx, &config).await;
    }
    // A run can make a few changes fewer than the first, which retried calls AWS was not
    // ready for: only its last few N may go unreached.
    assert_reached_all_but_the_last_three(&skipped, changes);
}

#[tokio::test]
async fn a_teardown_that_dies_at_any_change_completes_when_run_again_and_touches_nothing_else() {
    let config = config_in("it-crash-down", "ap-southeast-4");
    let region = config.stack.region.clone();
    let ctx = context(&config).await;
    let _fast = RegionClock::at_rate(&region, FAST);
    clean(&ctx, &config).await;
    // Someone else's VPC in the same region, with a stack tag of another name.
    let foreign = ctx.ec2.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap();
    let foreign = foreign.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();
    let tag = aws_sdk_ec2::types::Tag::builder().key("three-tier:stack").value("someone-else").build();
    ctx.ec2.create_tags().resources(&foreign).tags(tag).send().await.unwrap();

    stack::deploy(&ctx, &config, stack::TIERS).await.unwrap();
    let mark = emulator().request_mark().unwrap();
    clean(&ctx, &config).await;
    let changes = changes_since(mark, &region);
    assert!(changes > 25, "a whole teardown makes some 30 changes ({changes})");

    let mut skipped = Vec::new();
    for n in 1..=changes {
        stack::deploy(&ctx, &config, stack::TIERS).await.unwrap();
        let plan = stack::plan_teardown(&ctx, &config, stack::TIERS, false).await.unwrap();
        if !dies_at(&config, n, stack::teardown(&ctx, &plan)).await {
            skipped.push(n);
        }
        let plan = stack::plan_teardown(&ctx, &config, stack::TIERS, false).await.unwrap();
        stack::teardown(&ctx, &plan).await.unwrap_or_else(|err| panic!("after change {n} failed: {err}"));
        assert_gone(&ctx, &config, n).await;
    }
    assert_reached_all_but_the_last_three(&skipped, changes);

    let vpcs = ctx.ec2.describe_vpcs().vpc_ids(&foreign).send().await.unwrap();
    assert_eq!(vpcs.vpcs().len(), 1, "the other stack's VPC stands");
    ctx.ec2.delete_vpc().vpc_id(&foreign).send().await.unwrap();
}
