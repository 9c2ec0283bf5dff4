//! `cargo xtask shell` and `cargo xtask logs`: into the instance without SSH, through
//! Session Manager and Run Command.

use std::path::Path;
use std::time::Duration;

use three_tier_core::{Error, Target, Tier};
use xshell::{Shell, cmd};

use crate::session::Session;

/// How to install what `aws ssm start-session` needs, for a person who lacks it.
const INSTALL: &str = "install the AWS CLI v2 (https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html) \
                       and the Session Manager plugin \
                       (https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html)";

pub fn shell(sh: &Shell, session: &Session, chosen: Option<&str>) -> anyhow::Result<()> {
    let instance = instance_id(session, chosen)?;
    let region = session.config.stack.region.clone();
    let missing: Vec<&str> = ["aws", "session-manager-plugin"].into_iter().filter(|tool| !on_path(tool)).collect();
    if let Target::Emulator { .. } = session.target {
        println!("the emulator runs no instance to open a session on: on AWS this runs");
        println!("  aws ssm start-session --target {instance} --region {region}");
        return Ok(());
    }
    if !missing.is_empty() {
        println!("{} not found: {INSTALL}; then run", missing.join(" and "));
        println!("  aws ssm start-session --target {instance} --region {region}");
        anyhow::bail!("cannot open a session without {}", missing.join(" and "));
    }
    cmd!(sh, "aws ssm start-session --target {instance} --region {region}").run()?;
    Ok(())
}

pub fn logs(session: &Session, chosen: Option<&str>) -> anyhow::Result<()> {
    let instance = instance_id(session, chosen)?;
    // The emulator's data plane runs the script in the sandbox that stands for the instance.
    if let stack::Traffic::None { why } = session.traffic() {
        println!(
            "{why}: it runs no instance and keeps no logs: `cargo xtask logs` needs real AWS or the emulator's data plane"
        );
        return Ok(());
    }
    let ctx = session.connect();
    let limit = Duration::from_secs(5 * 60);
    let ran = session.runtime.block_on(stack::instance_logs(&ctx, &instance, limit))?;
    match ran {
        Ok(ran) => {
            print!("{}", ran.output);
            if !ran.errors.is_empty() {
                eprint!("{}", ran.errors);
            }
            Ok(())
        }
        Err(command_id) => anyhow::bail!(
            "command {command_id} did not finish within {}s: is the instance's SSM agent online? \
             (`aws ssm describe-instance-information`)",
            limit.as_secs()
        ),
    }
}

/// The stack's instance `chosen` (by key or id), or its first; the tier must be deployed.
fn instance_id(session: &Session, chosen: Option<&str>) -> anyhow::Result<String> {
    let ctx = session.connect();
    let outputs = session.runtime.block_on(stack::outputs(&ctx, &session.config))?;
    let compute = outputs
        .compute
        .ok_or_else(|| Error::NotDeployed { tier: Tier::Compute, stack: session.config.stack.name.clone() })?;
    let Some(chosen) = chosen else { return Ok(compute.first().id.clone()) };
    let found = compute.instances.iter().find(|(key, instance)| *key == chosen || instance.id == chosen);
    match found {
        Some((_, instance)) => Ok(instance.id.clone()),
        None => {
            let have: Vec<String> = compute.instances.iter().map(|(key, i)| format!("{key} ({})", i.id)).collect();
            anyhow::bail!(
                "--instance {chosen}: stack {} has no instance of that key or id\n  fix: name one of {}",
                session.config.stack.name,
                have.join(", ")
            )
        }
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| Path::new(&dir).join(tool).is_file()))
}
