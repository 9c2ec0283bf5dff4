//! The errors every tier shares, and the one place where AWS error codes are interpreted.

use std::time::Duration;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::config::ConfigError;
use crate::graph::GraphError;
use crate::roles::Tier;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// AWS answered with an error. It shows in a few lines: the call, AWS's code and
    /// message, the request id (for AWS support) and what to do. The SDK's own error is
    /// kept for the debug log, not shown.
    #[error(
        "{operation} failed: {code}: {message}{}{}",
        request_id.as_ref().map(|id| format!("\n  request id: {id}")).unwrap_or_default(),
        hint(code, operation).map(|h| format!("\n  fix: {h}")).unwrap_or_default()
    )]
    Aws { operation: &'static str, code: String, message: String, request_id: Option<String>, sdk: BoxError },

    /// The request never got an answer from AWS: no credentials, no network, no endpoint.
    #[error("{operation} did not reach AWS: {detail}\n  fix: {}", why.fix())]
    Unreachable { operation: &'static str, why: Unanswered, detail: String },

    #[error("gave up after {}s: {what}\n  fix: {fix}", after.as_secs())]
    Timeout { what: String, after: Duration, fix: String },

    /// A resource this tier owns is in AWS in a form that deploy cannot change in place.
    #[error("{resource} {problem}\n  fix: {fix}")]
    Conflict { resource: String, problem: String, fix: String },

    /// A tier was to be torn down while tiers built on it still stand.
    #[error(
        "the {tier} tier of stack {stack} still carries the {} tier(s)\n  fix: tear them down with it (`cargo xtask teardown {tier} {}`), or add --cascade",
        join(dependents),
        join(dependents)
    )]
    Dependents { tier: Tier, dependents: Vec<Tier>, stack: String },

    /// AWS's answer lacks something it always carries.
    #[error("{operation} answered without {field}\n  fix: run the command again; if it persists, please report it")]
    MissingField { operation: &'static str, field: &'static str },

    /// A tier's deploy finished and its outputs are still incomplete.
    #[error(
        "the {tier} tier of stack {stack} is incomplete after its deploy finished\n  fix: run `cargo xtask deploy {tier}` again; `cargo xtask plan {tier}` shows what is missing"
    )]
    Incomplete { tier: Tier, stack: String },

    /// Something AWS was doing stopped in a state it will not leave by itself.
    #[error("{what} stopped short: {state}\n  fix: {fix}")]
    WaitFailed { what: String, state: String, fix: String },

    /// The AMI the config names does not exist in the region.
    #[error(
        "{what} does not name an AMI available in {region}\n  fix: name an AMI of this region in compute.ami_id, or remove the key to use the latest Amazon Linux 2023 (compute.ami_parameter)"
    )]
    ImageNotFound { what: String, region: String },

    /// A step refers to what an earlier step was to create, and it was not: a bug in the
    /// plan's graph, which the graph's checks should have found.
    #[error(
        "{key} was to be created by an earlier step, which did not run\n  fix: this is a bug in three-tier; please report it with the output of `cargo xtask plan`"
    )]
    Unresolved { key: String },

    /// A plan's graph cannot be walked: a bug, found before any change.
    #[error(
        "the plan cannot be run: {0}\n  fix: this is a bug in three-tier; please report it with the output of `cargo xtask plan`"
    )]
    Graph(#[from] GraphError),

    /// Steps of a run failed; the steps running beside them finished, no new one started.
    #[error("{}", render_failures(failures))]
    Steps { failures: Vec<StepFailure> },

    /// Another run holds the stack's lock.
    #[error(
        "stack {stack} is locked by {holder}\n  fix: wait for that run to finish; if it died, run the command again with --force-unlock (a lock its run has not written for 5 minutes is taken over by itself)"
    )]
    Locked { stack: String, holder: String },

    /// Another run took over the lock this run held: this one stopped starting steps.
    #[error(
        "stopped: the lock of stack {stack} was taken over by {holder} while this run held it; the steps under way finished, no other started\n  fix: let that run finish, then run this command again: it plans from what exists"
    )]
    LockTakenOver { stack: String, holder: String },

    /// Ctrl-C stopped a run between steps.
    #[error(
        "interrupted: {done} of {total} steps done, the rest not started; nothing is half-made\n  fix: run the same command again: it plans from what exists and does the rest"
    )]
    Interrupted { done: usize, total: usize },

    /// Ctrl-C came while a step waited or retried: it stopped between two attempts.
    #[error("stopped by Ctrl-C while {what}\n  fix: run the same command again: it continues where it stopped")]
    Stopped { what: String },

    /// A command needs a tier that is not deployed.
    #[error("the {tier} tier is not deployed in stack {stack}\n  fix: run `cargo xtask deploy` first")]
    NotDeployed { tier: Tier, stack: String },

    /// A tier was asked for before the tiers it builds on.
    #[error(
        "the {tier} tier needs the {needs} tier, which is not deployed in stack {stack}\n  fix: run `cargo xtask deploy {needs}` first (or `cargo xtask deploy` for the whole stack)"
    )]
    MissingDependency { tier: Tier, needs: Tier, stack: String },
}

