//! A run that dies at any change. For every N, the N-th change of a whole-stack deploy
//! (or teardown) fails for good, as if the run died there; running the command again
//! completes it: the whole stack with exactly one of each resource, or nothing left of it,
//! and nothing of anyone else's touched. Runs go through the entry points the CLI uses,
//! lock included, and what AWS holds is judged by the tests' own describes
//! (`crate::oracle`), not by the product's observe code. Each sweep runs its region's AWS
//! time fast, on the seed's stack and on one with the four availability options.

use std::time::Duration;

use three_tier_core::lock::{Holder, Lock};
use three_tier_core::{AwsContext, Config};

use crate::oracle;
use crate::support::{RegionClock, clean, config_in, context, emulator, four_options, with_faults};

/// How much faster than the emulator's usual pace AWS time runs in a sweep's region.
const FAST: f64 = 20.0;

/// The changes the emulator saw in `region` since `mark`: their actions, in order.
fn changes_since(mark: usize, region: &str) -> Vec<String> {
    let requests = emulator().requests_since(mark, region).unwrap();
    requests.into_iter().filter(|r| r.is_mutating()).map(|r| r.action).collect()
}

/// A context whose runs never write their lock again while they run: refreshes are timed
/// by the wall clock, so they would fall at another N in each run (the lock tests in
/// `stack.rs` cover them).
async fn sweep_context(config: &Config) -> AwsContext {
    let mut ctx = context(config).await;
    ctx.waits.lock_refresh = Duration::from_secs(3600);
    ctx
}

/// Runs `run` with the `n`-th change in the config's region failing; returns the action
/// of that change when the run reached it and failed on it, `None` when the run made fewer.
async fn dies_at<T>(
    config: &Config,
    n: usize,
    run: impl Future<Output = three_tier_core::Result<T>>,
) -> Option<String> {
    let region = config.stack.region.as_str();
    let mark = emulator().request_mark().unwrap();
    let outcome = with_faults(&emulator(), serde_json::json!({"region": region, "fail_nth_mutating": n}), run).await;
    let reached = changes_since(mark, region).get(n - 1).cloned();
    match (outcome, reached) {
        (Err(err), Some(action)) => {
            assert!(format!("{err:?}").contains("InjectedFailure"), "change {n} ({action}) failed for good: {err}");
            Some(action)
        }
        (Err(err), None) => panic!("the run failed before its change {n}: {err}"),
        (Ok(_), Some(action)) => panic!("the run reached its change {n} ({action}), which failed, yet it succeeded"),
        (Ok(_), None) => None,
    }
}

/// A run that failed gave its lock back, unless what failed was the lock's own release.
/// Returns whether the lock is left, so the next run takes it over as a user would with
/// `--force-unlock`.
async fn assert_lock_after_dying(ctx: &AwsContext, config: &Config, n: usize, died: Option<&str>) -> bool {
    let left = died == Some("DeleteParameter");
    let lock = three_tier_core::lock::read(ctx, &config.stack.name).await.unwrap();
    assert_eq!(lock != Lock::Free, left, "after dying at change {n} ({died:?}) the lock is {lock:?}");
    left
}

/// Every run died where it was told to, but for runs told to die at one of the first run's
/// last three changes: a later run may make that many fewer (the first one's retried calls).
fn assert_reached_all_but_the_last_three(skipped: &[usize], changes: usize) {
    assert!(skipped.iter().all(|n| n + 3 > changes), "runs that never reached change N, of {changes}: {skipped:?}");
}

/// The stack stands whole, matching its config: by AWS's describes, exactly one of each
/// resource SPEC.md names and no lock left.
async fn assert_whole(ctx: &AwsContext, config: &Config, n: usize) {
    let states = stack::status(ctx, config).await.unwrap();
    assert!(states.iter().all(|(_, s)| *s == stack::TierStatus::UpToDate), "after dying at change {n}: {states:?}");
    let held = oracle::holdings(ctx, &config.stack.name).await;
    assert_eq!(held.counts(), oracle::whole_stack(config), "after dying at change {n}: one of each\n{held:#?}");
}

