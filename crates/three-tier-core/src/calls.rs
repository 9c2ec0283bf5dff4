//! A record of every API call the tool makes: for snapshots of the wire requests, for the
//! "a re-run makes no change" check, and for counting calls.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use serde::Serialize;

/// One API call as it went on the wire: its operation and its parameters, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Call {
    pub service: String,
    pub operation: String,
    pub params: BTreeMap<String, String>,
    /// Whether AWS refused the call (an error answer after the SDK's retries): a refused
    /// change changed nothing. Not part of the wire request, so not serialized.
    #[serde(skip)]
    pub refused: bool,
    /// The operations declared by the step or the read that made the call (see
    /// [`declared`]); `None` for a call made outside any.
    #[serde(skip)]
    pub declared: Option<&'static [&'static str]>,
}

impl Call {
    /// Whether the call can change anything in AWS. Read calls are named Describe*, List*
    /// and Get* in every service this tool uses.
    pub fn is_mutating(&self) -> bool {
        !["Describe", "List", "Get"].iter().any(|read| self.operation.starts_with(read))
    }

    /// The call as IAM names its action: `ec2:CreateVpc`.
    pub fn action(&self) -> String {
        let prefix = match self.service.as_str() {
            "EC2" => "ec2",
            "Elastic Load Balancing v2" => "elasticloadbalancing",
            "RDS" => "rds",
            "IAM" => "iam",
            "SSM" => "ssm",
            "Service Quotas" => "servicequotas",
            other => other,
        };
        format!("{prefix}:{}", self.operation)
    }

    /// Whether the step or read that made the call declared it.
    pub fn is_declared(&self) -> bool {
        let action = self.action();
        self.declared.is_some_and(|declared| declared.contains(&action.as_str()))
    }
}

tokio::task_local! {
    static DECLARED: &'static [&'static str];
}

/// Runs `work` (a step's run, or a read) as the maker of the calls it sends, which
/// `actions` declares: the log holds each call with what its maker declared, so a test
/// can show that every call is known before it is made (what a least-privilege policy
/// needs).
pub async fn declared<F: Future>(actions: &'static [&'static str], work: F) -> F::Output {
    DECLARED.scope(actions, work).await
}

/// The shared log every client of one [`crate::AwsContext`] writes to.
#[derive(Debug, Clone, Default)]
pub struct CallLog {
    /// Each call with the moment it went out, for the benchmark's timeline.
    calls: Arc<Mutex<Vec<(Instant, Call)>>>,
}

impl CallLog {
    pub fn calls(&self) -> Vec<Call> {
        self.since(0)
    }

    /// A position in the log, to take the calls made after it with [`CallLog::since`].
    pub fn mark(&self) -> usize {
        self.calls.lock().expect("call log lock").len()
    }

    pub fn since(&self, mark: usize) -> Vec<Call> {
        self.timed_since(mark).into_iter().map(|(_, call)| call).collect()
    }

    /// As [`CallLog::since`], with the moment each call was sent.
    pub fn timed_since(&self, mark: usize) -> Vec<(Instant, Call)> {
        self.calls.lock().expect("call log lock")[mark..].to_vec()
    }
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "three-tier call log"
    }

    // Runs once per call (not per retry attempt), after the request is serialized.
    fn read_after_serialization(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) =
            cfg.load::<Metadata>().map(|m| (m.service().to_owned(), m.name().to_owned())).unwrap_or_default();
        let body = context.request().body().bytes().unwrap_or_default();
        let params = request_params(body);
        let mut calls = self.calls.lock().expect("call log lock");
        cfg.interceptor_state().store_put(LoggedAt(calls.len()));
        let declared = DECLARED.try_with(|actions| *actions).ok();
        calls.push((Instant::now(), Call { service, operation, params, refused: false, declared }));
        Ok(())
    }

    // Runs once per call, when it has its answer: marks a refused call as such.
    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let refused = !matches!(context.output_or_error(), Some(Ok(_)));
        if let Some(LoggedAt(index)) = cfg.load::<LoggedAt>()
            && let Some((_, call)) = self.calls.lock().expect("call log lock").get_mut(*index)
        {
            call.refused = refused;
        }
        Ok(())
    }
}

/// Where in the log the call in flight was written, to mark it when it ends.
#[derive(Debug, Clone)]
struct LoggedAt(usize);

impl Storable for LoggedAt {
    type Storer = StoreReplace<Self>;
}

/// The parameters of a request body: form-encoded (EC2, ELBv2, RDS, IAM) or JSON (SSM).
/// `Action` and `Version` are left out: the operation name says the same.
fn request_params(body: &[u8]) -> BTreeMap<String, String> {
    if body.first() == Some(&b'{') {
        let mut params = BTreeMap::new();
        if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
            flatten_json("", &json, &mut params);
        }
        return params;
    }
    form_urlencoded::parse(body)
        .filter(|(key, _)| key != "Action" && key != "Version")
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

fn flatten_json(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    let join = |key: &str| if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") };
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                flatten_json(&join(key), value, out);
            }
        }
        serde_json::Value::Array(items) => {
            for (index, value) in items.iter().enumerate() {
                flatten_json(&join(&(index + 1).to_string()), value, out);
            }
        }
        serde_json::Value::String(text) => {
            out.insert(prefix.to_owned(), text.clone());
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_become_sorted_params_without_action_and_version() {
        let params = request_params(b"Action=CreateVpc&Version=2016-11-15&CidrBlock=10.0.0.0%2F16&A=1");
        assert_eq!(
            params.into_iter().collect::<Vec<_>>(),
            vec![("A".to_owned(), "1".to_owned()), ("CidrBlock".to_owned(), "10.0.0.0/16".to_owned())]
        );
    }

    #[test]
    fn json_bodies_are_flattened() {
        let params = request_params(br#"{"Names":["/a"],"WithDecryption":false}"#);
        assert_eq!(params.get("Names.1").map(String::as_str), Some("/a"));
        assert_eq!(params.get("WithDecryption").map(String::as_str), Some("false"));
    }

    #[test]
    fn reads_are_told_from_writes_by_name() {
        let call = |operation: &str| Call {
            service: "EC2".into(),
            operation: operation.into(),
            params: BTreeMap::new(),
            refused: false,
            declared: None,
        };
        assert!(!call("DescribeVpcs").is_mutating());
        assert!(!call("GetParameter").is_mutating());
        assert!(call("CreateVpc").is_mutating());
        assert!(call("AuthorizeSecurityGroupIngress").is_mutating());
    }

    #[tokio::test]
    async fn a_call_is_declared_only_by_the_actions_its_maker_names() {
        let call = Call {
            service: "Elastic Load Balancing v2".into(),
            operation: "CreateListener".into(),
            params: BTreeMap::new(),
            refused: false,
            declared: None,
        };
        assert_eq!(call.action(), "elasticloadbalancing:CreateListener");
        assert!(!call.is_declared(), "made outside any step or read");
        let made_by = |actions| Call { declared: Some(actions), ..call.clone() };
        assert!(made_by(&["elasticloadbalancing:CreateListener"]).is_declared());
        assert!(!made_by(&["elasticloadbalancing:CreateRule", "ec2:CreateListener"]).is_declared());
        // The maker is the innermost scope the call is sent from.
        let inner = declared(&["ec2:CreateVpc"], async { DECLARED.try_with(|a| *a).ok() });
        assert_eq!(declared(&["ec2:DescribeVpcs"], inner).await, Some(&["ec2:CreateVpc"][..]));
        assert_eq!(DECLARED.try_with(|a| *a).ok(), None);
    }
}
