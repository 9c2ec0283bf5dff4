//! What every emulator test shares: the emulator, a context per stack, and the one
//! redaction table for recorded requests.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use three_tier_core::calls::Call;
use three_tier_core::progress::Progress;
use three_tier_core::wait::WaitSettings;
use three_tier_core::{AwsContext, Config, Target};

use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
pub use faults::{FailFirst, HoldNatPending, drop_subnet_ids, hold_command_in_progress};

/// The emulator, started once per test process (and shared with other processes).
pub fn emulator() -> emulator::Running {
    static RUNNING: OnceLock<emulator::Running> = OnceLock::new();
    RUNNING.get_or_init(|| emulator::Emulator::default().ensure_running().expect("the emulator starts")).clone()
}

/// The strict emulator's data plane, serving verify's traffic: the tests need its servers.
pub fn traffic() -> stack::Traffic {
    let endpoint = emulator().endpoint();
    let plane = emulator::data_plane(&endpoint).expect("the strict emulator answers for its data plane");
    assert!(
        plane.enabled,
        "the emulator's data plane needs {}: `cargo xtask ci` installs them (Debian: `apt-get install {}`), then `cargo xtask emulator stop`",
        plane.missing.join(", "),
        plane.missing.join(" ")
    );
    stack::Traffic::Emulator { endpoint }
}

/// The default config, for a stack of the test's own.
pub fn config(stack: &str) -> Config {
    config_in(stack, "ap-northeast-1")
}

/// The default config for a stack of the test's own in a region of its own: load
/// balancers can only be listed per region, so tests that record or count those calls
/// keep out of each other's way.
pub fn config_in(stack: &str, region: &str) -> Config {
    let text = Config::DEFAULT_TOML.replace("ap-northeast-1", region);
    let mut config = Config::parse(Path::new("test"), &text).expect("test config parses");
    config.stack.name = stack.to_owned();
    config.validate(Path::new("test")).expect("test config is valid");
    config
}

/// As [`config_in`], with issue 19's four availability options: a second app subnet in
/// the other zone, two instances, a NAT gateway per zone, RDS Multi-AZ.
pub fn four_options(stack: &str, region: &str) -> Config {
    let mut config = config_in(stack, region);
    let app_zone = config.instance_subnets()[0].1.availability_zone.clone();
    let other_zone = config.stack.availability_zones.iter().find(|z| **z != app_zone).expect("two zones").clone();
    add_subnet(&mut config, "app-b", &other_zone);
    config.compute.instances = 2;
    config.network.nat_gateways = three_tier_core::NatGateways::PerZone;
    config.database.multi_az = true;
    config.validate(Path::new("test")).expect("test config is valid");
    config
}

pub async fn context(config: &Config) -> AwsContext {
    context_with(config, Vec::new()).await
}

pub async fn context_with(config: &Config, interceptors: Vec<SharedInterceptor>) -> AwsContext {
    regions::used(&config.stack.region);
    let target = Target::Emulator { endpoint: emulator().endpoint() };
    AwsContext::connect_with(&target, &config.stack.region, WaitSettings::fast_poll(), Progress::silent(), interceptors)
        .await
}

