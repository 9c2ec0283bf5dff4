//! `cargo xtask bench`: the whole stack on the strict emulator with scaled time, measured
//! against the limit its dependency graph allows. Writes `target/bench/bench.md` and
//! `bench.json`. Not a test: nothing here passes or fails on time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use emulator::Emulator;
use serde_json::json;
use three_tier_core::calls::Call;
use three_tier_core::progress::Progress;
use three_tier_core::wait::WaitSettings;
use three_tier_core::{AwsContext, Config, Durations, Target, Tier};

/// The region of the benchmark's stacks (on a server of its own: any region would do).
const REGION: &str = "eu-west-3";

/// The time scale unless `THREE_TIER_TIME_SCALE` says otherwise. The emulator answers a
/// call in about 8 ms; at 1/20 that stands for some 160 ms on AWS's clock, about what AWS
/// takes. At the tests' 1/100 each call would stand for most of a second, and the ratios
/// would measure the emulator's Python rather than the tool.
const TIME_SCALE: &str = "0.05";

/// What the strict emulator adds to every call for the read-only figures: a typical round
/// trip to a nearby AWS region.
const LATENCY_MS: u64 = 80;

pub fn run() -> anyhow::Result<()> {
    // A server of its own: its time scale would otherwise restart the shared one.
    let emulator = Emulator::default().private("bench");
    let time_scale = std::env::var("THREE_TIER_TIME_SCALE").unwrap_or_else(|_| TIME_SCALE.to_owned());
    let scale: f64 = time_scale.parse().context("THREE_TIER_TIME_SCALE is not a number")?;
    let mode = emulator::Mode { strict: true, time_scale, ..emulator::Mode::from_env() };
    let running = emulator.ensure_running_as(&mode).context("starting the emulator")?;
    let result = measure_all(&running, scale);
    emulator.stop().context("stopping the benchmark's emulator")?;
    result
}

