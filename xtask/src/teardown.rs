//! `cargo xtask teardown`: shows what will be deleted, asks once, deletes.

use std::io::{BufRead, IsTerminal, Write};

use three_tier_core::lock::Holder;

use crate::deploy::summarize;
use crate::session::Session;

pub fn teardown(session: &Session, yes: bool, cascade: bool) -> anyhow::Result<()> {
    let ctx = session.connect();
    let plan = session.runtime.block_on(stack::plan_teardown(&ctx, &session.config, &session.tiers, cascade))?;
    plan.check_conflicts()?;
    if plan.deletes_nothing() {
        ctx.progress.line(format!("nothing to delete in {}", session.describe_target()));
        return Ok(());
    }
    ctx.progress.line(plan.render().trim_end());
    if !yes && !confirm(session)? {
        anyhow::bail!("teardown cancelled; nothing was deleted");
    }
    // Planned again under the stack's lock: what is deleted is what stands then.
    let holder = Holder::this_process("cargo xtask teardown");
    session.stop_on_ctrl_c();
    let config = &session.config;
    let teardown = stack::teardown_locked(&ctx, config, &session.tiers, cascade, &holder, session.force_unlock);
    session.runtime.block_on(teardown)?;
    summarize(session, &ctx);
    Ok(())
}

fn confirm(session: &Session) -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!("teardown deletes resources and needs confirmation: run it in a terminal, or pass --yes");
    }
    eprint!("Delete these resources of {}? Only 'yes' is accepted: ", session.describe_target());
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}
