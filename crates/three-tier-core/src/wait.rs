//! Waiting for AWS: the bounds of every wait, and the retry loop for what AWS refuses now
//! but will accept later (delayed clean-ups, eventual consistency), which the SDK's own
//! retries do not cover.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long to wait for things AWS finishes in its own time.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitSettings {
    /// The pause between two tries of the tool's own loops.
    pub poll_interval: Duration,
    /// A NAT gateway becoming available (1.5-2 min on AWS) or deleted (about 1 min).
    pub nat_gateway: Duration,
    /// A load balancer becoming active (2.5-3 min on AWS) or deleted.
    pub load_balancer: Duration,
    /// An instance running (30-50 s on AWS) or terminated.
    pub instance: Duration,
    /// An RDS instance available (about 6 min for db.t3.micro) or deleted (4-6 min).
    pub database: Duration,
    /// AWS's eventual consistency: a new instance profile that RunInstances does not
    /// know yet, a new instance that other calls do not find yet. Seconds, rarely more.
    pub propagation: Duration,
    /// A delete refused with DependencyViolation while AWS cleans up after something
    /// else: an ALB's network interfaces linger for minutes after it is deleted.
    pub dependency_violation: Duration,
    /// The SDK's first pause before it retries a throttled or failed request; it doubles
    /// with each of the ten attempts (up to 20 s).
    pub retry_backoff: Duration,
    /// How often a run holding the stack's lock writes it again (see `crate::lock`).
    pub lock_refresh: Duration,
}

impl Default for WaitSettings {
    fn default() -> Self {
        WaitSettings {
            poll_interval: Duration::from_secs(5),
            nat_gateway: Duration::from_secs(10 * 60),
            load_balancer: Duration::from_secs(10 * 60),
            instance: Duration::from_secs(10 * 60),
            propagation: Duration::from_secs(2 * 60),
            database: Duration::from_secs(30 * 60),
            dependency_violation: Duration::from_secs(15 * 60),
            retry_backoff: Duration::from_secs(1),
            lock_refresh: Duration::from_secs(60),
        }
    }
}

impl WaitSettings {
    /// The same bounds, polled often: for an endpoint that answers in milliseconds.
    pub fn fast_poll() -> Self {
        WaitSettings {
            poll_interval: Duration::from_millis(100),
            retry_backoff: Duration::from_millis(10),
            ..WaitSettings::default()
        }
    }
}

/// Runs `attempt` until it succeeds, fails with an error `retry_if` does not accept, or
/// `limit` passes; then fails with a timeout that says `fix`.
pub async fn retry_while<T, Fut>(
    ctx: &crate::AwsContext,
    what: &str,
    limit: Duration,
    fix: &str,
    retry_if: impl Fn(&Error) -> bool,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T>
where
    Fut: Future<Output = Result<T>>,
{
    let started = Instant::now();
    let mut waiting = None;
    loop {
        match attempt().await {
            Ok(value) => {
                if let Some(waiting) = waiting.take() {
                    crate::progress::Waiting::done(waiting, "done");
                }
                return Ok(value);
            }
            Err(err) if retry_if(&err) => {
                if started.elapsed() >= limit {
                    return Err(Error::Timeout {
                        what: format!("{what} (last answer: {})", err.brief()),
                        after: limit,
                        fix: fix.to_owned(),
                    });
                }
                waiting.get_or_insert_with(|| ctx.progress.waiting(what, limit));
                if pause_unless_interrupted(ctx).await {
                    if let Some(waiting) = waiting.take() {
                        waiting.done("stopped by Ctrl-C");
                    }
                    return Err(Error::Stopped { what: what.to_owned() });
                }
            }
            Err(err) => return Err(err),
        }
    }
}

/// One look at something AWS is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll<T> {
    Ready(T),
    /// Still on its way, in this state.
    Pending(String),
    /// It will not get there: the state, and what AWS said about it.
    Failed(String),
}