fn measure_all(running: &emulator::Running, scale: f64) -> anyhow::Result<()> {
    // The critical paths are the plans' own predictions: the longest chains of AWS's
    // typical durations through each run's graph, on the emulator's scaled clock.
    let durations = Durations::aws().scaled(scale);

    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(async {
        let target = Target::Emulator { endpoint: running.endpoint() };
        let ours = config("bench")?;
        // The tool polls AWS every 5 s; on the scaled clock, as often.
        let aws = WaitSettings::default();
        let waits = WaitSettings { poll_interval: aws.poll_interval.mul_f64(scale), ..aws };
        let ctx = AwsContext::connect(&target, REGION, waits, Progress::silent()).await;
        teardown(&ctx, &ours).await?;

        eprintln!("bench: whole-stack deploy");
        let deploy_critical = stack::plan_deploy(&ctx, &ours, stack::TIERS).await?.predict(&durations).seconds;
        let deploy = measure(&ctx, || stack::deploy(&ctx, &ours, stack::TIERS)).await?;
        eprintln!("bench: no-op re-deploy");
        let noop = measure(&ctx, || deploy_as_a_user(&ctx, &ours)).await?;
        eprintln!("bench: reads of the deployed stack with {LATENCY_MS} ms added to every call");
        running.set_faults(&json!({"region": REGION, "latency_ms": LATENCY_MS}))?;
        let distant = async {
            let deploy = measure(&ctx, || deploy_as_a_user(&ctx, &ours)).await?;
            let status = measure(&ctx, || stack::status(&ctx, &ours)).await?;
            let plan = measure(&ctx, || stack::plan_deploy(&ctx, &ours, stack::TIERS)).await?;
            let outputs = measure(&ctx, || stack::outputs(&ctx, &ours)).await?;
            anyhow::Ok([("no-op deploy", deploy), ("status", status), ("plan", plan), ("outputs", outputs)])
        }
        .await;
        running.set_faults(&json!({ "region": REGION }))?;
        let distant = distant?;
        eprintln!("bench: teardown");
        let teardown_critical =
            stack::plan_teardown(&ctx, &ours, stack::TIERS, false).await?.predict(&durations).seconds;
        let down = measure(&ctx, || teardown(&ctx, &ours)).await?;

        eprintln!("bench: sequential baseline (the seed's order, each tier after the last)");
        let seed_order = config("bench-seq")?;
        teardown(&ctx, &seed_order).await?;
        let sequential = measure(&ctx, || async {
            for tier in [Tier::Network, Tier::Alb, Tier::Compute, Tier::Database] {
                stack::deploy(&ctx, &seed_order, &[tier]).await?;
            }
            anyhow::Ok(())
        })
        .await?;
        teardown(&ctx, &seed_order).await?;
        anyhow::Ok((deploy, deploy_critical, noop, distant, down, teardown_critical, sequential))
    })?;
    let (deploy, deploy_critical, noop, distant, down, teardown_critical, sequential) = report;
    // Predictions are on the emulator's clock; shown also as AWS's.
    let on_aws = |scaled: f64| scaled / scale;
    let seconds = |scaled: f64| Duration::from_secs_f64(scaled);

    let call_time = noop.wall / u32::try_from(noop.calls.len().max(1)).unwrap_or(u32::MAX);
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(f64::EPSILON);
    let rows = [
        ("deploy wall time", format!("{:.2}s", deploy.wall.as_secs_f64())),
        (
            "deploy critical path (the plan's prediction)",
            format!("{:.2}s ({:.0}s on AWS)", deploy_critical, on_aws(deploy_critical)),
        ),
        ("deploy / critical path", format!("{:.2} (target ≤ 1.05)", ratio(deploy.wall, seconds(deploy_critical)))),
        ("sequential baseline wall time", format!("{:.2}s", sequential.wall.as_secs_f64())),
        ("deploy / sequential baseline", format!("{:.2}", ratio(deploy.wall, sequential.wall))),
        ("teardown wall time", format!("{:.2}s", down.wall.as_secs_f64())),
        (
            "teardown critical path (the plan's prediction)",
            format!("{:.2}s ({:.0}s on AWS)", teardown_critical, on_aws(teardown_critical)),
        ),
        ("teardown / critical path", format!("{:.2} (target ≤ 1.05)", ratio(down.wall, seconds(teardown_critical)))),
        ("deploy API calls: total / mutating / read", deploy.counts()),
        (
            "no-op re-deploy API calls: total / mutating / read",
            format!("{} (target 0 mutating, ≤ 30 reads)", noop.counts()),
        ),
        ("no-op re-deploy wall time", format!("{:.2}s", noop.wall.as_secs_f64())),
        (
            "emulator time per call (no-op re-deploy), on AWS's clock",
            format!(
                "{:.1} ms, {:.0} ms (AWS answers in about 50-200 ms)",
                call_time.as_secs_f64() * 1e3,
                call_time.as_secs_f64() * 1e3 / scale
            ),
        ),
        ("teardown API calls: total / mutating / read", down.counts()),
    ];
    let distant_rows: Vec<(String, String)> = distant
        .iter()
        .map(|(command, measured)| {
            (
                format!("{command} of the deployed stack, {LATENCY_MS} ms a call"),
                format!(
                    "{:.2}s, {} calls in {} rounds (target ≤ 0.45 s)",
                    measured.wall.as_secs_f64(),
                    measured.calls.len(),
                    measured.rounds(Duration::from_millis(LATENCY_MS))
                ),
            )
        })
        .collect();
    let rows = rows.iter().map(|(name, value)| (name.to_string(), value.clone())).chain(distant_rows);
    let mut markdown =
        format!("# three-tier benchmark\n\nStrict emulator, time scale {scale}.\n\n| measure | value |\n|---|---|\n");
    for (name, value) in rows {
        let _ = writeln!(markdown, "| {name} | {value} |");
    }
    let json = json!({
        "time_scale": scale,
        "deploy": deploy.json(),
        "deploy_critical_path_seconds": deploy_critical,
        "teardown": down.json(),
        "teardown_critical_path_seconds": teardown_critical,
        "sequential_baseline": sequential.json(),
        "noop_redeploy": noop.json(),
        "with_latency_ms": LATENCY_MS,
        "with_latency": distant.iter().map(|(command, measured)| (command.to_string(), measured.json())).collect::<BTreeMap<_, _>>(),
    });
    let dir = emulator::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("bench.md"), &markdown)?;
    std::fs::write(dir.join("bench.json"), serde_json::to_string_pretty(&json)?)?;
    println!("{markdown}");
    println!("written to {}", Path::new(&dir).display());
    Ok(())
}