/// Runs the calls `calls` makes, sixteen in flight at a time (filling an account fast
/// without flooding the emulator), each to succeed.
pub async fn sixteen_at_once<T, E>(calls: impl IntoIterator<Item = impl Future<Output = Result<T, E>> + Send + 'static>)
where
    T: Send + 'static,
    E: std::fmt::Debug + Send + 'static,
{
    let mut running = tokio::task::JoinSet::new();
    for call in calls {
        running.spawn(call);
        if running.len() >= 16 {
            running.join_next().await.unwrap().unwrap().unwrap();
        }
    }
    while let Some(done) = running.join_next().await {
        done.unwrap().unwrap();
    }
}

pub use regions::own_region;

mod regions {
    //! Which test uses which region of the shared emulator. A test that moves a region's
    //! clock, injects faults there or counts its requests has the region to itself: a
    //! second test in it would be slowed, failed or counted. Checked as the tests run:
    //! two tests meeting in such a region stop with both names.

    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{LazyLock, Mutex, PoisonError};

    #[derive(Default)]
    struct Users {
        /// The test that has the region to itself.
        owner: Option<String>,
        tests: BTreeSet<String>,
    }

    static REGIONS: LazyLock<Mutex<BTreeMap<String, Users>>> = LazyLock::new(Mutex::default);

    /// The running test: libtest names each test's thread after it. `None` off a test's
    /// own thread (a runtime's worker), whose test is unknown.
    fn this_test() -> Option<String> {
        let thread = std::thread::current();
        thread.name().filter(|name| !name.starts_with("tokio-runtime-worker")).map(str::to_owned)
    }

    /// Notes that the running test works in `region`.
    pub fn used(region: &str) {
        let Some(test) = this_test() else { return };
        let mut regions = REGIONS.lock().unwrap_or_else(PoisonError::into_inner);
        let users = regions.entry(region.to_owned()).or_default();
        if let Some(owner) = users.owner.as_ref().filter(|owner| **owner != test) {
            panic!(
                "{test} works in {region}, which {owner} has to itself (it moves its clock, injects faults or \
                 counts its requests): give one of them another region"
            );
        }
        users.tests.insert(test);
    }

    /// Claims `region` for the running test alone; returns it.
    pub fn own_region(region: &str) -> &str {
        let Some(test) = this_test() else { return region };
        let mut regions = REGIONS.lock().unwrap_or_else(PoisonError::into_inner);
        let users = regions.entry(region.to_owned()).or_default();
        if let Some(owner) = users.owner.as_ref().filter(|owner| **owner != test) {
            panic!("{test} needs {region} to itself, which {owner} has: give one of them another region");
        }
        let others: Vec<&String> = users.tests.iter().filter(|t| **t != test).collect();
        assert!(
            others.is_empty(),
            "{test} needs {region} to itself, where {others:?} work: give one of them another region"
        );
        users.owner = Some(test.clone());
        users.tests.insert(test);
        region
    }
}

/// Runs `run` with `faults` (see the strict emulator's `RequestLog`) set on `emulator`
/// for their region, and clears them after, however it ended.
pub async fn with_faults<T>(
    emulator: &emulator::Running,
    faults: serde_json::Value,
    run: impl Future<Output = T>,
) -> T {
    // The shared emulator's region is the test's alone while its faults are set.
    if emulator.endpoint() == self::emulator().endpoint() {
        own_region(faults["region"].as_str().expect("faults name their region"));
    }
    emulator.set_faults(&faults).unwrap();
    let outcome = run.await;
    emulator.set_faults(&serde_json::json!({ "region": faults["region"] })).unwrap();
    outcome
}

/// A strict emulator of a test's own, for what the shared one cannot hold apart: an
/// account-wide quota filled, faults that would reach other tests, a region's counts.
/// Stopped when dropped, also when the test fails.
pub struct PrivateEmulator {
    emulator: emulator::Emulator,
    pub running: emulator::Running,
}

impl PrivateEmulator {
    pub fn start(name: &str) -> PrivateEmulator {
        let emulator = emulator::Emulator::default().private(name);
        let running = emulator.ensure_running().expect("a private emulator starts");
        PrivateEmulator { emulator, running }
    }

    /// A context for `region` of this emulator.
    pub async fn context(&self, region: &str) -> AwsContext {
        let target = Target::Emulator { endpoint: self.running.endpoint() };
        AwsContext::connect(&target, region, WaitSettings::fast_poll(), Progress::silent()).await
    }
}

impl Drop for PrivateEmulator {
    fn drop(&mut self) {
        let _ = self.emulator.stop();
    }
}

/// A region's clock in the strict emulator, set for a test: stopped, a state holds exactly
/// as long as the test needs, however loaded the machine, and ends when the test moves the
/// clock past its AWS duration; or run at another pace. It runs at real time again, from
/// where it stands, when dropped, also when the test fails.
pub struct RegionClock {
    region: String,
}

impl RegionClock {
    pub fn stopped(region: &str) -> RegionClock {
        RegionClock::set(region, emulator::Clock::Freeze)
    }

    /// AWS time at `rate` times its usual pace in the emulator.
    pub fn at_rate(region: &str, rate: f64) -> RegionClock {
        RegionClock::set(region, emulator::Clock::Rate(rate))
    }

    fn set(region: &str, change: emulator::Clock) -> RegionClock {
        own_region(region);
        emulator().set_clock(region, change).unwrap();
        RegionClock { region: region.to_owned() }
    }

    /// Moves it on past AWS's typical time for `duration` (a key of durations.json).
    pub fn pass(&self, duration: &str) {
        let seconds = three_tier_core::Durations::aws().get(duration) + 1.0;
        let advance = emulator::Clock::Advance(std::time::Duration::from_secs_f64(seconds));
        emulator().set_clock(&self.region, advance).unwrap();
    }
}

impl Drop for RegionClock {
    fn drop(&mut self) {
        let _ = emulator().set_clock(&self.region, emulator::Clock::Rate(1.0));
    }
}

/// A context for a stack with nothing left from an earlier run of the same test.
pub async fn fresh_stack(stack: &str) -> (Config, AwsContext) {
    let config = config(stack);
    let ctx = context(&config).await;
    clean(&ctx, &config).await;
    (config, ctx)
}

/// Adds a subnet keyed `key` to the config, in `zone` (added to the stack's zones when
/// not there yet) and the first /26 of the VPC no other subnet overlaps.
pub fn add_subnet(config: &mut Config, key: &str, zone: &str) {
    let used: Vec<_> = config.network.subnets.iter().map(|(_, s)| s.cidr).collect();
    let mut blocks = config.network.vpc_cidr.subnets(26).expect("the VPC is /26 or larger");
    let cidr = blocks.find(|b| !used.iter().any(|u| u.contains(b) || b.contains(u))).expect("a free block");
    if !config.stack.availability_zones.iter().any(|z| z == zone) {
        config.stack.availability_zones.push(zone.to_owned());
    }
    let subnet = three_tier_core::config::SubnetConfig {
        name: format!("{key}-subnet"),
        cidr,
        availability_zone: zone.to_owned(),
    };
    config.network.subnets.0.insert(three_tier_core::SubnetKey::parse(key).expect("a subnet key"), subnet);
}

/// Tears down every tier of the config's stack, and gives back a lock left on it.
pub async fn clean(ctx: &AwsContext, config: &Config) {
    let leftovers = stack::plan_teardown(ctx, config, stack::TIERS, false).await.unwrap();
    stack::teardown(ctx, &leftovers).await.unwrap();
    // A lock an earlier run of the test left (it failed while holding one).
    let lock = three_tier_core::lock::parameter_name(&config.stack.name);
    let _ = ctx.ssm.delete_parameter().name(lock).send().await;
}

/// Recorded calls with volatile values replaced: every AWS id by its prefix and the
/// order of its first appearance (`vpc-1`, `subnet-3`), so the snapshot still shows
/// which resource each call refers to; idempotency tokens by a placeholder. A run of
/// identical calls (a waiter polling) counts once: how often it polls depends on time.
pub fn redact(calls: &[Call]) -> Vec<Call> {
    let mut numbering: BTreeMap<String, String> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut redact_value = |value: &str| -> String {
        // ARNs carry generated ids as path segments:
        // arn:...:listener/app/sample-alb/50dc6c495c0c9188/f2f7dc8efc522ab2.
        if value.starts_with("arn:") {
            let segments: Vec<String> = value
                .split('/')
                .map(|segment| {
                    let generated = segment.len() >= 8 && segment.chars().all(|c| c.is_ascii_hexdigit());
                    if !generated {
                        return segment.to_owned();
                    }
                    numbering
                        .entry(segment.to_owned())
                        .or_insert_with(|| {
                            let count = counts.entry("arn".into()).or_default();
                            *count += 1;
                            format!("[{count}]")
                        })
                        .clone()
                })
                .collect();
            return segments.join("/");
        }
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
            refused: call.refused,
            declared: call.declared,
            service: call.service.clone(),
            operation: call.operation.clone(),
            params: call
                .params
                .iter()
                .map(|(key, value)| {
                    let value =
                        if key.ends_with("ClientToken") { "[client-token]".to_owned() } else { redact_value(value) };
                    (key.clone(), value)
                })
                .collect(),
        })
        // A call repeated right after a read or a refused attempt of itself is one line: how
        // many polls a wait took, or how long AWS took to know an id, varies run to run. A
        // change repeated after it succeeded stays doubled: that is a bug to see.
        .fold(Vec::new(), |mut calls: Vec<Call>, call| {
            let repeat = calls.last().is_some_and(|last| {
                (last.service == call.service && last.operation == call.operation && last.params == call.params)
                    && (!last.is_mutating() || last.refused)
            });
            match calls.last_mut() {
                Some(last) if repeat => last.refused = call.refused,
                _ => calls.push(call),
            }
            calls
        })
}

