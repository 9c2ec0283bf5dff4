//! `cargo xtask status`: per tier, whether it stands and whether it matches the config.

use compute::Compute;
use serde::Serialize;
use three_tier_core::{AwsContext, Config, Plan, Result, Step, Tier, TierCrate};

use crate::{Observations, StackStep, TIERS, plan_deploy_from, standing};

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
    let mut observed = Observations::read(ctx, config, TIERS).await?;
    // An instance to launch is shown with its AMI, as `plan` shows it.
    if let Some(compute) = observed.compute.as_mut() {
        Compute::prepare_deploy(ctx, config, compute).await?;
    }
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
