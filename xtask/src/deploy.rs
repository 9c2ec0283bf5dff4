//! `cargo xtask deploy` and `cargo xtask plan`.

use crate::session::Session;

pub fn deploy(session: &Session) -> anyhow::Result<()> {
    let ctx = session.connect();
    ctx.progress.line(format!("deploying {}", session.describe_target()));
    let outputs = session.runtime.block_on(stack::deploy(&ctx, &session.config, &session.tiers))?;
    if let Some(network) = &outputs.network {
        ctx.progress.line(format!("network: VPC {}, NAT gateway {}", network.vpc_id, network.nat_gateway_id));
    }
    if let Some(alb) = &outputs.alb {
        ctx.progress.line(format!("alb: http://{}/", alb.dns_name));
    }
    if let Some(compute) = &outputs.compute {
        ctx.progress.line(format!("compute: instance {} ({})", compute.instance_id, compute.private_ip));
    }
    if let Some(database) = &outputs.database {
        ctx.progress.line(format!("database: {}:{}", database.endpoint_address, database.port));
    }
    summarize(session, &ctx);
    Ok(())
}

pub fn plan(session: &Session, teardown: bool) -> anyhow::Result<()> {
    let ctx = session.connect();
    let config = &session.config;
    let rendered: String = session.runtime.block_on(async {
        if teardown {
            anyhow::Ok(stack::plan_teardown(&ctx, config, &session.tiers, false).await?.render())
        } else {
            anyhow::Ok(stack::plan_deploy(&ctx, config, &session.tiers).await?.render())
        }
    })?;
    ctx.progress.line(rendered.trim_end());
    Ok(())
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