/// Fails naming each call that the step or read that made it did not declare (see
/// `three_tier_core::calls::declared`), or that was made outside any.
pub fn assert_declared(calls: &[Call]) {
    let undeclared: Vec<String> = calls
        .iter()
        .filter(|call| !call.is_declared())
        .map(|call| format!("{}, made by one declaring {:?}", call.action(), call.declared))
        .collect();
    assert!(undeclared.is_empty(), "calls their step or read did not declare: {undeclared:#?}");
}

#[test]
fn redaction_keeps_a_change_made_twice_and_folds_polls_and_refused_attempts() {
    let call = |operation: &str, refused: bool| Call {
        service: "EC2".into(),
        operation: operation.into(),
        params: BTreeMap::from([("SubnetId".into(), "subnet-0123456789abcdef0".into())]),
        refused,
        declared: None,
    };
    let calls = [
        call("DescribeNatGateways", false),
        call("DescribeNatGateways", false),
        call("CreateRoute", true),
        call("CreateRoute", true),
        call("CreateRoute", false),
        call("RunInstances", false),
        call("RunInstances", false),
    ];
    let operations: Vec<(String, bool)> = redact(&calls).into_iter().map(|c| (c.operation, c.refused)).collect();
    let expected =
        [("DescribeNatGateways", false), ("CreateRoute", false), ("RunInstances", false), ("RunInstances", false)];
    assert_eq!(operations, expected.map(|(o, r)| (o.to_owned(), r)));
}

