//! Runs a database plan against RDS.

use aws_sdk_rds::types::Tag;
use three_tier_core::error::{Answer, gone_is_done};
use three_tier_core::wait::Outcome;
use three_tier_core::{AwsContext, AwsResultExt, Created, Error, Result};

use crate::observe::DbStatus;
use crate::plan::DatabaseStep;

const DB_FAILURE: &str = "the instance's events in the RDS console say why";

/// Makes one attempt at a step (see [`three_tier_core::TierCrate::run`]); `created` holds
/// the ids of what the steps before it made.
pub async fn run(ctx: &AwsContext, step: &DatabaseStep, created: &Created) -> Result<Outcome> {
    let rds = &ctx.rds;
    match step {
        DatabaseStep::CreateDbSubnetGroup { name, description, subnets, tags } => {
            rds.create_db_subnet_group()
                .db_subnet_group_name(name)
                .db_subnet_group_description(description)
                .set_subnet_ids(Some(created.resolve_all(subnets)?))
                .set_tags(Some(rds_tags(tags.pairs.iter())))
                .send()
                .await
                .aws("CreateDBSubnetGroup")?;
        }
        DatabaseStep::ModifyDbSubnetGroup { name, description, subnets } => {
            rds.modify_db_subnet_group()
                .db_subnet_group_name(name)
                .db_subnet_group_description(description)
                .set_subnet_ids(Some(created.resolve_all(subnets)?))
                .send()
                .await
                .aws("ModifyDBSubnetGroup")?;
        }
        DatabaseStep::CreateDbInstance { spec, subnet_group } => {
            rds.create_db_instance()
                .db_instance_identifier(&spec.identifier)
                .engine(&spec.engine)
                .engine_version(&spec.engine_version)
                .db_instance_class(spec.instance_class.as_str())
                .storage_type(spec.storage_type.as_str())
                .allocated_storage(i32::try_from(spec.allocated_storage_gib).unwrap_or(i32::MAX))
                .db_name(&spec.database_name)
                .master_username(&spec.master_username)
                // RDS makes the password and keeps it in Secrets Manager: it never passes
                // through this tool.
                .manage_master_user_password(true)
                .port(i32::from(spec.port))
                .db_subnet_group_name(subnet_group)
                .vpc_security_group_ids(created.resolve(&spec.security_group)?)
                .multi_az(spec.multi_az)
                .publicly_accessible(false)
                .storage_encrypted(true)
                .deletion_protection(spec.deletion_protection)
                .copy_tags_to_snapshot(true)
                .set_tags(Some(rds_tags(spec.tags.pairs.iter())))
                .send()
                .await
                .aws("CreateDBInstance")?;
        }
        DatabaseStep::ModifyDbInstance { identifier, deletion_protection, security_groups, multi_az } => {
            let security_group_ids =
                security_groups.as_deref().map(|groups| created.resolve_all(groups)).transpose()?;
            rds.modify_db_instance()
                .db_instance_identifier(identifier)
                .set_deletion_protection(*deletion_protection)
                .set_multi_az(*multi_az)
                .set_vpc_security_group_ids(security_group_ids)
                .apply_immediately(true)
                .send()
                .await
                .aws("ModifyDBInstance")?;
        }
        DatabaseStep::StartDbInstance { identifier } => {
            rds.start_db_instance().db_instance_identifier(identifier).send().await.aws("StartDBInstance")?;
        }
        DatabaseStep::AddTags { arn, tags, .. } => {
            rds.add_tags_to_resource()
                .resource_name(arn)
                .set_tags(Some(rds_tags(tags.iter())))
                .send()
                .await
                .aws("AddTagsToResource")?;
        }
        DatabaseStep::WaitDbInstanceAvailable { identifier } | DatabaseStep::WaitDbInstanceStarted { identifier } => {
            return Ok(match db_status(ctx, identifier).await? {
                Some(DbStatus::Available) => Outcome::Done(()),
                Some(failed @ (DbStatus::Stuck(_) | DbStatus::Stopped | DbStatus::Deleting)) => {
                    Outcome::Failed { state: failed.as_str().to_owned(), look: DB_FAILURE }
                }
                Some(other) => Outcome::NotYet(other.as_str().to_owned()),
                None => Outcome::Failed { state: "gone".into(), look: DB_FAILURE },
            });
        }
        DatabaseStep::DeleteDbInstance { identifier, final_snapshot } => {
            let request = rds.delete_db_instance().db_instance_identifier(identifier).delete_automated_backups(true);
            let request = match final_snapshot {
                Some(snapshot) => request.skip_final_snapshot(false).final_db_snapshot_identifier(snapshot),
                None => request.skip_final_snapshot(true),
            };
            match request.send().await.aws("DeleteDBInstance") {
                // Already being deleted: the wait that follows sees it through.
                Err(err) if err.is(Answer::DbInstanceBusy) => {}
                other => gone_is_done(other)?,
            }
        }
        DatabaseStep::WaitDbInstanceDeleted { identifier } => {
            return Ok(match db_status(ctx, identifier).await? {
                None => Outcome::Done(()),
                Some(status) => Outcome::NotYet(status.as_str().to_owned()),
            });
        }
        DatabaseStep::DeleteDbSubnetGroup { name } => {
            let result = gone_is_done(
                rds.delete_db_subnet_group().db_subnet_group_name(name).send().await.aws("DeleteDBSubnetGroup"),
            );
            return Outcome::unless_refused(result, Error::is_in_use);
        }
    }
    Ok(Outcome::Done(()))
}

fn rds_tags<'t>(tags: impl Iterator<Item = (&'t String, &'t String)>) -> Vec<Tag> {
    tags.map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

/// An RDS instance's status; `None` once it is gone.
async fn db_status(ctx: &AwsContext, identifier: &str) -> Result<Option<DbStatus>> {
    match ctx.rds.describe_db_instances().db_instance_identifier(identifier).send().await.aws("DescribeDBInstances") {
        Ok(answer) => Ok(answer.db_instances().first().and_then(|db| db.db_instance_status()).map(DbStatus::parse)),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err),
    }
}