/// Nothing of the stack is left, by the describes of every kind (its lock included).
async fn assert_gone(ctx: &AwsContext, config: &Config, n: usize) {
    let held = oracle::holdings(ctx, &config.stack.name).await;
    assert!(held.is_empty(), "after dying at change {n}: {held:#?}");
    let states = stack::status(ctx, config).await.unwrap();
    assert!(states.iter().all(|(_, s)| *s == stack::TierStatus::Absent), "after dying at change {n}: {states:?}");
}

#[tokio::test]
async fn a_deploy_that_dies_at_any_change_completes_when_run_again() {
    // The seed's stack, then one with the four availability options: more changes, and
    // the per-zone NAT gateways' and the instances' own edges.
    deploy_sweep(&config_in("it-crash-deploy", "il-central-1")).await;
    deploy_sweep(&four_options("it-crash-dep4", "il-central-1")).await;
}

async fn deploy_sweep(config: &Config) {
    let region = config.stack.region.clone();
    let ctx = sweep_context(config).await;
    let holder = Holder::this_process("deploy");
    let deploy = |force_unlock| stack::deploy_locked(&ctx, config, stack::TIERS, &holder, force_unlock);
    let _fast = RegionClock::at_rate(&region, FAST);
    clean(&ctx, config).await;
    let mark = emulator().request_mark().unwrap();
    deploy(false).await.unwrap();
    let changes = changes_since(mark, &region).len();
    assert!(changes > 30, "a whole deploy makes some 40 changes ({changes})");
    assert_whole(&ctx, config, 0).await;
    clean(&ctx, config).await;

    let mut skipped = Vec::new();
    for n in 1..=changes {
        let died = dies_at(config, n, deploy(false)).await;
        if died.is_none() {
            skipped.push(n);
        }
        let left = assert_lock_after_dying(&ctx, config, n, died.as_deref()).await;
        deploy(left).await.unwrap_or_else(|err| panic!("after change {n} failed: {err}"));
        assert_whole(&ctx, config, n).await;
        clean(&ctx, config).await;
    }
    // A run can make a few changes fewer than the first, which retried calls AWS was not
    // ready for: only its last few N may go unreached.
    assert_reached_all_but_the_last_three(&skipped, changes);
}

#[tokio::test]
async fn a_teardown_that_dies_at_any_change_completes_when_run_again_and_touches_nothing_else() {
    let region = "ap-southeast-4";
    let other = config_in("it-crash-other", region);
    let ctx = sweep_context(&other).await;
    let _fast = RegionClock::at_rate(region, FAST);
    // Another stack, whole, in the same region and account: its IAM role and RDS instance
    // included.
    clean(&ctx, &other).await;
    stack::deploy(&ctx, &other, stack::TIERS).await.unwrap();
    let others = oracle::holdings(&ctx, &other.stack.name).await;
    assert_eq!(others.counts(), oracle::whole_stack(&other), "{others:#?}");

    // The seed's stack, then one with the four availability options.
    teardown_sweep(&ctx, &config_in("it-crash-down", region)).await;
    teardown_sweep(&ctx, &four_options("it-crash-down4", region)).await;

    assert_eq!(oracle::holdings(&ctx, &other.stack.name).await, others, "the other stack stands as it stood");
    clean(&ctx, &other).await;
}

async fn teardown_sweep(ctx: &AwsContext, config: &Config) {
    let region = config.stack.region.clone();
    let holder = Holder::this_process("teardown");
    let teardown = |force_unlock| stack::teardown_locked(ctx, config, stack::TIERS, false, &holder, force_unlock);
    clean(ctx, config).await;
    stack::deploy(ctx, config, stack::TIERS).await.unwrap();
    let mark = emulator().request_mark().unwrap();
    teardown(false).await.unwrap();
    let changes = changes_since(mark, &region).len();
    assert!(changes > 25, "a whole teardown makes some 30 changes ({changes})");
    assert_gone(ctx, config, 0).await;

    let mut skipped = Vec::new();
    for n in 1..=changes {
        stack::deploy(ctx, config, stack::TIERS).await.unwrap();
        let died = dies_at(config, n, teardown(false)).await;
        if died.is_none() {
            skipped.push(n);
        }
        let left = assert_lock_after_dying(ctx, config, n, died.as_deref()).await;
        teardown(left).await.unwrap_or_else(|err| panic!("after change {n} failed: {err}"));
        assert_gone(ctx, config, n).await;
    }
    assert_reached_all_but_the_last_three(&skipped, changes);
}
