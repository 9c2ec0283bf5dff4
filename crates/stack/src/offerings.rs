//! What AWS offers where the stack runs, checked before the first change: a well-formed
//! instance type that the app subnet's zone does not offer, or a DB class that RDS does
//! not offer for the engine version and storage type, would pass every other check and
//! fail half-way, after the VPC, the NAT gateway and the load balancer exist. Each becomes
//! a conflict of the plan that names what is offered instead.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{Filter, LocationType};
use three_tier_core::{AwsContext, AwsResultExt, Config, Conflict, Plan, Result, Tier};

use crate::{Findings, StackStep};

/// How many offered alternatives a refusal names.
const ALTERNATIVES: usize = 6;

/// The calls `check` makes, as IAM names them.
pub const READS: &[&str] = &["ec2:DescribeInstanceTypeOfferings", "rds:DescribeOrderableDBInstanceOptions"];

/// A conflict for the compute plan when it launches an instance of a type the app
/// subnet's zone does not offer, and for the database plan when it creates a DB instance
/// of a class RDS does not offer for the engine, version and storage type. An endpoint
/// that lists no offering at all (an emulator without the call) cannot tell: a note says
/// the check was not made, and AWS decides at the create.
pub(crate) async fn check(ctx: &AwsContext, config: &Config, plans: &[Plan<StackStep>]) -> Result<Findings> {
    let launches = plans
        .iter()
        .flat_map(|p| &p.steps)
        .any(|s| matches!(s, StackStep::Compute(compute::ComputeStep::RunInstance { .. })));
    let creates_db = plans
        .iter()
        .flat_map(|p| &p.steps)
        .any(|s| matches!(s, StackStep::Database(database::DatabaseStep::CreateDbInstance { .. })));
    let instance = async {
        match launches {
            true => instance_type_offered(ctx, config).await,
            false => Ok(None),
        }
    };
    let db = async {
        match creates_db {
            true => db_class_offered(ctx, config).await,
            false => Ok(None),
        }
    };
    let (instance, db) = ctx.both(instance, db).await?;
    let mut found = Findings::default();
    for (tier, offer) in [(Tier::Compute, instance), (Tier::Database, db)] {
        match offer {
            Some(Offer::NotOffered(conflict)) => found.conflicts.push((tier, conflict)),
            Some(Offer::Unknown(note)) => found.notes.push(note),
            None => {}
        }
    }
    Ok(found)
}

/// What a check found when the config's choice is not among the offers.
enum Offer {
    NotOffered(Conflict),
    /// The endpoint lists nothing at all: no offer list to judge by.
    Unknown(String),
}

/// The conflict when a zone the instances launch in does not offer the config's type.
async fn instance_type_offered(ctx: &AwsContext, config: &Config) -> Result<Option<Offer>> {
    let zones: BTreeSet<&str> = config.instance_subnets().iter().map(|(_, s)| s.availability_zone.as_str()).collect();
    let checks = zones.into_iter().map(|zone| Box::pin(instance_type_offered_in(ctx, config, zone)) as _).collect();
    Ok(ctx.all(checks).await?.into_iter().flatten().next())
}

async fn instance_type_offered_in(ctx: &AwsContext, config: &Config, zone: &str) -> Result<Option<Offer>> {
    let wanted = config.compute.instance_type.as_str();
    let offered_in_zone = |instance_type: Option<&str>| {
        let mut request = ctx
            .ec2
            .describe_instance_type_offerings()
            .location_type(LocationType::AvailabilityZone)
            .filters(Filter::builder().name("location").values(zone).build());
        if let Some(instance_type) = instance_type {
            request = request.filters(Filter::builder().name("instance-type").values(instance_type).build());
        }
        let pages = request.into_paginator().items().send();
        async move {
            let offerings = pages.try_collect().await.aws("DescribeInstanceTypeOfferings")?;
            Ok::<_, three_tier_core::Error>(
                offerings.iter().filter_map(|o| o.instance_type().map(|t| t.as_str().to_owned())).collect::<Vec<_>>(),
            )
        }
    };
    // One small read in the usual case: the type, in the zone.
    if !offered_in_zone(Some(wanted)).await?.is_empty() {
        return Ok(None);
    }
    let offered = offered_in_zone(None).await?;
    if offered.is_empty() {
        return Ok(Some(Offer::Unknown(format!(
            "instance type {wanted}: the endpoint lists no instance type offered in {zone}, so whether {zone} offers it was not checked"
        ))));
    }
    Ok(Some(Offer::NotOffered(Conflict {
        resource: format!("instance type {wanted}"),
        problem: format!("is not offered in {zone}, the app subnet's zone (RunInstances would refuse it)"),
        fix: format!(
            "set compute.instance_type to one {zone} offers, e.g. {}; or put the app subnet in another zone",
            nearest(wanted, &offered).join(", ")
        ),
    })))
}