/// The AWS answers the tool expects and acts on. Each is told by its codes here and
/// nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The resource does not exist, or not yet: EC2 and IAM are eventually consistent.
    NotFound,
    /// A delete, detach or release refused while something still uses the resource; on
    /// AWS this clears by itself once delayed clean-ups (ALB network interfaces, a NAT
    /// gateway's address, an RDS instance's hold on its subnet group) finish.
    InUse,
    /// RunInstances does not know an instance profile created seconds ago: AWS answers
    /// "Invalid IAM Instance Profile name".
    ProfilePropagating,
    /// ELB does not know an instance (yet, or any more) as a target.
    UnknownTarget,
    /// The AMI id is malformed or unknown.
    UnknownImage,
    /// The RDS instance is in a state that refuses the call, e.g. already being deleted.
    DbInstanceBusy,
    /// The internet gateway is not attached to the VPC.
    NotAttached,
    /// SSM has no invocation of the command on the instance yet.
    NoInvocationYet,
    /// SSM does not know the instance: its agent has not registered yet (about a minute
    /// after boot), or it is not online.
    AgentNotReady,
    /// What a create-only-if-absent call makes exists already.
    AlreadyExists,
    /// AWS refuses the caller: invalid credentials, or, for ReleaseAddress, an address
    /// whose NAT gateway was deleted moments ago.
    AuthFailure,
    /// The caller's identity may not make this call.
    AccessDenied,
}

impl Error {
    /// A tier's deploy finished and its outputs are still incomplete.
    pub fn incomplete(tier: Tier, stack: &str) -> Error {
        Error::Incomplete { tier, stack: stack.to_owned() }
    }

    /// Which expected answer this is, if AWS gave one.
    pub fn answer(&self) -> Option<Answer> {
        let code = self.code()?;
        let message = match self {
            Error::Aws { message, .. } => message.to_ascii_lowercase(),
            _ => String::new(),
        };
        Some(match code {
            "InvalidParameterValue" if message.contains("iam instance profile") => Answer::ProfilePropagating,
            "DependencyViolation" | "ResourceInUse" | "InvalidIPAddress.InUse" | "InvalidDBSubnetGroupStateFault" => {
                Answer::InUse
            }
            "InvalidTarget" => Answer::UnknownTarget,
            "InvalidDBInstanceState" => Answer::DbInstanceBusy,
            "Gateway.NotAttached" => Answer::NotAttached,
            "InvocationDoesNotExist" => Answer::NoInvocationYet,
            "AuthFailure" => Answer::AuthFailure,
            "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => Answer::AccessDenied,
            "InvalidInstanceId" => Answer::AgentNotReady,
            "ParameterAlreadyExists" => Answer::AlreadyExists,
            code if code.starts_with("InvalidAMIID") => Answer::UnknownImage,
            code if code.ends_with("NotFound") || code.ends_with("NotFoundFault") || code == "NoSuchEntity" => {
                Answer::NotFound
            }
            _ => return None,
        })
    }

