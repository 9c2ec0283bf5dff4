//! The database tier (SPEC.md, "Database tier"): the DB subnet group over both DB subnets
//! and the RDS MySQL instance, whose master password RDS manages in Secrets Manager.
//!
//! `desired` and `plan` are pure; `observe` and `apply` talk to AWS.

mod apply;
mod desired;
mod observe;
mod plan;

pub use apply::run;
pub use desired::{Desired, desired};
pub use observe::{DbStatus, Observed, observe};
pub use plan::{DatabaseStep, plan, teardown_plan};

use three_tier_core::outputs::{DatabaseOutputs, NetworkRefs, Standby};
use three_tier_core::{AwsContext, Config, Created, Plan, Result, Tier, TierCrate};

/// The database tier, as the stack drives it.
pub struct Database;

impl TierCrate for Database {
    const TIER: Tier = Tier::Database;
    const READS: &'static [&'static str] =
        &["rds:DescribeDBSubnetGroups", "rds:DescribeDBInstances", "rds:ListTagsForResource"];
    type Inputs = NetworkRefs;
    type Observed = Observed;
    type Desired = Desired;
    type Step = DatabaseStep;
    type Outputs = DatabaseOutputs;

    async fn observe(ctx: &AwsContext, config: &Config) -> Result<Observed> {
        let (subnet_group, identifier) = names(config);
        observe(ctx, &config.stack.name, &subnet_group, &identifier).await
    }

    fn desired(config: &Config, network: &NetworkRefs) -> Desired {
        desired(config, network)
    }

    fn plan(desired: &Desired, observed: &Observed) -> Plan<DatabaseStep> {
        plan(desired, observed)
    }

    /// The final snapshot, when the config asks for one, is named after the time the
    /// database was observed, so the plan shows the name it will have.
    fn teardown(config: &Config, observed: &Observed) -> Plan<DatabaseStep> {
        let (subnet_group, identifier) = names(config);
        let final_snapshot =
            config.database.final_snapshot.then(|| format!("{identifier}-final-{}", observed.observed_at));
        teardown_plan(observed, &identifier, &subnet_group, final_snapshot)
    }

    fn outputs(_: &Config, observed: &Observed) -> Option<DatabaseOutputs> {
        outputs(observed)
    }

    async fn run(ctx: &AwsContext, step: &DatabaseStep, created: &Created) -> Result<three_tier_core::wait::Outcome> {
        run(ctx, step, created).await
    }
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
        zone: instance.zone.clone(),
        multi_az: instance.multi_az.then(|| Standby { zone: instance.standby_zone.clone() }),
    })
}

#[cfg(test)]
mod tests;
