//! `cargo xtask status`: per tier, whether it stands and whether it matches the config.

use serde::Serialize;
use three_tier_core::{AwsContext, Config, Plan, Result, Step, Tier};

use crate::{StackStep, TIERS, observe_for_deploy, plan_deploy_from, standing};

/// One tier's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TierStatus {
    /// Nothing of it exists.
    Absent,
    /// It exists and matches the config.
    UpToDate,
    /// It exists, and deploy would take these steps: each as `plan` shows it.
    Drifted { steps: Vec<String> },
    /// It exists in a form deploy cannot change in place.
    Conflicting { conflicts: Vec<String> },
}

/// Every tier's status, in deploy order, from one observation of the stack.
pub async fn status(ctx: &AwsContext, config: &Config) -> Result<Vec<(Tier, TierStatus)>> {
    // Read as `plan` reads it: an instance to launch is shown with its AMI.
    let observed = observe_for_deploy(ctx, config, TIERS).await?;
    let standing = standing(config, &observed);
    let plan = plan_deploy_from(config, TIERS, &observed)?;
    Ok(plan
        .tiers
        .iter()
        .map(|plan| {
            let state = if standing.contains(&plan.tier) { judge(plan) } else { TierStatus::Absent };
            (plan.tier, state)
        })
        .collect())
}

fn judge(plan: &Plan<StackStep>) -> TierStatus {
    if !plan.conflicts.is_empty() {
        let conflicts = plan.conflicts.iter().map(|c| format!("{} {}", c.resource, c.problem)).collect();
        TierStatus::Conflicting { conflicts }
    } else if plan.steps.is_empty() {
        TierStatus::UpToDate
    } else {
        TierStatus::Drifted {
            steps: plan.steps.iter().map(|step| format!("{} {}", step.change().sign(), step.describe())).collect(),
        }
    }
}
