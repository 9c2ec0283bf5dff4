//! The database tier (SPEC.md, "Database tier"): the DB subnet group over both DB subnets
//! and the RDS MySQL instance, whose master password RDS manages in Secrets Manager.
//!
//! `desired` and `plan` are pure; `observe` and `apply` talk to AWS.

mod apply;
mod desired;
mod observe;
mod plan;

pub use apply::{apply, run};
pub use desired::{Desired, desired};
pub use observe::{DbStatus, Observed, observe};
pub use plan::{DatabaseStep, plan, teardown_plan};

use std::time::{SystemTime, UNIX_EPOCH};

use three_tier_core::outputs::{DatabaseOutputs, NetworkOutputs, NetworkRefs};
use three_tier_core::{AwsContext, Config, Error, Plan, Result, Tier};

/// Deploys the tier alone on the network's DB subnets and security group and returns its
/// outputs.
pub async fn deploy(ctx: &AwsContext, config: &Config, network: &NetworkOutputs) -> Result<DatabaseOutputs> {
    let (mut observed, plan) = plan_deploy(ctx, config, &network.into()).await?;
    ctx.progress.line(plan.render().trim_end());
    plan.check_conflicts()?;
    if !plan.steps.is_empty() {
        apply(ctx, &plan).await?;
        observed = observe_config(ctx, config).await?;
    }
    outputs(&observed).ok_or_else(|| Error::incomplete(Tier::Database, &config.stack.name))
}

pub async fn plan_deploy(
    ctx: &AwsContext,
    config: &Config,
    network: &NetworkRefs,
) -> Result<(Observed, Plan<DatabaseStep>)> {
    let observed = observe_config(ctx, config).await?;
    let plan = plan(&desired(config, network), &observed, &config.stack.name);
    Ok((observed, plan))
}

/// Observes and plans the tier's teardown. The final snapshot, when the config asks for
/// one, is named now, so the plan shows the name it will have.
pub async fn plan_teardown(ctx: &AwsContext, config: &Config) -> Result<Plan<DatabaseStep>> {
    Ok(teardown_from(config, &observe_config(ctx, config).await?))
}

/// The teardown plan of what was observed, its final snapshot (if the config asks for
/// one) named after the present time.
pub fn teardown_from(config: &Config, observed: &Observed) -> Plan<DatabaseStep> {
    let (subnet_group, identifier) = names(config);
    let final_snapshot = config.database.final_snapshot.then(|| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        format!("{identifier}-final-{now}")
    });
    teardown_plan(observed, &config.stack.name, &identifier, &subnet_group, final_snapshot)
}

pub async fn observe_config(ctx: &AwsContext, config: &Config) -> Result<Observed> {
    let (subnet_group, identifier) = names(config);
    observe(ctx, &subnet_group, &identifier).await
}

fn names(config: &Config) -> (String, String) {
    (config.names().account_unique(&config.database.subnet_group_name), config.names().db_instance())
}

/// The tier's outputs, when the instance is available.
pub fn outputs(observed: &Observed) -> Option<DatabaseOutputs> {
    let instance = observed.instance.as_ref().filter(|i| i.status == DbStatus::Available)?;
    let (address, port) = instance.endpoint.clone()?;
    Some(DatabaseOutputs {
        endpoint_address: address,
        port,
        instance_arn: instance.arn.clone(),
        master_secret_arn: instance.master_secret_arn.clone()?,
    })
}

#[cfg(test)]
mod tests;