struct Measured {
    wall: Duration,
    calls: Vec<Call>,
    /// When each call went out, in seconds from the start: where the time went.
    timeline: Vec<(f64, String)>,
}

impl Measured {
    fn mutating(&self) -> usize {
        self.calls.iter().filter(|c| c.is_mutating()).count()
    }

    /// How many rounds of calls it made, one after another: calls sent within `latency`
    /// of a round's first call are of that round (they went out together).
    fn rounds(&self, latency: Duration) -> usize {
        let mut rounds = 0;
        let mut round_began = f64::NEG_INFINITY;
        for (at, _) in &self.timeline {
            if *at >= round_began + latency.as_secs_f64() * 0.9 {
                rounds += 1;
                round_began = *at;
            }
        }
        rounds
    }

    fn counts(&self) -> String {
        format!("{} / {} / {}", self.calls.len(), self.mutating(), self.calls.len() - self.mutating())
    }

    fn json(&self) -> serde_json::Value {
        let mut by_operation: BTreeMap<&str, usize> = BTreeMap::new();
        for call in &self.calls {
            *by_operation.entry(&call.operation).or_default() += 1;
        }
        json!({
            "wall_seconds": self.wall.as_secs_f64(),
            "calls": self.calls.len(),
            "mutating": self.mutating(),
            "reads": self.calls.len() - self.mutating(),
            "by_operation": by_operation,
            "timeline": self.timeline.iter().map(|(at, operation)| format!("{at:7.3}s {operation}")).collect::<Vec<_>>(),
        })
    }
}

/// A deploy as `cargo xtask deploy` makes it: under the lock when it changes anything,
/// then its cost line, read off what it observed.
async fn deploy_as_a_user(ctx: &AwsContext, config: &Config) -> anyhow::Result<()> {
    let holder = three_tier_core::lock::Holder::this_process("cargo xtask bench");
    let deployed = stack::deploy_locked(ctx, config, stack::TIERS, &holder, false).await?;
    let observed = deployed.observed.completed(ctx, config).await?;
    let cost = stack::cost::estimate(&config.stack.region, &stack::cost::Running::observed(&observed));
    anyhow::ensure!(cost.monthly > 0.0, "a deployed stack costs something");
    Ok(())
}

async fn measure<T, E, Fut>(ctx: &AwsContext, run: impl FnOnce() -> Fut) -> anyhow::Result<Measured>
where
    Fut: std::future::Future<Output = Result<T, E>>,
    E: Into<anyhow::Error>,
{
    let mark = ctx.calls.mark();
    let started = Instant::now();
    run().await.map_err(Into::into)?;
    let wall = started.elapsed();
    let timed = ctx.calls.timed_since(mark);
    let timeline =
        timed.iter().map(|(at, call)| (at.duration_since(started).as_secs_f64(), call.operation.clone())).collect();
    Ok(Measured { wall, calls: timed.into_iter().map(|(_, call)| call).collect(), timeline })
}

fn config(stack: &str) -> anyhow::Result<Config> {
    let text = Config::DEFAULT_TOML.replace("ap-northeast-1", REGION);
    let mut config = Config::parse(Path::new("bench"), &text)?;
    config.stack.name = stack.to_owned();
    config.validate(Path::new("bench"))?;
    Ok(config)
}

async fn teardown(ctx: &AwsContext, config: &Config) -> three_tier_core::Result<()> {
    let plan = stack::plan_teardown(ctx, config, stack::TIERS, false).await?;
    stack::teardown(ctx, &plan).await
}
