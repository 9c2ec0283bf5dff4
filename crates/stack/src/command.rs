//! Shell scripts on the stack's instance through SSM Run Command, without SSH: how
//! `verify` checks the database and `logs` reads the instance's logs.

use std::time::{Duration, Instant};

use three_tier_core::calls::declared;
use three_tier_core::error::{Answer, required};
use three_tier_core::wait::{Outcome, until};
use three_tier_core::{AwsContext, AwsResultExt, Result};

/// The first things to read when `verify` fails on AWS: the tail of the user data's
/// output (cloud-init) and of the nginx container's logs.
pub fn logs_script() -> String {
    let app = compute::user_data::APP_DIR;
    format!(
        "echo '== /var/log/cloud-init-output.log (the user data), last 80 lines'\n\
         tail -n 80 /var/log/cloud-init-output.log\n\
         echo '== docker compose ps'\n\
         cd {app} && docker compose ps\n\
         echo '== docker compose logs, last 80 lines'\n\
         docker compose logs --no-color --tail 80\n"
    )
}

/// Runs [`logs_script`] on the instance.
pub async fn instance_logs(ctx: &AwsContext, instance: &str, limit: Duration) -> Result<Result<Ran, String>> {
    let comment = "three-tier logs: cloud-init output and docker compose logs";
    run_script(ctx, instance, comment, logs_script(), limit).await
}

/// A command that finished on the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    pub command_id: String,
    /// SSM's final status: `Success`, `Failed`, `TimedOut`, ...
    pub status: String,
    pub output: String,
    pub errors: String,
}

/// Whether a command invocation's status is its last: `Cancelling` is on its way to
/// `Cancelled`, and `Delayed` waits for the agent (GetCommandInvocation's statuses).
fn is_final(status: &str) -> bool {
    !matches!(status, "Pending" | "InProgress" | "Delayed" | "Cancelling")
}

/// Runs `script` on `instance` and waits, within `limit`, for its SSM agent to register
/// (about a minute after boot) and then for the command to finish. `Ok(Err(id))` when it
/// did not finish in time.
pub async fn run_script(
    ctx: &AwsContext,
    instance: &str,
    comment: &str,
    script: String,
    limit: Duration,
) -> Result<Result<Ran, String>> {
    declared(ACTIONS, run_and_wait(ctx, instance, comment, script, limit)).await
}

/// The calls a command on the instance makes, as IAM names them.
pub const ACTIONS: &[&str] = &["ssm:SendCommand", "ssm:GetCommandInvocation"];

async fn run_and_wait(
    ctx: &AwsContext,
    instance: &str,
    comment: &str,
    script: String,
    limit: Duration,
) -> Result<Result<Ran, String>> {
    let send = || async {
        let sent = ctx
            .ssm
            .send_command()
            .document_name("AWS-RunShellScript")
            .instance_ids(instance)
            .comment(comment)
            .parameters("commands", vec![script.clone()])
            .send()
            .await
            .aws("SendCommand");
        Outcome::unless_refused(sent, |err| err.is(Answer::AgentNotReady))
    };
    let what = format!("the SSM agent on {instance} to register");
    let fix = format!(
        "the instance's SSM agent is not online: `aws ssm describe-instance-information --filters Key=InstanceIds,Values={instance}` \
         shows it; it needs the role's AmazonSSMManagedInstanceCore and a way out through the NAT gateway"
    );
    let answer = until(ctx, &what, limit, &fix, send).await?;
    let command_id =
        required(answer.command().and_then(|c| c.command_id()), "SendCommand", "Command.CommandId")?.to_owned();
    let started = Instant::now();
    let waiting = ctx.progress.waiting(format!("SSM command {command_id} on {instance}"), limit);
    loop {
        let invocation = ctx
            .ssm
            .get_command_invocation()
            .command_id(&command_id)
            .instance_id(instance)
            .send()
            .await
            .aws("GetCommandInvocation");
        let invocation = match invocation {
            // Just after SendCommand the invocation may not exist yet.
            Err(err) if err.is(Answer::NoInvocationYet) => None,
            other => Some(other?),
        };
        if let Some(invocation) = invocation {
            let status = required(invocation.status(), "GetCommandInvocation", "Status")?.as_str().to_owned();
            if is_final(&status) {
                waiting.done(&status);
                return Ok(Ok(Ran {
                    command_id,
                    status,
                    output: invocation.standard_output_content().unwrap_or_default().to_owned(),
                    errors: invocation.standard_error_content().unwrap_or_default().to_owned(),
                }));
            }
        }
        if started.elapsed() > limit {
            waiting.done("gave up");
            return Ok(Err(command_id));
        }
        tokio::time::sleep(ctx.waits.poll_interval.max(Duration::from_secs(1))).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_command_being_cancelled_is_waited_for_until_it_is_cancelled() {
        for status in ["Pending", "InProgress", "Delayed", "Cancelling"] {
            assert!(!super::is_final(status), "{status}");
        }
        for status in ["Success", "Cancelled", "TimedOut", "Failed"] {
            assert!(super::is_final(status), "{status}");
        }
    }
}
