//! The stack's lock, kept in AWS since the tool keeps no local state: an SSM parameter per
//! stack, created only if it does not exist, naming who holds it, where, for which command
//! and since when. `deploy` and `teardown` take it before their first change; reads do not.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_ssm::types::{ParameterType, Tag};
use serde::{Deserialize, Serialize};

use crate::aws::AwsContext;
use crate::error::{Answer, AwsResultExt, Error, Result, required};
use crate::naming::STACK_TAG;
use crate::progress::human;

/// A lock older than this is taken to belong to a run that died, and is taken over: the
/// longest deploy (RDS's minutes, a slow NAT gateway) ends well within it.
pub const STALE_AFTER: Duration = Duration::from_secs(60 * 60);

/// Who holds a stack's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// `user@host` and the process id.
    pub who: String,
    pub command: String,
    /// Seconds since the Unix epoch.
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

    /// How long it has been held.
    pub fn age(&self) -> Duration {
        Duration::from_secs(now().saturating_sub(self.since))
    }

    pub fn describe(&self) -> String {
        format!("{} running `{}`, {} ago", self.who, self.command, human(self.age()))
    }
}

/// What a stack's lock parameter holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lock {
    Free,
    Held(Holder),
    /// A parameter that does not read as a holder: taken over as if stale.
    Unreadable,
}

impl Lock {
    /// Who holds it, for a person; `None` when it is free.
    pub fn describe(&self) -> Option<String> {
        match self {
            Lock::Free => None,
            Lock::Held(holder) => Some(holder.describe()),
            Lock::Unreadable => Some("an unreadable lock".into()),
        }
    }
}

/// The state of `stack`'s lock.
pub async fn read(ctx: &AwsContext, stack: &str) -> Result<Lock> {
    match ctx.ssm.get_parameter().name(parameter_name(stack)).send().await.aws("GetParameter") {
        Ok(answer) => {
            let value = required(answer.parameter().and_then(|p| p.value()), "GetParameter", "Parameter.Value")?;
            Ok(serde_json::from_str(value).map_or(Lock::Unreadable, Lock::Held))
        }
        Err(err) if err.is_not_found() => Ok(Lock::Free),
        Err(err) => Err(err),
    }
}

/// A lock this process holds; [`StackLock::release`] gives it back.
#[derive(Debug)]
pub struct StackLock {
    name: String,
    value: String,
}

/// The parameter that holds a stack's lock.
pub fn parameter_name(stack: &str) -> String {
    format!("/three-tier/{stack}/lock")
}

impl StackLock {
    /// Takes the stack's lock for `holder`. Refused, naming the holder, while another run
    /// holds it; a lock older than [`STALE_AFTER`], or any with `force`, is taken over
    /// with a message saying whose it was.
    pub async fn acquire(ctx: &AwsContext, stack: &str, holder: &Holder, force: bool) -> Result<StackLock> {
        let name = parameter_name(stack);
        let value = serde_json::to_string(holder).expect("a holder serialises");
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
                Ok(_) => return Ok(StackLock { name, value }),
                Err(err) if err.is(Answer::AlreadyExists) => {}
                Err(err) => return Err(err),
            }
            let previous = match read(ctx, stack).await? {
                Lock::Free => continue,
                Lock::Held(held) if !force && held.age() < STALE_AFTER => {
                    return Err(Error::Locked { stack: stack.to_owned(), holder: held.describe() });
                }
                current => current.describe().unwrap_or_default(),
            };
            let why = if force { "--force-unlock" } else { "it is older than an hour" };
            ctx.progress.line(format!("taking over the lock of stack {stack} from {previous} ({why})"));
            ctx.ssm.put_parameter().name(&name).value(&value).overwrite(true).send().await.aws("PutParameter")?;
            return Ok(StackLock { name, value });
        }
        Err(Error::Locked {
            stack: stack.to_owned(),
            holder: "other runs, taking and giving it back as we read it".into(),
        })
    }

    /// Gives the lock back, unless another run took it over meanwhile.
    pub async fn release(self, ctx: &AwsContext) -> Result<()> {
        let answer = match ctx.ssm.get_parameter().name(&self.name).send().await.aws("GetParameter") {
            Ok(answer) => answer,
            Err(err) if err.is_not_found() => return Ok(()),
            Err(err) => return Err(err),
        };
        if answer.parameter().and_then(|p| p.value()) != Some(self.value.as_str()) {
            return Ok(());
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
