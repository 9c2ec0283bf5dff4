//! `cargo xtask deploy` and `cargo xtask plan`.

use three_tier_core::{Plan, Step, Tier};

use crate::session::Session;

pub fn deploy(session: &Session) -> anyhow::Result<()> {
    let ctx = session.connect();
    let config = &session.config;
    ctx.progress.line(format!("deploying {}", session.describe_target()));
    session.runtime.block_on(async {
        for tier in &session.tiers {
            match tier {
                Tier::Network => {
                    let outputs = network::deploy(&ctx, config).await?;
                    ctx.progress.line(format!("network: VPC {}, NAT gateway {}", outputs.vpc_id, outputs.nat_gateway_id));
                }
                other => anyhow::bail!("the {other} tier is not built yet"),
            }
        }
        anyhow::Ok(())
    })?;
    summarize(session, &ctx);
    Ok(())
}

pub fn plan(session: &Session, teardown: bool) -> anyhow::Result<()> {
    let ctx = session.connect();
    let config = &session.config;
    session.runtime.block_on(async {
        for tier in &session.tiers {
            match tier {
                Tier::Network if teardown => show(&ctx, &network::plan_teardown(&ctx, config).await?),
                Tier::Network => show(&ctx, &network::plan_deploy(&ctx, config).await?.1),
                other => anyhow::bail!("the {other} tier is not built yet"),
            }
        }
        anyhow::Ok(())
    })
}

pub fn show<S: Step>(ctx: &three_tier_core::AwsContext, plan: &Plan<S>) {
    ctx.progress.line(plan.render().trim_end());
}

pub fn summarize(session: &Session, ctx: &three_tier_core::AwsContext) {
    let calls = ctx.calls.calls();
    let mutating = calls.iter().filter(|c| c.is_mutating()).count();
    ctx.progress.line(format!(
        "done in {}: {} API calls, {mutating} of them changes",
        three_tier_core::progress::human(session.started.elapsed()),
        calls.len()
    ));
}
