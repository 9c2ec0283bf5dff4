//! `cargo xtask outputs` and `cargo xtask status`.

use stack::TierStatus;

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
        rows.push(("nat gateway", network.nat_gateway_id.clone()));
    }
    if let Some(alb) = &outputs.alb {
        rows.push(("url", format!("http://{}/", alb.dns_name)));
        rows.push(("load balancer", alb.load_balancer_arn.clone()));
        rows.push(("target group", alb.app_target_group_arn.clone()));
    }
    if let Some(compute) = &outputs.compute {
        rows.push(("instance", format!("{} ({})", compute.instance_id, compute.private_ip)));
        rows.push(("shell", format!("aws ssm start-session --target {}", compute.instance_id)));
    }
    if let Some(database) = &outputs.database {
        rows.push(("database", format!("{}:{}", database.endpoint_address, database.port)));
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

/// Every stack of the tool in the config's region, with its tiers, age and lock.
pub fn stacks(session: &Session) -> anyhow::Result<()> {
    let ctx = session.connect();
    let stacks = session.runtime.block_on(stack::stacks(&ctx))?;
    let region = &session.config.stack.region;
    if stacks.is_empty() {
        println!("no stack of three-tier in {region}");
        return Ok(());
    }
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    println!("{:<24} {:<32} {:<8} lock", format!("stacks in {region}"), "tiers", "age");
    for summary in stacks {
        let tiers: Vec<&str> = summary.tiers.iter().map(|t| t.as_str()).collect();
        let age = summary.since.map_or("-".to_owned(), |since| {
            let seconds = now.saturating_sub(u64::try_from(since).unwrap_or_default());
            if seconds >= 86_400 {
                format!("{}d{:02}h", seconds / 86_400, seconds % 86_400 / 3600)
            } else {
                three_tier_core::progress::human(std::time::Duration::from_secs(seconds))
            }
        });
        let lock = summary.locked_by.unwrap_or_else(|| "-".into());
        println!("  {:<22} {:<32} {age:<8} {lock}", summary.name, tiers.join(", "));
    }
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
