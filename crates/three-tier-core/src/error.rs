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

    /// AWS answered with an error.
    #[error("{operation} failed: {code}: {message}{}", hint(code, operation).map(|h| format!("\n  fix: {h}")).unwrap_or_default())]
    Aws {
        operation: &'static str,
        code: String,
        message: String,
        #[source]
        source: BoxError,
    },

    /// The request never got an answer from AWS: no credentials, no network, no endpoint.
    #[error("{operation} could not reach AWS: {detail}\n  fix: {}", unreachable_fix(detail))]
    Unreachable { operation: &'static str, detail: String },

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
    #[error(
        "{operation} answered without {field}\n  fix: run the command again; if it persists, report it with the request id in the debug log (RUST_LOG=debug)"
    )]
    MissingField { operation: &'static str, field: &'static str },

    /// A plan's graph cannot be walked: a bug, found before any change.
    #[error(
        "the plan cannot be run: {0}\n  fix: this is a bug in three-tier; please report it with the output of `cargo xtask plan`"
    )]
    Graph(#[from] GraphError),

    /// Steps of a run failed; the steps running beside them finished, no new one started.
    #[error("{}", render_failures(failures))]
    Steps { failures: Vec<StepFailure> },

    /// A command needs a tier that is not deployed.
    #[error("the {tier} tier is not deployed in stack {stack}\n  fix: run `cargo xtask deploy` first")]
    NotDeployed { tier: Tier, stack: String },

    /// A tier was asked for before the tiers it builds on.
    #[error(
        "the {tier} tier needs the {needs} tier, which is not deployed in stack {stack}\n  fix: run `cargo xtask deploy {needs}` first (or `cargo xtask deploy` for the whole stack)"
    )]
    MissingDependency { tier: Tier, needs: Tier, stack: String },
}

impl Error {
    /// A tier's deploy finished and its outputs are still incomplete.
    pub fn incomplete(tier: Tier, stack: &str) -> Error {
        Error::Conflict {
            resource: format!("the {tier} tier of stack {stack}"),
            problem: "is incomplete after its deploy finished".into(),
            fix: format!("run `cargo xtask deploy {tier}` again; `cargo xtask plan {tier}` shows what is missing"),
        }
    }

    /// The AWS error code, when AWS answered (for failed steps, the first one's).
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Aws { code, .. } => Some(code),
            Error::Steps { failures } => failures.first().and_then(|f| f.error.code()),
            _ => None,
        }
    }

    /// AWS refuses to delete or detach something that is still in use; on AWS this clears
    /// by itself once delayed clean-ups (ALB network interfaces, NAT addresses) finish.
    pub fn is_dependency_violation(&self) -> bool {
        self.code() == Some("DependencyViolation")
    }

    /// AWS still sees the resource in use by something being deleted (a target group
    /// just after its listener); clears within seconds to minutes.
    pub fn is_in_use(&self) -> bool {
        self.is_dependency_violation() || self.code() == Some("ResourceInUse")
    }

    /// RunInstances does not know an instance profile created seconds ago: IAM is
    /// eventually consistent, and AWS answers "Invalid IAM Instance Profile name".
    pub fn is_instance_profile_propagating(&self) -> bool {
        match self {
            Error::Aws { code, message, .. } => {
                code == "InvalidParameterValue" && message.to_ascii_lowercase().contains("iam instance profile")
            }
            _ => false,
        }
    }

    /// The resource is already gone: the goal of a delete is reached.
    pub fn is_not_found(&self) -> bool {
        self.code().is_some_and(|code| {
            code.ends_with(".NotFound")
                || code.ends_with("NotFound")
                || code.ends_with("NotFoundFault")
                || code == "NoSuchEntity"
        })
    }
}

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
            SdkError::ServiceError(_) => Error::Aws {
                operation,
                code: err.code().unwrap_or("Unknown").to_owned(),
                message: err.message().unwrap_or_default().to_owned(),
                source: Box::new(err),
            },
            _ => Error::Unreachable { operation, detail: DisplayErrorContext(&err).to_string() },
        })
    }
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

fn unreachable_fix(detail: &str) -> &'static str {
    let lower = detail.to_ascii_lowercase();
    if lower.contains("credential") {
        "no AWS credentials were found: run `aws configure` or `aws sso login` (or set AWS_PROFILE), \
         or add --emulator to use the local emulator"
    } else {
        "check the network and the endpoint (AWS_ENDPOINT_URL); with --emulator, check \
         `cargo xtask emulator status`"
    }
}
