//! What of the database tier exists. RDS names are unique per account and region: the
//! tier reads its subnet group and instance by name and checks their stack tag.

use std::collections::BTreeMap;

use std::time::{SystemTime, UNIX_EPOCH};

use three_tier_core::error::required;
use three_tier_core::naming::ours;
use three_tier_core::{AwsContext, AwsResultExt, Result};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub subnet_group: Option<ObservedSubnetGroup>,
    pub instance: Option<ObservedInstance>,
    /// The subnet group's and the instance's names when another holds them (they are
    /// unique per account and region): such a group or instance is not read above.
    pub foreign_names: Vec<String>,
    /// When it was read, in seconds since the Unix epoch: a final snapshot is named by it.
    pub observed_at: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedSubnetGroup {
    pub arn: String,
    pub subnet_ids: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedInstance {
    pub arn: String,
    pub status: DbStatus,
    pub engine: String,
    pub engine_version: String,
    pub instance_class: String,
    pub storage_type: String,
    pub allocated_storage_gib: u32,
    pub max_allocated_storage_gib: Option<u32>,
    pub multi_az: bool,
    /// The primary's zone, and the standby's when Multi-AZ (RDS names it once the standby exists).
    pub zone: Option<String>,
    pub standby_zone: Option<String>,
    pub publicly_accessible: bool,
    pub storage_encrypted: bool,
    pub deletion_protection: bool,
    pub subnet_group: Option<String>,
    pub security_groups: Vec<String>,
    pub database_name: String,
    pub master_username: String,
    pub endpoint: Option<(String, u16)>,
    pub master_secret_arn: Option<String>,
    pub tags: BTreeMap<String, String>,
}

pub async fn observe(ctx: &AwsContext, stack: &str, subnet_group_name: &str, identifier: &str) -> Result<Observed> {
    let observed_at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let rds = &ctx.rds;
    // The subnet group (and its tags) beside the instance: one round of calls fewer.
    let subnet_group = async {
        let answer = rds
            .describe_db_subnet_groups()
            .db_subnet_group_name(subnet_group_name)
            .send()
            .await
            .aws("DescribeDBSubnetGroups");
        let group = match answer {
            Ok(answer) => match answer.db_subnet_groups().first() {
                Some(group) => group.clone(),
                None => return Ok(None),
            },
            Err(err) if err.is_not_found() => return Ok(None),
            Err(err) => return Err(err),
        };
        let arn = required(group.db_subnet_group_arn(), "DescribeDBSubnetGroups", "DBSubnetGroupArn")?.to_owned();
        let tags = rds.list_tags_for_resource().resource_name(&arn).send().await.aws("ListTagsForResource")?;
        let mut subnet_ids: Vec<String> =
            group.subnets().iter().filter_map(|s| s.subnet_identifier().map(str::to_owned)).collect();
        subnet_ids.sort();
        Ok(Some(ObservedSubnetGroup { arn, subnet_ids, tags: tag_map(tags.tag_list()) }))
    };
    let instance = async {
        match rds.describe_db_instances().db_instance_identifier(identifier).send().await.aws("DescribeDBInstances") {
            Ok(answer) => answer.db_instances().first().map(observed_instance).transpose(),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    };
    let (subnet_group, instance) = ctx.both(subnet_group, instance).await?;
    let mut foreign_names = Vec::new();
    let subnet_group = ours(subnet_group, |g| &g.tags, stack, subnet_group_name, &mut foreign_names);
    let instance = ours(instance, |i| &i.tags, stack, identifier, &mut foreign_names);
    Ok(Observed { subnet_group, instance, foreign_names, observed_at })
}

/// An RDS instance's status. RDS gives a string; these are the ones the tier acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbStatus {
    Available,
    Creating,
    Stopped,
    Stopping,
    Deleting,
    /// A state it does not leave by itself: `failed`, `storage-full`, `incompatible-*`, ...
    Stuck(String),
    /// On its way somewhere: `modifying`, `backing-up`, `starting`, `rebooting`, ...
    Busy(String),
}

impl DbStatus {
    pub fn parse(status: &str) -> DbStatus {
        match status {
            "available" => DbStatus::Available,
            "creating" => DbStatus::Creating,
            "stopped" => DbStatus::Stopped,
            "stopping" => DbStatus::Stopping,
            "deleting" => DbStatus::Deleting,
            "failed"
            | "storage-full"
            | "inaccessible-encryption-credentials"
            | "incompatible-network"
            | "incompatible-parameters"
            | "incompatible-restore" => DbStatus::Stuck(status.to_owned()),
            other => DbStatus::Busy(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            DbStatus::Available => "available",
            DbStatus::Creating => "creating",
            DbStatus::Stopped => "stopped",
            DbStatus::Stopping => "stopping",
            DbStatus::Deleting => "deleting",
            DbStatus::Stuck(status) | DbStatus::Busy(status) => status,
        }
    }
}

fn tag_map(tags: &[aws_sdk_rds::types::Tag]) -> BTreeMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned()))).collect()
}

/// A DB instance as RDS describes it.
fn observed_instance(db: &aws_sdk_rds::types::DbInstance) -> Result<ObservedInstance> {
    Ok(ObservedInstance {
        arn: required(db.db_instance_arn(), "DescribeDBInstances", "DBInstanceArn")?.to_owned(),
        status: DbStatus::parse(required(db.db_instance_status(), "DescribeDBInstances", "DBInstanceStatus")?),
        engine: db.engine().unwrap_or_default().to_owned(),
        engine_version: db.engine_version().unwrap_or_default().to_owned(),
        instance_class: db.db_instance_class().unwrap_or_default().to_owned(),
        storage_type: db.storage_type().unwrap_or_default().to_owned(),
        allocated_storage_gib: db.allocated_storage().and_then(|g| u32::try_from(g).ok()).unwrap_or_default(),
        max_allocated_storage_gib: db.max_allocated_storage().and_then(|g| u32::try_from(g).ok()),
        multi_az: db.multi_az().unwrap_or(false),
        zone: db.availability_zone().map(str::to_owned),
        standby_zone: db.secondary_availability_zone().map(str::to_owned),
        publicly_accessible: db.publicly_accessible().unwrap_or(false),
        storage_encrypted: db.storage_encrypted().unwrap_or(false),
        deletion_protection: db.deletion_protection().unwrap_or(false),
        // None for an instance outside any VPC's subnet group: not the stack's, found by name.
        subnet_group: db.db_subnet_group().and_then(|g| g.db_subnet_group_name()).map(str::to_owned),
        // Groups on their way out (`removing`) no longer count.
        security_groups: db
            .vpc_security_groups()
            .iter()
            .filter(|g| g.status().is_none_or(|s| s == "active" || s == "adding"))
            .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
            .collect(),
        database_name: db.db_name().unwrap_or_default().to_owned(),
        master_username: db.master_username().unwrap_or_default().to_owned(),
        endpoint: db.endpoint().and_then(|e| Some((e.address()?.to_owned(), u16::try_from(e.port()?).ok()?))),
        master_secret_arn: db.master_user_secret().and_then(|s| s.secret_arn()).map(str::to_owned),
        tags: tag_map(db.tag_list()),
    })
}
