//! The stack's lock, kept in AWS since the tool keeps no local state: an SSM parameter per
//! stack, created only if it does not exist, naming who holds it, where and for which
//! command. `deploy` and `teardown` take it before their first change; reads do not.
//!
//! The holder writes it again every [`crate::wait::WaitSettings::lock_refresh`] while it
//! runs, and a lock is judged by when AWS last saw it written (the parameter's
//! `LastModifiedDate`, AWS's clock), not by the holder's clock: a lock not written for
//! [`STALE_AFTER_REFRESHES`] periods belongs to a run that died, and is taken over.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_ssm::types::{ParameterType, Tag};
use serde::{Deserialize, Serialize};

use crate::aws::AwsContext;
use crate::calls::declared;
use crate::error::{Answer, AwsResultExt, Error, Result, required};
use crate::naming::STACK_TAG;
use crate::progress::human;

/// A lock AWS has not seen written for this many refresh periods is taken over: a live
/// run writes it every period, so missing several is a run that died (or cannot reach AWS).
pub const STALE_AFTER_REFRESHES: u32 = 5;

/// Who holds a stack's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// `user@host` and the process id.
    pub who: String,
    pub command: String,
    /// Seconds since the Unix epoch, by the holder's clock: shown, never compared.
    pub since: u64,
}

impl Holder {
    /// This process, running `command`.
    pub fn this_process(command: &str) -> Holder {
        let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "someone".into());
        let host =
            std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "a host".into());
        Holder { who: format!("{user}@{host} (pid {})", std::process::id()), command: command.to_owned(), since: now() }
    }

    pub fn describe(&self) -> String {
        let age = Duration::from_secs(now().saturating_sub(self.since));
        format!("{} running `{}` since {} ago", self.who, self.command, human(age))
    }
}

/// What a stack's lock parameter holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lock {
    Free,
    /// Held by `holder`, last written `written` ago (by AWS's record of it).
    Held {
        holder: Holder,
        written: Duration,
    },
    /// A parameter that does not read as a holder: taken over once stale, like any.
    Unreadable {
        written: Duration,
    },
}

impl Lock {
    /// Who holds it, for a person; `None` when it is free.
    pub fn describe(&self) -> Option<String> {
        match self {
            Lock::Free => None,
            Lock::Held { holder, written } => {
                Some(format!("{} (last written {} ago)", holder.describe(), human(*written)))
            }
            Lock::Unreadable { written } => Some(format!("an unreadable lock (last written {} ago)", human(*written))),
        }
    }

    /// How long ago it was last written; zero when free.
    fn written(&self) -> Duration {
        match self {
            Lock::Free => Duration::ZERO,
            Lock::Held { written, .. } | Lock::Unreadable { written } => *written,
        }
    }
}

/// How long a lock may go unwritten before it is taken over.
pub fn stale_after(refresh: Duration) -> Duration {
    refresh * STALE_AFTER_REFRESHES
}

/// The state of `stack`'s lock.
pub async fn read(ctx: &AwsContext, stack: &str) -> Result<Lock> {
    Ok(declared(ACTIONS, read_versioned(ctx, &parameter_name(stack))).await?.map_or(Lock::Free, |(lock, _, _)| lock))
}

/// The lock parameter `name`, its value and its version, when it exists.
async fn read_versioned(ctx: &AwsContext, name: &str) -> Result<Option<(Lock, String, i64)>> {
    let answer = match ctx.ssm.get_parameter().name(name).send().await.aws("GetParameter") {
        Ok(answer) => answer,
        Err(err) if err.is_not_found() => return Ok(None),
        Err(err) => return Err(err),
    };
    let parameter = required(answer.parameter(), "GetParameter", "Parameter")?;
    let value = required(parameter.value(), "GetParameter", "Parameter.Value")?.to_owned();
    let written = parameter
        .last_modified_date()
        .and_then(|date| SystemTime::try_from(*date).ok())
        // A date ahead of this machine's clock is a skew of the clocks: just written.
        .map_or(Duration::ZERO, |date| SystemTime::now().duration_since(date).unwrap_or_default());
    let lock = match serde_json::from_str(&value) {
        Ok(holder) => Lock::Held { holder, written },
        Err(_) => Lock::Unreadable { written },
    };
    Ok(Some((lock, value, parameter.version())))
}

/// A lock this process holds; [`StackLock::release`] gives it back.
#[derive(Debug)]
pub struct StackLock {
    stack: String,
    name: String,
    value: String,
    /// The parameter's version this process last wrote.
    version: i64,
}

/// The calls the lock makes, as IAM names them: on the one parameter [`parameter_name`].
pub const ACTIONS: &[&str] = &["ssm:GetParameter", "ssm:PutParameter", "ssm:DeleteParameter"];

/// The parameter that holds a stack's lock.
pub fn parameter_name(stack: &str) -> String {
    format!("/three-tier/{stack}/lock")
}

impl StackLock {
    /// Takes the stack's lock for `holder`. Refused, naming the holder, while another run
    /// holds it; a lock not written for [`STALE_AFTER_REFRESHES`] refresh periods, or any
    /// with `force`, is taken over with a message saying whose it was.
    pub async fn acquire(ctx: &AwsContext, stack: &str, holder: &Holder, force: bool) -> Result<StackLock> {
        declared(ACTIONS, StackLock::take(ctx, stack, holder, force)).await
    }