/// The conflict when RDS does not offer the config's DB class for its engine, version and
/// storage type in the region. The version is matched as RDS reads it at create: "8.4"
/// is any 8.4 release.
async fn db_class_offered(ctx: &AwsContext, config: &Config) -> Result<Option<Offer>> {
    let database = &config.database;
    let version_matches = |version: &str| {
        version == database.engine_version || version.starts_with(&format!("{}.", database.engine_version))
    };
    let offered_with = |class: Option<&str>| {
        let pages = ctx
            .rds
            .describe_orderable_db_instance_options()
            .engine(&database.engine)
            .set_db_instance_class(class.map(str::to_owned))
            .into_paginator()
            .items()
            .send();
        async move { pages.try_collect().await.aws("DescribeOrderableDBInstanceOptions") }
    };
    let fits = |version: Option<&str>, storage: Option<&str>| {
        version.is_some_and(version_matches) && storage == Some(database.storage_type.as_str())
    };
    let options = offered_with(Some(database.instance_class.as_str())).await?;
    if options.iter().any(|o| fits(o.engine_version(), o.storage_type())) {
        return Ok(None);
    }
    let options = offered_with(None).await?;
    if options.is_empty() {
        // moto 5.2 lists no option for MySQL at all; AWS lists thousands.
        return Ok(Some(Offer::Unknown(format!(
            "DB instance class {}: the endpoint lists no orderable option for {}, so whether it is offered was not checked",
            database.instance_class, database.engine
        ))));
    }
    let mut classes: Vec<String> = options
        .iter()
        .filter(|o| fits(o.engine_version(), o.storage_type()))
        .filter_map(|o| o.db_instance_class().map(str::to_owned))
        .collect();
    classes.sort();
    classes.dedup();
    let instead = match nearest(database.instance_class.as_str(), &classes) {
        found if found.is_empty() => format!(
            "RDS offers no class for {} {} with {} storage here: choose another version or storage type",
            database.engine, database.engine_version, database.storage_type
        ),
        found => format!("set database.instance_class to one RDS offers, e.g. {}", found.join(", ")),
    };
    Ok(Some(Offer::NotOffered(Conflict {
        resource: format!("DB instance class {}", database.instance_class),
        problem: format!(
            "is not offered for {} {} with {} storage in {} (CreateDBInstance would refuse it)",
            database.engine, database.engine_version, database.storage_type, config.stack.region
        ),
        fix: instead,
    })))
}

/// The offered names nearest `wanted` (`t3.micro`, `db.t3.micro`): the same family in
/// other sizes first, then the same size in other families, by name; the first offered
/// when none is near.
fn nearest(wanted: &str, offered: &[String]) -> Vec<String> {
    let (family, size) = wanted.rsplit_once('.').unwrap_or((wanted, ""));
    let split =
        |name: &str| name.rsplit_once('.').map_or((name.to_owned(), String::new()), |(f, s)| (f.into(), s.into()));
    let mut sorted: Vec<&String> = offered.iter().collect();
    sorted.sort();
    let same_family = sorted.iter().filter(|name| split(name).0 == family);
    let same_size = sorted.iter().filter(|name| !size.is_empty() && split(name).1 == size && split(name).0 != family);
    let near: Vec<String> = same_family.chain(same_size).take(ALTERNATIVES).map(|name| (*name).clone()).collect();
    if near.is_empty() { sorted.into_iter().take(ALTERNATIVES).cloned().collect() } else { near }
}

#[cfg(test)]
mod tests {
    use super::nearest;

    #[test]
    fn the_nearest_offers_are_the_same_family_then_the_same_size() {
        let offered: Vec<String> =
            ["t2.micro", "t3.small", "m5.large", "t3a.micro", "t3.large"].map(String::from).to_vec();
        assert_eq!(nearest("t3.micro", &offered), ["t3.large", "t3.small", "t2.micro", "t3a.micro"]);
        assert_eq!(nearest("t3.gigantic", &offered), ["t3.large", "t3.small"]);
        let classes: Vec<String> = ["db.t3.micro", "db.t4g.micro", "db.m5.large"].map(String::from).to_vec();
        assert_eq!(nearest("db.r6gd.xlarge", &classes), ["db.m5.large", "db.t3.micro", "db.t4g.micro"]);
        assert_eq!(nearest("db.t3.small", &classes), ["db.t3.micro"]);
    }
}
