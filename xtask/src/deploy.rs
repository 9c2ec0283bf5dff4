//! `cargo xtask deploy` and `cargo xtask plan`.

use three_tier_core::lock::Holder;

use crate::session::Session;

pub fn deploy(session: &Session) -> anyhow::Result<()> {
    let ctx = session.connect();
    ctx.progress.line(format!("deploying {}", session.describe_target()));
    let holder = Holder::this_process("cargo xtask deploy");
    session.stop_on_ctrl_c();
    let deploy = stack::deploy_locked(&ctx, &session.config, &session.tiers, &holder, session.force_unlock);
    let deployed = session.runtime.block_on(deploy)?;
    let outputs = &deployed.outputs;
    if let Some(network) = &outputs.network {
        let nats: Vec<&str> = network.nat_gateways.iter().map(|nat| nat.id.as_str()).collect();
        let noun = if nats.len() == 1 { "NAT gateway" } else { "NAT gateways" };
        ctx.progress.line(format!("network: VPC {}, {noun} {}", network.vpc_id, nats.join(", ")));
    }
    if let Some(alb) = &outputs.alb {
        ctx.progress.line(format!("alb: {}", alb.url()));
        if let Some(local) = session.local_url(alb) {
            ctx.progress.line(format!(
                "  on this machine: {local} (the emulator's data plane serves the stack: open it in a browser)"
            ));
        }
    }
    if let Some(compute) = &outputs.compute {
        for instance in compute.instances.values() {
            ctx.progress.line(format!("compute: instance {} ({})", instance.id, instance.private_ip));
        }
    }
    if let Some(database) = &outputs.database {
        ctx.progress.line(format!("database: {}:{}", database.endpoint_address, database.port));
    }
    cost_line(session, &ctx, deployed.observed);
    summarize(session, &ctx);
    Ok(())
}

/// "this stack costs about $X a month while it runs", for what runs of it now: read off
/// what the deploy observed (a deploy of some tiers reads the others now). The deploy is
/// done whatever this read says: a failed read is a note, not an error.
fn cost_line(session: &Session, ctx: &three_tier_core::AwsContext, observed: stack::Observations) {
    let config = &session.config;
    let observed = match session.runtime.block_on(observed.completed(ctx, config)) {
        Ok(observed) => observed,
        Err(err) => {
            ctx.progress.line(format!("(what it costs is not shown: {}; `cargo xtask cost` tries again)", err.brief()));
            return;
        }
    };
    let standing = observed.standing(config);
    let which = if standing.len() == stack::TIERS.len() {
        String::new()
    } else {
        let names: Vec<&str> = standing.iter().map(|t| t.as_str()).collect();
        format!(" ({} so far)", names.join(", "))
    };
    let cost = stack::cost::estimate(&config.stack.region, &stack::cost::Running::observed(&observed));
    println!(
        "this stack{which} costs {} a month while it runs; `cargo xtask teardown` stops it (`cargo xtask cost` itemizes)",
        cost.amount()
    );
}

/// Shows what deploy (or teardown) would do; returns whether it would change anything.
/// Without AWS credentials, a deploy plan is that of an account without the stack.
pub fn plan(session: &Session, teardown: bool, json: bool) -> anyhow::Result<bool> {
    let ctx = session.connect();
    let config = &session.config;
    let (plan, assumption) = session.runtime.block_on(async {
        let planned = if teardown {
            stack::plan_teardown(&ctx, config, &session.tiers, false).await
        } else {
            stack::plan_deploy(&ctx, config, &session.tiers).await
        };
        match planned {
            Err(err) if !teardown && err.is_missing_credentials() => {
                let assumption = "no AWS credentials were found: this is the plan for an account without the stack \
                                  (set AWS_PROFILE or run `aws sso login` to plan against yours)";
                anyhow::Ok((stack::plan_for_new_account(config, &session.tiers)?, Some(assumption)))
            }
            other => anyhow::Ok((other?, None)),
        }
    })?;
    let changes = !plan.graph.is_empty();
    // What the stack of the named tiers costs once deployed, as infracost shows beside a plan.
    let cost = (!teardown && changes)
        .then(|| stack::cost::estimate(&config.stack.region, &stack::cost::Running::planned(config, &session.tiers)));
    if json {
        let prediction = plan.predict(&three_tier_core::Durations::aws());
        let document = serde_json::json!({
            "target": session.describe_target(),
            "assumption": assumption,
            "changes": changes,
            "plan": plan,
            "prediction": prediction,
            "monthly_cost": cost,
        });
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        if let Some(assumption) = assumption {
            ctx.progress.line(assumption);
        }
        ctx.progress.line(plan.render().trim_end());
        if let Some(cost) = cost {
            ctx.progress
                .line(format!("cost: {} a month while it runs (`cargo xtask cost --plan` itemizes)", cost.amount()));
        }
    }
    // A conflict (a name held by another, a quota reached) is what deploy would refuse on:
    // shown above with the rest, then an error, as Terraform's plan fails on one.
    plan.check_conflicts()?;
    Ok(changes)
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