mod faults {
    //! Makes AWS answer as it does on a bad day: the first calls of an operation fail with
    //! a given error, as eventual consistency makes them fail on AWS.

    use std::sync::atomic::{AtomicU32, Ordering};

    use aws_sdk_ec2::operation::describe_nat_gateways::DescribeNatGatewaysOutput;
    use aws_sdk_ec2::operation::describe_subnets::DescribeSubnetsOutput;
    use aws_sdk_ec2::types::{NatGateway, NatGatewayState};
    use aws_sdk_ssm::operation::get_command_invocation::GetCommandInvocationOutput;
    use aws_sdk_ssm::types::CommandInvocationStatus;
    use aws_smithy_runtime_api::box_error::BoxError;
    use aws_smithy_runtime_api::client::interceptors::Intercept;
    use aws_smithy_runtime_api::client::interceptors::context::{
        BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut, FinalizerInterceptorContextMut,
    };
    use aws_smithy_runtime_api::client::orchestrator::Metadata;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

    /// Fails the first `times` calls of `operation` with HTTP 400 and `error_body`.
    #[derive(Debug)]
    pub struct FailFirst {
        operation: &'static str,
        remaining: AtomicU32,
        error_body: String,
        content_type: &'static str,
    }

    /// Marks a call as failed by the interceptor of this operation (every client carries
    /// every interceptor).
    #[derive(Debug, Clone)]
    struct Injected(&'static str);

    impl Storable for Injected {
        type Storer = StoreReplace<Self>;
    }

    /// The request id of every injected answer, shaped as AWS's are.
    pub const INJECTED_REQUEST_ID: &str = "5f2c6e1a-0d3b-4c6e-9d8f-1a2b3c4d5e6f";

    /// A read the emulator answers harmlessly, sent in place of a call that is to fail,
    /// so the emulator does not act on it.
    const HARMLESS: &str = "Action=DescribeRegions&Version=2016-11-15";

    impl FailFirst {
        pub fn new(operation: &'static str, times: u32, error_body: String) -> FailFirst {
            FailFirst { operation, remaining: AtomicU32::new(times), error_body, content_type: "text/xml" }
        }

        /// SSM (a JSON protocol) answering `operation` with `code` and `message`.
        pub fn ssm(operation: &'static str, times: u32, code: &str, message: &str) -> FailFirst {
            let body = serde_json::json!({"__type": code, "message": message}).to_string();
            FailFirst { content_type: "application/x-amz-json-1.1", ..FailFirst::new(operation, times, body) }
        }

        /// EC2 answering `operation` with `code` and `message`, in its error document.
        pub fn ec2(operation: &'static str, times: u32, code: &str, message: &str) -> FailFirst {
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code>\
                 <Message>{message}</Message></Error></Errors><RequestID>{INJECTED_REQUEST_ID}</RequestID></Response>"
            );
            FailFirst::new(operation, times, body)
        }

        /// EC2's answer to RunInstances with an instance profile IAM has not propagated.
        pub fn instance_profile_not_yet_visible(times: u32) -> FailFirst {
            let message = "Value (three-tier-app-profile-ap-northeast-1) for parameter iamInstanceProfile.name is invalid. \
                           Invalid IAM Instance Profile name";
            FailFirst::ec2("RunInstances", times, "InvalidParameterValue", message)
        }

        /// EC2's answer to TerminateInstances for an instance too new to be known
        /// everywhere in EC2.
        pub fn instance_not_yet_known(times: u32) -> FailFirst {
            let message = "The instance ID 'i-0123456789abcdef0' does not exist";
            FailFirst::ec2("TerminateInstances", times, "InvalidInstanceID.NotFound", message)
        }

        /// ELB's answer to RegisterTargets for an instance it does not know yet.
        pub fn target_not_yet_known(times: u32) -> FailFirst {
            let body = format!(
                "<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><Error><Type>Sender</Type>\
                 <Code>InvalidTarget</Code><Message>The following targets are not in a running state and cannot be registered</Message>\
                 </Error><RequestId>{INJECTED_REQUEST_ID}</RequestId></ErrorResponse>"
            );
            FailFirst::new("RegisterTargets", times, body)
        }
    }

