//! `cargo xtask teardown`: shows what will be deleted, asks, deletes.

use std::io::{BufRead, IsTerminal, Write};

use three_tier_core::Tier;

use crate::deploy::{show, summarize};
use crate::session::Session;

pub fn teardown(session: &Session, yes: bool) -> anyhow::Result<()> {
    let ctx = session.connect();
    let config = &session.config;
    session.runtime.block_on(async {
        // Later tiers stand on earlier ones: tear down in reverse order.
        for tier in session.tiers.iter().rev() {
            match tier {
                Tier::Network => {
                    let plan = network::plan_teardown(&ctx, config).await?;
                    show(&ctx, &plan);
                    if plan.steps.is_empty() {
                        continue;
                    }
                    if !yes && !confirm(session)? {
                        anyhow::bail!("teardown cancelled; nothing was deleted");
                    }
                    network::apply(&ctx, &plan).await?;
                }
                other => anyhow::bail!("the {other} tier is not built yet"),
            }
        }
        anyhow::Ok(())
    })?;
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
