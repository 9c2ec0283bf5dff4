//! `cargo xtask status`: per tier, whether it stands and whether it matches the config.

use serde::Serialize;
use three_tier_core::{AwsContext, Config, Result, Tier};

use crate::{TIERS, TierPlan, plan_deploy, tier_teardown};

/// One tier's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TierStatus {
    /// Nothing of it exists.
    Absent,
    /// It exists and matches the config.
    UpToDate,
    /// It exists, and deploy would make this many changes (or wait for AWS).
    Drifted { changes: usize },
    /// It exists in a form deploy cannot change in place.
    Conflicting { conflicts: Vec<String> },
}

/// Every tier's status, in deploy order.
pub async fn status(ctx: &AwsContext, config: &Config) -> Result<Vec<(Tier, TierStatus)>> {
    let standing = standing(ctx, config).await?;
    let plans = plan_deploy(ctx, config, TIERS).await?;
    Ok(plans
        .iter()
        .map(|plan| {
            let state = if standing.contains(&plan.tier()) { judge(plan) } else { TierStatus::Absent };
            (plan.tier(), state)
        })
        .collect())
}

/// The tiers of which something exists: those a teardown would delete something of.
pub(crate) async fn standing(ctx: &AwsContext, config: &Config) -> Result<Vec<Tier>> {
    let mut standing = Vec::new();
    let mut alb_state = None;
    for &tier in TIERS {
        if tier_teardown(ctx, config, tier, &mut alb_state).await?.changes() > 0 {
            standing.push(tier);
        }
    }
    Ok(standing)
}

fn judge(plan: &TierPlan) -> TierStatus {
    if !plan.conflicts().is_empty() {
        let conflicts = plan.conflicts().iter().map(|c| format!("{} {}", c.resource, c.problem)).collect();
        TierStatus::Conflicting { conflicts }
    } else if plan.is_empty() {
        TierStatus::UpToDate
    } else {
        TierStatus::Drifted { changes: plan.changes() }
    }
}