/// Polls `check` every `poll_interval` until it is ready, failed, or `limit` passes. The
/// tool polls with its own loop rather than the SDK's waiters: theirs wait at least 15-30
/// seconds between polls, which delays every step after a wait by that much.
pub async fn wait_for<T, Fut>(
    ctx: &crate::AwsContext,
    what: &str,
    limit: Duration,
    failure_hint: &str,
    mut check: impl FnMut() -> Fut,
) -> Result<T>
where
    Fut: Future<Output = Result<Poll<T>>>,
{
    let started = Instant::now();
    let waiting = ctx.progress.waiting(what, limit);
    loop {
        match check().await? {
            Poll::Ready(value) => {
                waiting.done("done");
                return Ok(value);
            }
            Poll::Failed(state) => {
                waiting.done(&format!("failed: {state}"));
                return Err(Error::WaitFailed { what: what.to_owned(), state, fix: failure_hint.to_owned() });
            }
            Poll::Pending(state) if started.elapsed() >= limit => {
                waiting.done("gave up");
                return Err(Error::Timeout {
                    what: format!("{what} (still {state})"),
                    after: limit,
                    fix: "AWS is slower than usual; run the same command again later: it continues where it stopped"
                        .into(),
                });
            }
            Poll::Pending(_) => {
                if pause_unless_interrupted(ctx).await {
                    waiting.done("stopped by Ctrl-C");
                    return Err(Error::Stopped { what: what.to_owned() });
                }
            }
        }
    }
}

/// Pauses for the poll interval; true, at once, when Ctrl-C is pressed: the loop stops
/// between two attempts, each a whole call, so nothing is left half-made.
async fn pause_unless_interrupted(ctx: &crate::AwsContext) -> bool {
    tokio::select! {
        () = tokio::time::sleep(ctx.waits.poll_interval) => {}
        () = ctx.interrupt.raised() => {}
    }
    ctx.interrupt.is_raised()
}

/// Retries a delete or detach that AWS refuses while something still uses the resource
/// (see [`Error::is_in_use`]), for as long as the context's settings allow.
pub async fn retry_in_use<Fut>(
    ctx: &crate::AwsContext,
    what: &str,
    fix: &str,
    attempt: impl FnMut() -> Fut,
) -> Result<()>
where
    Fut: Future<Output = Result<()>>,
{
    retry_while(ctx, &format!("waiting for {what}"), ctx.waits.dependency_violation, fix, Error::is_in_use, attempt)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A context that polls every millisecond; no request is sent.
    async fn context() -> crate::AwsContext {
        let target = crate::Target::Emulator { endpoint: "http://127.0.0.1:9".into() };
        let waits = WaitSettings { poll_interval: Duration::from_millis(1), ..WaitSettings::fast_poll() };
        crate::AwsContext::connect(&target, "us-east-1", waits, crate::progress::Progress::silent()).await
    }

    fn violation() -> Error {
        Error::Aws {
            operation: "DeleteSubnet",
            code: "DependencyViolation".into(),
            message: "in use".into(),
            request_id: None,
            sdk: "in use".into(),
        }
    }

    #[tokio::test]
    async fn retries_until_the_refusal_clears() {
        let tries = AtomicU32::new(0);
        let result = retry_while(&context().await, "subnet", Duration::from_secs(5), "", Error::is_in_use, || async {
            if tries.fetch_add(1, Ordering::SeqCst) < 3 { Err(violation()) } else { Ok(7) }
        })
        .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(tries.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn gives_up_after_the_limit_with_the_fix() {
        let result: Result<()> = retry_while(
            &context().await,
            "subnet alb-subnet",
            Duration::from_millis(20),
            "delete the ALB",
            Error::is_in_use,
            || async { Err(violation()) },
        )
        .await;
        let message = result.unwrap_err().to_string();
        assert!(message.contains("subnet alb-subnet"), "{message}");
        assert!(message.contains("fix: delete the ALB"), "{message}");
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let tries = AtomicU32::new(0);
        let result: Result<()> =
            retry_while(&context().await, "x", Duration::from_secs(5), "", Error::is_in_use, || async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(Error::Conflict { resource: "r".into(), problem: "p".into(), fix: "f".into() })
            })
            .await;
        assert!(matches!(result, Err(Error::Conflict { .. })), "{result:?}");
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn ctrl_c_stops_the_retries_between_two_attempts() {
        let ctx = context().await;
        let tries = AtomicU32::new(0);
        let result: Result<()> = retry_while(&ctx, "subnet", Duration::from_secs(60), "", Error::is_in_use, || async {
            if tries.fetch_add(1, Ordering::SeqCst) == 2 {
                ctx.interrupt.raise();
            }
            Err(violation())
        })
        .await;
        assert!(matches!(result, Err(Error::Stopped { .. })), "{result:?}");
        assert_eq!(tries.load(Ordering::SeqCst), 3, "no attempt after Ctrl-C");
    }
}
