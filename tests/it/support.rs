//! What every emulator test shares: the emulator, a context per stack, and the one
//! redaction table for recorded requests.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use three_tier_core::calls::Call;
use three_tier_core::progress::Progress;
use three_tier_core::wait::WaitSettings;
use three_tier_core::{AwsContext, Config, Target};

/// The emulator, started once per test process (and shared with other processes).
pub fn emulator() -> emulator::Running {
    static RUNNING: OnceLock<emulator::Running> = OnceLock::new();
    *RUNNING.get_or_init(|| emulator::Emulator::default().ensure_running().expect("the emulator starts"))
}

/// The default config, for a stack of the test's own.
pub fn config(stack: &str) -> Config {
    let mut config = Config::default_config();
    config.stack.name = stack.to_owned();
    config.validate(Path::new("test")).expect("test config is valid");
    config
}

pub async fn context(config: &Config) -> AwsContext {
    let target = Target::Emulator { endpoint: emulator().endpoint() };
    AwsContext::connect(&target, &config.stack.region, WaitSettings::fast_poll(), Progress::silent()).await
}

/// A context for a stack with nothing left from an earlier run of the same test.
pub async fn fresh_stack(stack: &str) -> (Config, AwsContext) {
    let config = config(stack);
    let ctx = context(&config).await;
    let leftovers = network::plan_teardown(&ctx, &config).await.unwrap();
    network::apply(&ctx, &leftovers).await.unwrap();
    (config, ctx)
}

/// Recorded calls with volatile values replaced: every AWS id by its prefix and the
/// order of its first appearance (`vpc-1`, `subnet-3`), so the snapshot still shows
/// which resource each call refers to; idempotency tokens by a placeholder.
pub fn redact(calls: &[Call]) -> Vec<Call> {
    let mut numbering: BTreeMap<String, String> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut redact_value = |value: &str| -> String {
        let Some((prefix, rest)) = value.split_once('-') else { return value.to_owned() };
        let is_id = prefix.chars().all(|c| c.is_ascii_lowercase())
            && rest.len() >= 8
            && rest.chars().all(|c| c.is_ascii_hexdigit());
        if !is_id {
            return value.to_owned();
        }
        numbering
            .entry(value.to_owned())
            .or_insert_with(|| {
                let count = counts.entry(prefix.to_owned()).or_default();
                *count += 1;
                format!("{prefix}-{count}")
            })
            .clone()
    };
    calls
        .iter()
        .map(|call| Call {
            service: call.service.clone(),
            operation: call.operation.clone(),
            params: call
                .params
                .iter()
                .map(|(key, value)| {
                    let value = if key.ends_with("ClientToken") { "[client-token]".to_owned() } else { redact_value(value) };
                    (key.clone(), value)
                })
                .collect(),
        })
        .collect()
}
