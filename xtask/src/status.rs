//! `cargo xtask outputs`, `status`, `stacks` and `cost`.

use stack::TierStatus;
use stack::cost::Running;
use three_tier_core::AwsContext;

use crate::session::Session;

pub fn outputs(session: &Session, json: bool) -> anyhow::Result<()> {
    let ctx = session.connect();
    let outputs = session.runtime.block_on(stack::outputs(&ctx, &session.config))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&outputs)?);
        return Ok(());
    }
    let mut rows: Vec<(&str, String)> = Vec::new();
    if let Some(network) = &outputs.network {
        rows.push(("vpc", network.vpc_id.clone()));
        match network.nat_gateways.as_slice() {
            [only] => rows.push(("nat gateway", only.id.clone())),
            per_zone => rows.extend(per_zone.iter().map(|nat| ("nat gateway", format!("{} ({})", nat.id, nat.zone)))),
        }
    }
    if let Some(alb) = &outputs.alb {
        rows.push(("url", alb.url()));
        if let Some(local) = session.local_url(alb) {
            rows.push(("on this machine", local));
        }
        rows.push(("load balancer", alb.load_balancer_arn.clone()));
        rows.push(("target group", alb.app_target_group_arn.clone()));
    }
    if let Some(compute) = &outputs.compute {
        for instance in compute.instances.values() {
            rows.push(("instance", format!("{} ({})", instance.id, instance.private_ip)));
        }
        rows.push(("shell", format!("aws ssm start-session --target {}", compute.first().id)));
    }
    if let Some(database) = &outputs.database {
        rows.push(("database", format!("{}:{}", database.endpoint_address, database.port)));
        if let Some(standby) = &database.multi_az {
            let zone = standby.zone.as_deref().unwrap_or("its zone not named by RDS yet");
            let primary = database.zone.as_deref().unwrap_or("?");
            rows.push(("Multi-AZ", format!("primary in {primary}, standby in {zone}")));
        }
        rows.push(("database secret", database.master_secret_arn.clone()));
    }
    if rows.is_empty() {
        println!("nothing is deployed in {}", session.describe_target());
    }
    for (key, value) in rows {
        println!("{key:<16} {value}");
    }
    Ok(())
}

/// Every stack of the tool in the config's region, or in every enabled region, with its
/// tiers, age, monthly cost and lock.
pub fn stacks(session: &Session, all_regions: bool) -> anyhow::Result<()> {
    let home = session.connect();
    let regions = if all_regions {
        session.runtime.block_on(stack::enabled_regions(&home))?
    } else {
        vec![session.config.stack.region.clone()]
    };
    let contexts: Vec<AwsContext> = regions.iter().map(|region| session.connect_in(region)).collect();
    let found = session.runtime.block_on(stack::stacks_in_regions(contexts));
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let mut rows = Vec::new();
    let mut unread = Vec::new();
    for (region, read) in found {
        match read {
            Ok(stacks) => rows.extend(stacks.into_iter().map(|summary| (region.clone(), summary))),
            Err(err) => unread.push(format!("{region}: {}", err.brief())),
        }
    }
    let place = if all_regions { format!("the {} enabled regions", regions.len()) } else { regions.join(", ") };
    if rows.is_empty() {
        println!("no stack of three-tier in {place}");
    } else {
        println!("{:<16} {:<20} {:<32} {:<8} {:>16}  lock", "region", "stack", "tiers", "age", "a month");
    }
    let mut total = 0.0;
    let mut complete = true;
    for (region, summary) in &rows {
        let tiers: Vec<&str> = summary.tiers.iter().map(|t| t.as_str()).collect();
        let age = summary.since.map_or("-".to_owned(), |since| {
            let seconds = now.saturating_sub(u64::try_from(since).unwrap_or_default());
            if seconds >= 86_400 {
                format!("{}d{:02}h", seconds / 86_400, seconds % 86_400 / 3600)
            } else {
                three_tier_core::progress::human(std::time::Duration::from_secs(seconds))
            }
        });
        total += summary.cost.monthly;
        complete &= summary.cost.is_complete();
        let lock = summary.locked_by.clone().unwrap_or_else(|| "-".into());
        let cost = summary.cost.amount().replace("about ", "");
        println!("{region:<16} {:<20} {:<32} {age:<8} {cost:>16}  {lock}", summary.name, tiers.join(", "));
    }
    if rows.len() > 1 {
        let words = if complete { "about" } else { "at least" };
        println!("together {words} ${total:.2} a month while they run; `cargo xtask cost --stack NAME` itemizes one");
    }
    for line in &unread {
        eprintln!("not read: {line}");
    }
    if !unread.is_empty() && rows.is_empty() {
        anyhow::bail!("no region could be read: the lines above say why");
    }
    Ok(())
}

/// What the config's stack costs a month: what runs now, or with `plan` what the config's
/// tiers would run.
pub fn cost(session: &Session, plan: bool) -> anyhow::Result<()> {
    let config = &session.config;
    let running = if plan {
        Running::planned(config, &session.tiers)
    } else {
        let ctx = session.connect();
        let found = session.runtime.block_on(stack::stack_named(&ctx, &config.stack.name))?;
        found.map(|summary| summary.running).unwrap_or_default()
    };
    if running.is_empty() {
        println!("nothing of {} runs: it costs nothing", session.describe_target());
        return Ok(());
    }
    let estimate = stack::cost::estimate(&config.stack.region, &running);
    let what = if plan { "would cost" } else { "costs" };
    println!("{} {what} {} a month while it runs:", session.describe_target(), estimate.amount());
    print!("{}", estimate.render());
    Ok(())
}

pub fn status(session: &Session) -> anyhow::Result<()> {
    let ctx = session.connect();
    let states = session.runtime.block_on(stack::status(&ctx, &session.config))?;
    println!("{}", session.describe_target());
    for (tier, state) in states.iter().filter(|(tier, _)| session.tiers.contains(tier)) {
        let text = match state {
            TierStatus::Absent => "not deployed".to_owned(),
            TierStatus::UpToDate => "deployed, matches the config".to_owned(),
            TierStatus::Drifted { steps } => {
                format!("deployed, drifted: `cargo xtask deploy {tier}` takes these {} step(s)", steps.len())
            }
            TierStatus::Conflicting { conflicts } => {
                format!("deployed, conflicts with the config: {}", conflicts.join("; "))
            }
        };
        println!("  {:<9} {text}", tier.as_str());
        if let TierStatus::Drifted { steps } = state {
            for step in steps {
                println!("      {step}");
            }
        }
    }
    Ok(())
}
