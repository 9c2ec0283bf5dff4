//! The AWS context: one set of SDK clients, built from aws-config's default chain, that
//! every tier uses.

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_ec2::config::{Credentials, Region};
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;

use std::future::Future;
use std::pin::Pin;

use crate::calls::CallLog;
pub use crate::error::MAX_ATTEMPTS;
use crate::error::Result;
use crate::graph::Durations;
use crate::interrupt::Interrupt;
use crate::progress::Progress;
use crate::schedule::Schedule;
use crate::wait::WaitSettings;

/// The stack's tags as EC2 takes them when it creates a resource.
pub fn ec2_tag_spec(
    resource_type: aws_sdk_ec2::types::ResourceType,
    tags: &crate::naming::Tags,
) -> aws_sdk_ec2::types::TagSpecification {
    let tags = tags.pairs.iter().map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build()).collect();
    aws_sdk_ec2::types::TagSpecification::builder().resource_type(resource_type).set_tags(Some(tags)).build()
}

/// Where the SDK sends its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Real AWS, through the default chain: profiles, SSO, environment variables,
    /// `AWS_ENDPOINT_URL`.
    Aws,
    /// The local emulator at this URL, with dummy credentials.
    Emulator { endpoint: String },
}

/// Everything a tier needs to talk to AWS and to the person watching.
#[derive(Debug, Clone)]
pub struct AwsContext {
    pub region: String,
    pub ec2: aws_sdk_ec2::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub rds: aws_sdk_rds::Client,
    pub iam: aws_sdk_iam::Client,
    pub ssm: aws_sdk_ssm::Client,
    /// Service Quotas: the quotas applied to the account, raised or not.
    pub quotas: aws_sdk_servicequotas::Client,
    /// Every call made through the clients above.
    pub calls: CallLog,
    pub waits: WaitSettings,
    pub progress: Progress,
    /// How runs pick among the steps that are ready.
    pub schedule: Schedule,
    /// How long AWS's work typically takes where the requests go (the emulator's clock
    /// runs faster), for predictions measured against.
    pub durations: Durations,
    /// Raised by Ctrl-C: runs stop starting steps (see `crate::interrupt`).
    pub interrupt: Interrupt,
}

impl AwsContext {
    /// Two independent reads at once; one after the other when runs are ordered, so a
    /// snapshot of the wire requests sees them in the same order every time.
    pub async fn both<A, B>(
        &self,
        first: impl Future<Output = Result<A>>,
        second: impl Future<Output = Result<B>>,
    ) -> Result<(A, B)> {
        // Boxed: SDK calls' futures are large, and reads nest several of them deep.
        let (first, second) = (Box::pin(first), Box::pin(second));
        if self.schedule == Schedule::Ordered {
            Ok((first.await?, second.await?))
        } else {
            tokio::try_join!(first, second)
        }
    }

    /// Two futures at once (one after the other when the schedule is ordered), each run to
    /// its end whatever the other's outcome: unlike [`AwsContext::both`], a failure of
    /// one never drops the other half-way.
    pub async fn each<A: Future, B: Future>(&self, first: A, second: B) -> (A::Output, B::Output) {
        let (first, second) = (Box::pin(first), Box::pin(second));
        if self.schedule == Schedule::Ordered { (first.await, second.await) } else { tokio::join!(first, second) }
    }

    /// Independent reads at once, as [`AwsContext::both`] does two: their answers in order.
    pub fn all<'a, T: Send + 'a>(
        &'a self,
        mut reads: Vec<Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<T>>> + Send + 'a>> {
        Box::pin(async move {
            if reads.is_empty() {
                return Ok(Vec::new());
            }
            let first = reads.remove(0);
            let (head, mut rest) = self.both(first, self.all(reads)).await?;
            rest.insert(0, head);
            Ok(rest)
        })
    }

    pub async fn connect(target: &Target, region: &str, waits: WaitSettings, progress: Progress) -> AwsContext {
        AwsContext::connect_with(target, region, waits, progress, Vec::new()).await
    }

    /// As [`AwsContext::connect`], with more interceptors on every client: tests use them
    /// to make AWS answer as it does on a bad day.
    pub async fn connect_with(
        target: &Target,
        region: &str,
        waits: WaitSettings,
        progress: Progress,
        interceptors: Vec<SharedInterceptor>,
    ) -> AwsContext {
        let mut loader =
            aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.to_owned())).retry_config(
                RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS).with_initial_backoff(waits.retry_backoff),
            );
        if let Target::Emulator { endpoint } = target {
            loader = loader
                .endpoint_url(endpoint)
                .credentials_provider(Credentials::new("testing", "testing", None, None, "emulator"));
        }
        let sdk_config = loader.load().await;
        let calls = CallLog::default();
        // Every client records its calls, then runs the extra interceptors.
        macro_rules! client {
            ($sdk:ident) => {{
                let mut builder = $sdk::config::Builder::from(&sdk_config).interceptor(calls.clone());
                for interceptor in &interceptors {
                    builder.push_interceptor(interceptor.clone());
                }
                $sdk::Client::from_conf(builder.build())
            }};
        }
        AwsContext {
            region: region.to_owned(),
            ec2: client!(aws_sdk_ec2),
            elbv2: client!(aws_sdk_elasticloadbalancingv2),
            rds: client!(aws_sdk_rds),
            iam: client!(aws_sdk_iam),
            ssm: client!(aws_sdk_ssm),
            quotas: client!(aws_sdk_servicequotas),
            calls,
            waits,
            progress,
            schedule: Schedule::default(),
            durations: Durations::aws(),
            interrupt: Interrupt::default(),
        }
    }
}