    async fn take(ctx: &AwsContext, stack: &str, holder: &Holder, force: bool) -> Result<StackLock> {
        let name = parameter_name(stack);
        let value = serde_json::to_string(holder).expect("a holder serialises");
        let stale = stale_after(ctx.waits.lock_refresh);
        // A lock released between our create and our read is free: created again, never
        // overwritten (an overwrite would take a lock another run took meanwhile).
        for _ in 0..3 {
            let created = ctx
                .ssm
                .put_parameter()
                .name(&name)
                .value(&value)
                .r#type(ParameterType::String)
                .description("three-tier: the run that is changing this stack")
                .overwrite(false)
                .tags(Tag::builder().key(STACK_TAG).value(stack).build().expect("key and value are set"))
                .send()
                .await
                .aws("PutParameter");
            match created {
                Ok(answer) => return Ok(StackLock { stack: stack.to_owned(), name, value, version: answer.version() }),
                Err(err) if err.is(Answer::AlreadyExists) => {}
                Err(err) => return Err(err),
            }
            let current = match read(ctx, stack).await? {
                Lock::Free => continue,
                current if !force && current.written() < stale => {
                    let holder = current.describe().unwrap_or_default();
                    return Err(Error::Locked { stack: stack.to_owned(), holder });
                }
                current => current,
            };
            let why = if force {
                "--force-unlock".to_owned()
            } else {
                format!("it has not been written for {}: its run died", human(current.written()))
            };
            let previous = current.describe().unwrap_or_default();
            ctx.progress.line(format!("taking over the lock of stack {stack} from {previous} ({why})"));
            let mut lock = StackLock { stack: stack.to_owned(), name, value, version: 0 };
            lock.write(ctx).await?;
            return Ok(lock);
        }
        Err(Error::Locked {
            stack: stack.to_owned(),
            holder: "other runs, taking and giving it back as we read it".into(),
        })
    }

    /// Writes the lock again, so AWS's record of it shows this run alive.
    async fn write(&mut self, ctx: &AwsContext) -> Result<()> {
        let answer = ctx
            .ssm
            .put_parameter()
            .name(&self.name)
            .value(&self.value)
            .r#type(ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .aws("PutParameter")?;
        self.version = answer.version();
        Ok(())
    }

    /// Writes the lock again while this process holds it; `Ok(Some(holder))` when another
    /// run has taken it over (a refresh that failed for a long while, then a takeover).
    pub async fn refresh(&mut self, ctx: &AwsContext) -> Result<Option<String>> {
        match read_versioned(ctx, &self.name).await? {
            Some((_, value, _)) if value == self.value => {
                self.write(ctx).await?;
                Ok(None)
            }
            Some((lock, _, _)) => Ok(Some(lock.describe().unwrap_or_default())),
            None => Ok(Some("nobody: it was deleted".into())),
        }
    }

    /// Runs `run` while writing the lock every refresh period. When another run has taken
    /// the lock over, this one stops starting steps (as at Ctrl-C) and fails saying so.
    pub async fn hold<T>(&mut self, ctx: &AwsContext, run: impl Future<Output = Result<T>>) -> Result<T> {
        let mut run = std::pin::pin!(run);
        let mut lost = None;
        let period = ctx.waits.lock_refresh;
        let mut next = tokio::time::Instant::now() + period;
        loop {
            tokio::select! {
                outcome = &mut run => {
                    return match lost {
                        Some(holder) => Err(Error::LockTakenOver { stack: self.stack.clone(), holder }),
                        None => outcome,
                    };
                }
                () = tokio::time::sleep_until(next), if lost.is_none() => {
                    next = tokio::time::Instant::now() + period;
                    match declared(ACTIONS, self.refresh(ctx)).await {
                        Ok(None) => {}
                        Ok(Some(holder)) => {
                            ctx.progress.line(format!(
                                "the lock of stack {} was taken over by {holder}: stopping after the steps under way",
                                self.stack
                            ));
                            ctx.interrupt.raise();
                            lost = Some(holder);
                        }
                        // Tried again next period: a lock goes stale only after several.
                        Err(err) => ctx.progress.line(format!("could not write the lock of stack {}: {err}", self.stack)),
                    }
                }
            }
        }
    }

    /// Gives the lock back, unless another run took it over meanwhile: the parameter is
    /// deleted only while it holds the version this run last wrote.
    pub async fn release(self, ctx: &AwsContext) -> Result<()> {
        declared(ACTIONS, self.give_back(ctx)).await
    }

    async fn give_back(self, ctx: &AwsContext) -> Result<()> {
        match read_versioned(ctx, &self.name).await? {
            Some((_, value, version)) if value == self.value && version == self.version => {}
            _ => return Ok(()),
        }
        match ctx.ssm.delete_parameter().name(&self.name).send().await.aws("DeleteParameter") {
            Err(err) if !err.is_not_found() => Err(err),
            _ => Ok(()),
        }
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}
