//! `cargo xtask verify`.

use stack::{Outcome, VerifyLimits};
use three_tier_core::Target;

use crate::session::Session;

pub fn verify(session: &Session) -> anyhow::Result<()> {
    let ctx = session.connect();
    let on_emulator = matches!(session.target, Target::Emulator { .. });
    ctx.progress.line(format!("verifying {}", session.describe_target()));
    let checks =
        session.runtime.block_on(stack::verify(&ctx, &session.config, !on_emulator, VerifyLimits::default()))?;
    for check in &checks {
        let mark = match check.outcome {
            Outcome::Passed => "✓ passed",
            Outcome::Failed => "✗ FAILED",
            Outcome::NeedsRealAws => "? needs real AWS",
        };
        println!("{mark:<17} {}: {}", check.name, check.detail);
    }
    let failed = checks.iter().filter(|c| c.outcome == Outcome::Failed).count();
    if failed > 0 {
        anyhow::bail!(
            "{failed} check(s) failed: each line above says where to look; `cargo xtask status` shows whether the stack matches the config"
        );
    }
    if on_emulator {
        println!("the emulator shows the control plane only: run `cargo xtask verify` against AWS for the full checks");
    }
    Ok(())
}