    /// The error in one line, without its fix: what a wait shows as its last answer.
    pub fn brief(&self) -> String {
        match self {
            Error::Aws { operation, code, message, .. } => format!("{operation} failed: {code}: {message}"),
            other => other.to_string().lines().next().unwrap_or_default().to_owned(),
        }
    }

    /// Whether AWS gave this expected answer.
    pub fn is(&self, answer: Answer) -> bool {
        self.answer() == Some(answer)
    }

    /// The AWS error code, when AWS answered (for failed steps, the first one's).
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Aws { code, .. } => Some(code),
            Error::Steps { failures } => failures.first().and_then(|f| f.error.code()),
            _ => None,
        }
    }

    /// The SDK found no credentials to sign the request with.
    pub fn is_missing_credentials(&self) -> bool {
        matches!(self, Error::Unreachable { why: Unanswered::NoCredentials, .. })
    }

    /// Something still uses the resource (see [`Answer::InUse`]).
    pub fn is_in_use(&self) -> bool {
        self.is(Answer::InUse)
    }

    /// The resource is already gone: the goal of a delete is reached.
    pub fn is_not_found(&self) -> bool {
        self.is(Answer::NotFound)
    }
}

/// How many times the SDK sends a request AWS throttles or fails with a 5xx. A deploy
/// sends some 200 calls, many at once, and AWS throttles bursts: more attempts than the
/// default three (Terraform's AWS provider allows 25) ride out a run of refusals of one call.
/// (Here, not in `aws`, so that errors, which the planner uses, need nothing of the executor.)
pub const MAX_ATTEMPTS: u32 = 10;

/// A field of an AWS answer that the next step needs (the id of what a create made):
/// missing, it is an error naming the call, never an empty string sent on.
pub fn required<T>(value: Option<T>, operation: &'static str, field: &'static str) -> Result<T> {
    value.ok_or(Error::MissingField { operation, field })
}

/// A delete of something already gone has reached its goal.
pub fn gone_is_done<T>(result: Result<T>) -> Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(err) if err.is_not_found() => Ok(()),
        Err(err) => Err(err),
    }
}

/// Converts SDK results into [`Error`], naming the operation.
pub trait AwsResultExt<T> {
    fn aws(self, operation: &'static str) -> Result<T>;
}

impl<T, E, R> AwsResultExt<T> for std::result::Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    fn aws(self, operation: &'static str) -> Result<T> {
        self.map_err(|err| match &err {
            SdkError::ServiceError(_) => {
                tracing::debug!(operation, error = ?err, "AWS answered with an error");
                Error::Aws {
                    operation,
                    code: err.code().unwrap_or("Unknown").to_owned(),
                    message: err.message().unwrap_or_default().to_owned(),
                    request_id: err.meta().extra("aws_request_id").map(str::to_owned),
                    sdk: Box::new(err),
                }
            }
            _ => {
                let full = DisplayErrorContext(&err).to_string();
                tracing::debug!(operation, error = %full, "the request got no answer from AWS");
                let (why, detail) = brief_unreachable(&full);
                Error::Unreachable { operation, why, detail }
            }
        })
    }
}

/// Why a request got no answer from AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// The SDK's chain found no credentials at all.
    NoCredentials,
    /// The profile's SSO session has expired and cannot be refreshed.
    SsoExpired,
    /// Credentials were found but could not be loaded (a broken profile, a failed role).
    Credentials,
    /// No answer came: the network, the endpoint.
    Network,
}

impl Unanswered {
    fn fix(self) -> &'static str {
        match self {
            Unanswered::NoCredentials => {
                "run `aws configure` or `aws sso login` (or set AWS_PROFILE), or add --emulator to use the local emulator"
            }
            Unanswered::SsoExpired => {
                "run `aws sso login` (with --profile, for the profile in AWS_PROFILE), then the command again"
            }
            Unanswered::Credentials => {
                "`aws sts get-caller-identity` shows what the SDK finds; fix the profile in AWS_PROFILE or \
                 ~/.aws/config, or add --emulator to use the local emulator"
            }
            Unanswered::Network => {
                "check the network and the endpoint (AWS_ENDPOINT_URL); with --emulator, check \
                 `cargo xtask emulator status`"
            }
        }
    }
}

