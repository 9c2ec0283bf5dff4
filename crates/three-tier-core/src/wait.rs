//! Waiting for AWS: the bounds of every wait, and the one loop that asks again, both for
//! a state on its way and for what AWS refuses now but accepts later (delayed clean-ups,
//! eventual consistency), which the SDK's own retries do not cover.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::plan::Bound;

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

    /// The limit a step's wait names.
    pub fn limit(&self, bound: Bound) -> Duration {
        match bound {
            Bound::NatGateway => self.nat_gateway,
            Bound::LoadBalancer => self.load_balancer,
            Bound::Instance => self.instance,
            Bound::Database => self.database,
            Bound::Propagation => self.propagation,
            Bound::DependencyViolation => self.dependency_violation,
        }
    }
}

/// What one attempt at something AWS finishes in its own time found, as kube-rs's
/// reconcilers answer `Action::requeue`: the attempt does one round of calls; the asking
/// again is [`until`]'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T = ()> {
    Done(T),
    /// Not there yet, in this state (or AWS refused the call for now, with this answer).
    NotYet(String),
    /// It will not get there: its state, and where AWS says why.
    Failed {
        state: String,
        look: &'static str,
    },
}

impl<T> Outcome<T> {
    /// A call's result, where an error `for_now` accepts means "not yet" (AWS accepts the
    /// call later: a clean-up to finish, a new name to propagate).
    pub fn unless_refused(result: Result<T>, for_now: impl Fn(&Error) -> bool) -> Result<Outcome<T>> {
        match result {
            Ok(value) => Ok(Outcome::Done(value)),
            Err(err) if for_now(&err) => Ok(Outcome::NotYet(err.brief())),
            Err(err) => Err(err),
        }
    }
}

/// Makes `attempt` until it is done, fails, or `limit` passes (then fails with a timeout
/// that says `fix`), pausing `poll_interval` between two attempts. The one loop of the
/// tool's waits: the scheduler runs every step through it, so a step's run makes one
/// attempt and says what it found. The tool polls with its own loop rather than the SDK's
/// waiters: theirs wait at least 15-30 seconds between polls, which delays every step
/// after a wait by that much.
pub async fn until<T, Fut>(
    ctx: &crate::AwsContext,
    what: &str,
    limit: Duration,
    fix: &str,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T>
where
    Fut: Future<Output = Result<Outcome<T>>>,
{
    let started = Instant::now();
    // Shown from the first "not yet": a step done at its first attempt shows no wait.
    let mut waiting = None;
    let finish = |waiting: Option<crate::progress::Waiting>, outcome: &str| {
        if let Some(waiting) = waiting {
            waiting.done(outcome);
        }
    };
    loop {
        let state = match attempt().await {
            Ok(Outcome::Done(value)) => {
                finish(waiting, "done");
                return Ok(value);
            }
            Ok(Outcome::NotYet(state)) => state,
            Ok(Outcome::Failed { state, look }) => {
                finish(waiting, &format!("failed: {state}"));
                return Err(Error::WaitFailed { what: what.to_owned(), state, fix: look.to_owned() });
            }
            Err(err) => {
                finish(waiting, "failed");
                return Err(err);
            }
        };
        if started.elapsed() >= limit {
            finish(waiting, "gave up");
            return Err(Error::Timeout { what: format!("{what} (still {state})"), after: limit, fix: fix.to_owned() });
        }
        if waiting.is_none() {
            waiting = Some(ctx.progress.waiting(what, limit));
        }
        if pause_unless_interrupted(ctx).await {
            finish(waiting, "stopped by Ctrl-C");
            return Err(Error::Stopped { what: what.to_owned() });
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

    /// One attempt that AWS refuses as in use.
    async fn refused() -> Result<Outcome<u32>> {
        Outcome::unless_refused(Err(violation()), Error::is_in_use)
    }

    #[tokio::test]
    async fn asks_again_until_done() {
        let tries = AtomicU32::new(0);
        let result = until(&context().await, "subnet", Duration::from_secs(5), "", || async {
            if tries.fetch_add(1, Ordering::SeqCst) < 3 { refused().await } else { Ok(Outcome::Done(7)) }
        })
        .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(tries.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn gives_up_after_the_limit_with_the_last_state_and_the_fix() {
        let result =
            until(&context().await, "subnet alb-subnet", Duration::from_millis(20), "delete the ALB", refused).await;
        let message = result.unwrap_err().to_string();
        assert!(message.contains("subnet alb-subnet (still DeleteSubnet failed: DependencyViolation"), "{message}");
        assert!(message.contains("fix: delete the ALB"), "{message}");
    }

    #[tokio::test]
    async fn a_failed_state_and_other_errors_end_the_wait_at_once() {
        let tries = AtomicU32::new(0);
        let result: Result<()> = until(&context().await, "x", Duration::from_secs(5), "", || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Outcome::unless_refused(
                Err(Error::Conflict { resource: "r".into(), problem: "p".into(), fix: "f".into() }),
                Error::is_in_use,
            )
        })
        .await;
        assert!(matches!(result, Err(Error::Conflict { .. })), "{result:?}");
        let failed: Result<()> = until(&context().await, "NAT gateway", Duration::from_secs(5), "", || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Ok(Outcome::Failed { state: "failed".into(), look: "its FailureMessage" })
        })
        .await;
        let message = failed.unwrap_err().to_string();
        assert!(message.contains("NAT gateway") && message.contains("its FailureMessage"), "{message}");
        assert_eq!(tries.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn ctrl_c_stops_the_asking_between_two_attempts() {
        let ctx = context().await;
        let tries = AtomicU32::new(0);
        let result: Result<u32> = until(&ctx, "subnet", Duration::from_secs(60), "", || async {
            if tries.fetch_add(1, Ordering::SeqCst) == 2 {
                ctx.interrupt.raise();
            }
            refused().await
        })
        .await;
        assert!(matches!(result, Err(Error::Stopped { .. })), "{result:?}");
        assert_eq!(tries.load(Ordering::SeqCst), 3, "no attempt after Ctrl-C");
    }
}
