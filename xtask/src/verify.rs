//! `cargo xtask verify`.

use stack::{Outcome, Traffic};

use crate::session::Session;

pub fn verify(session: &Session) -> anyhow::Result<()> {
    let ctx = session.connect();
    let traffic = session.traffic();
    ctx.progress.line(format!("verifying {}", session.describe_target()));
    let checks = session.runtime.block_on(stack::verify(&ctx, &session.config, &traffic, session.verify_limits()))?;
    for check in &checks {
        let mark = match check.outcome {
            Outcome::Passed => "✓ passed",
            Outcome::Failed => "✗ FAILED",
            Outcome::NeedsRealAws => "? needs real AWS",
            Outcome::Skipped => "- skipped",
        };
        println!("{mark:<17} {}: {}", check.name, check.detail);
        if let Some(path) = &check.path {
            // The hops under their check, like a traceroute.
            for line in path.render().lines().skip(1) {
                println!("{:<17} {line}", "");
            }
        }
    }
    let failed = checks.iter().filter(|c| c.outcome == Outcome::Failed).count();
    if failed > 0 {
        anyhow::bail!(
            "{failed} check(s) failed: each line above says where to look; `cargo xtask status` shows whether the stack matches the config"
        );
    }
    match &traffic {
        Traffic::None { .. } => {
            println!(
                "the emulator shows the control plane only: run `cargo xtask verify` against AWS for the full checks"
            )
        }
        Traffic::Emulator { .. } => println!(
            "the emulator's data plane served this traffic: real nginx and MariaDB servers on this machine, reached only where the stack's security groups, network ACLs and routes let it through"
        ),
        Traffic::Aws => {}
    }
    Ok(())
}
