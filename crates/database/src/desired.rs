//! What the database tier should look like, from the config and what it refers to of the
//! network tier.

use serde::Serialize;
use three_tier_core::config::{DbInstanceClass, StorageType};
use three_tier_core::naming::Tags;
use three_tier_core::outputs::NetworkRefs;
use three_tier_core::{Config, Ref, SecurityGroupRole, SubnetRole, Tier};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Desired {
    pub subnet_group: SubnetGroupSpec,
    pub instance: InstanceSpec,
}

/// Both DB subnets: a DB subnet group needs two availability zones.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubnetGroupSpec {
    pub name: String,
    pub description: String,
    pub subnets: Vec<Ref>,
    pub tags: Tags,
}

/// RDS MySQL as SPEC.md sets it. Single AZ, not publicly accessible, storage encrypted and
/// autoscaling off are not choices: they are always so. The password is RDS's business
/// (ManageMasterUserPassword): the tool never sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceSpec {
    pub identifier: String,
    pub engine: String,
    pub engine_version: String,
    pub instance_class: DbInstanceClass,
    pub storage_type: StorageType,
    pub allocated_storage_gib: u32,
    pub database_name: String,
    pub master_username: String,
    pub port: u16,
    pub security_group: Ref,
    pub deletion_protection: bool,
    pub final_snapshot: bool,
    /// A standby in another zone of the subnet group.
    pub multi_az: bool,
    pub tags: Tags,
}

pub fn desired(config: &Config, network: &NetworkRefs) -> Desired {
    let names = config.names();
    let tags = |role: &str, name: &str| Tags::new(names.stack(), Tier::Database, role, name, &config.stack.tags);
    let database = &config.database;
    let subnet_group = names.account_unique(&database.subnet_group_name);
    let identifier = names.db_instance();
    let subnets: Vec<Ref> = network.subnets_of(SubnetRole::Db).into_iter().cloned().collect();
    let count = match subnets.len() {
        2 => "two".to_owned(),
        n => n.to_string(),
    };
    Desired {
        subnet_group: SubnetGroupSpec {
            tags: tags("db-subnet-group", &subnet_group),
            name: subnet_group,
            description: format!("three-tier stack {}: the {count} DB subnets", names.stack()),
            subnets,
        },
        instance: InstanceSpec {
            tags: tags("db-instance", &identifier),
            identifier,
            engine: database.engine.clone(),
            engine_version: database.engine_version.clone(),
            instance_class: database.instance_class.clone(),
            storage_type: database.storage_type,
            allocated_storage_gib: database.allocated_storage_gib,
            database_name: database.database_name.clone(),
            master_username: database.master_username.clone(),
            port: config.ports.database.get(),
            security_group: network.security_group(SecurityGroupRole::Db).clone(),
            deletion_protection: database.deletion_protection,
            multi_az: database.multi_az,
            final_snapshot: database.final_snapshot,
        },
    }
}