    /// The answer to a call of `operation` that succeeded, for an interceptor to rewrite.
    fn answer_of<'c, T: std::fmt::Debug + Send + Sync + 'static>(
        context: &'c mut FinalizerInterceptorContextMut<'_>,
        cfg: &ConfigBag,
        operation: &str,
    ) -> Option<&'c mut T> {
        if cfg.load::<Metadata>().is_none_or(|m| m.name() != operation) {
            return None;
        }
        let Some(Ok(output)) = context.output_or_error_mut() else { return None };
        output.downcast_mut::<T>()
    }

    /// Reports the NAT gateway as `pending` in the first `times` DescribeNatGateways
    /// answers that show it `available`: AWS takes 1.5-2 minutes, the emulator no time.
    #[derive(Debug)]
    pub struct HoldNatPending {
        remaining: AtomicU32,
    }

    impl HoldNatPending {
        pub fn new(times: u32) -> HoldNatPending {
            HoldNatPending { remaining: AtomicU32::new(times) }
        }
    }

    impl Intercept for HoldNatPending {
        fn name(&self) -> &'static str {
            "hold NAT gateway pending"
        }

        fn modify_before_completion(
            &self,
            context: &mut FinalizerInterceptorContextMut<'_>,
            _runtime_components: &RuntimeComponents,
            cfg: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            let Some(output) = answer_of::<DescribeNatGatewaysOutput>(context, cfg, "DescribeNatGateways") else {
                return Ok(());
            };
            let gateways = output.nat_gateways.iter_mut().flatten();
            let available: Vec<&mut NatGateway> =
                gateways.filter(|n| n.state == Some(NatGatewayState::Available)).collect();
            if !available.is_empty()
                && self.remaining.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
            {
                for gateway in available {
                    gateway.state = Some(NatGatewayState::Pending);
                }
            }
            Ok(())
        }
    }

    /// Rewrites every answer of one operation, as an endpoint that answered so would.
    #[derive(Debug)]
    pub struct Rewrite<T> {
        name: &'static str,
        operation: &'static str,
        rewrite: fn(&mut T),
    }

    impl<T: std::fmt::Debug + Send + Sync + 'static> Intercept for Rewrite<T> {
        fn name(&self) -> &'static str {
            self.name
        }

        fn modify_before_completion(
            &self,
            context: &mut FinalizerInterceptorContextMut<'_>,
            _runtime_components: &RuntimeComponents,
            cfg: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            if let Some(output) = answer_of::<T>(context, cfg, self.operation) {
                (self.rewrite)(output);
            }
            Ok(())
        }
    }

    /// Answers DescribeSubnets without the subnets' ids, as a broken or partial endpoint
    /// might: what a plan must refuse to read as an empty id.
    pub fn drop_subnet_ids() -> Rewrite<DescribeSubnetsOutput> {
        Rewrite {
            name: "drop subnet ids",
            operation: "DescribeSubnets",
            rewrite: |output| output.subnets.iter_mut().flatten().for_each(|subnet| subnet.subnet_id = None),
        }
    }

    /// Reports every Run Command invocation as `InProgress`: an agent that never finishes
    /// the command.
    pub fn hold_command_in_progress() -> Rewrite<GetCommandInvocationOutput> {
        Rewrite {
            name: "hold command in progress",
            operation: "GetCommandInvocation",
            rewrite: |output| {
                output.status = Some(CommandInvocationStatus::InProgress);
                output.status_details = Some("InProgress".into());
            },
        }
    }

    impl Intercept for FailFirst {
        fn name(&self) -> &'static str {
            "fail first"
        }

        fn modify_before_transmit(
            &self,
            context: &mut BeforeTransmitInterceptorContextMut<'_>,
            _runtime_components: &RuntimeComponents,
            cfg: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            let ours = cfg.load::<Metadata>().is_some_and(|m| m.name() == self.operation);
            let fail =
                ours && self.remaining.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
            if fail {
                let request = context.request_mut();
                *request.body_mut() = SdkBody::from(HARMLESS);
                request.headers_mut().insert("content-length", HARMLESS.len().to_string());
                cfg.interceptor_state().store_put(Injected(self.operation));
            }
            Ok(())
        }

        fn modify_before_deserialization(
            &self,
            context: &mut BeforeDeserializationInterceptorContextMut<'_>,
            _runtime_components: &RuntimeComponents,
            cfg: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            if cfg.load::<Injected>().is_some_and(|injected| injected.0 == self.operation) {
                let mut response = Response::new(StatusCode::try_from(400)?, SdkBody::from(self.error_body.clone()));
                response.headers_mut().insert("content-type", self.content_type);
                // As AWS: the request id in a header too, where the SDK reads it.
                response.headers_mut().insert("x-amzn-requestid", INJECTED_REQUEST_ID);
                *context.response_mut() = response;
                cfg.interceptor_state().unset::<Injected>();
            }
            Ok(())
        }
    }
}