/// The SDK's account of a request that got no answer, in a line, and why: its context
/// names every provider and layer it tried and ends with a Debug dump of them all, which
/// goes to the debug log (`RUST_LOG=debug`) instead.
fn brief_unreachable(full: &str) -> (Unanswered, String) {
    if full.contains("no credentials found") {
        let detail = "no AWS credentials were found (environment, profiles and SSO, web identity, container and \
                      instance roles were tried)";
        return (Unanswered::NoCredentials, detail.into());
    }
    if full.contains("SSO token has expired") {
        let detail = "the AWS SSO session of your profile has expired (its token cannot be refreshed)";
        return (Unanswered::SsoExpired, detail.into());
    }
    let first_line = full.lines().next().unwrap_or(full);
    let mut brief = first_line.split(" (").next().unwrap_or(first_line);
    // The layers the SDK names before the cause say nothing to a person.
    for layer in ["dispatch failure: ", "other: ", "io: "] {
        brief = brief.strip_prefix(layer).unwrap_or(brief);
    }
    let repeated = "an error occurred while loading credentials: ";
    let mut brief = brief.to_owned();
    while brief.matches(repeated).count() > 1 {
        brief = brief.replacen(repeated, "", 1);
    }
    let why = if brief.contains("credentials") { Unanswered::Credentials } else { Unanswered::Network };
    (why, brief)
}

/// What to do about an AWS error code, where there is something to say.
fn hint(code: &str, operation: &str) -> Option<String> {
    let hint = match code {
        "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" => format!(
            "your AWS identity may not call {operation}: use a profile or role that may (AWS_PROFILE=...), \
             or ask your administrator to grant it"
        ),
        "AuthFailure" | "RequestExpired" | "ExpiredToken" | "ExpiredTokenException"
        | "InvalidClientTokenId" | "UnrecognizedClientException" | "SignatureDoesNotMatch" => {
            "your AWS credentials are invalid or expired: renew them (`aws sso login`, or new keys)".into()
        }
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequestsException"
        | "RequestThrottled" | "SlowDown" => {
            format!(
                "AWS kept throttling through the SDK's {} attempts: something else is calling this account hard; \
                 wait a minute and run the command again (it picks up where it stopped)",
                MAX_ATTEMPTS
            )
        }
        "OptInRequired" => "the region is not enabled for this account: enable it, or set another stack.region".into(),
        "VpcLimitExceeded" | "AddressLimitExceeded" | "NatGatewayLimitExceeded"
        | "InternetGatewayLimitExceeded" | "RulesPerSecurityGroupLimitExceeded"
        | "SecurityGroupLimitExceeded" | "TooManyLoadBalancers" | "InstanceLimitExceeded"
        | "InstanceQuotaExceeded" | "DBInstanceQuotaExceeded" => {
            "an account quota is reached: delete unused resources of that kind, or request a higher quota in Service Quotas".into()
        }
        "DependencyViolation" => "something outside this step still uses the resource: the message names it; remove it and run the command again".into(),
        _ => return None,
    };
    Some(hint)
}

/// One step that failed in a run: which, of which tier, and why.
#[derive(Debug)]
pub struct StepFailure {
    pub tier: Tier,
    /// The step as the plan shows it.
    pub step: String,
    pub error: Box<Error>,
}

fn render_failures(failures: &[StepFailure]) -> String {
    let mut out = match failures.len() {
        1 => String::new(),
        n => format!("{n} steps failed:\n"),
    };
    for (index, failure) in failures.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{} step `{}` failed: {}", failure.tier, failure.step, failure.error));
    }
    out
}

fn join(tiers: &[Tier]) -> String {
    tiers.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(" ")
}
