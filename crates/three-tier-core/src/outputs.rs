//! The typed outputs each tier hands to the tiers built on it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::roles::{RouteTableRole, SecurityGroupRole, SubnetRole};

/// What the network tier has built, once all of it exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkOutputs {
    pub vpc_id: String,
    pub internet_gateway_id: String,
    pub subnet_ids: BTreeMap<SubnetRole, String>,
    pub route_table_ids: BTreeMap<RouteTableRole, String>,
    pub nat_gateway_id: String,
    pub eip_allocation_id: String,
    pub security_group_ids: BTreeMap<SecurityGroupRole, String>,
}

impl NetworkOutputs {
    pub fn subnet(&self, role: SubnetRole) -> &str {
        &self.subnet_ids[&role]
    }

    pub fn security_group(&self, role: SecurityGroupRole) -> &str {
        &self.security_group_ids[&role]
    }
}

/// What the database tier needs of the network: the two DB subnets and the database's
/// security group. They exist before the rest of the network, so the database's minutes
/// start early.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseNetwork {
    pub subnet_ids: Vec<String>,
    pub security_group_id: String,
}

impl NetworkOutputs {
    pub fn database_network(&self) -> DatabaseNetwork {
        DatabaseNetwork {
            subnet_ids: SubnetRole::DB.iter().map(|&role| self.subnet(role).to_owned()).collect(),
            security_group_id: self.security_group(SecurityGroupRole::Db).to_owned(),
        }
    }
}

/// What the ALB tier has built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlbOutputs {
    pub load_balancer_arn: String,
    /// The address the stack answers on: `http://<dns_name>/`.
    pub dns_name: String,
    pub listener_arn: String,
    /// The target group the instance registers in (app-target-group).
    pub app_target_group_arn: String,
    /// Every target group of the tier, by its AWS name.
    pub target_group_arns: BTreeMap<String, String>,
}

/// What the compute tier has built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputeOutputs {
    pub instance_id: String,
    pub private_ip: String,
    pub role_arn: String,
    pub instance_profile_arn: String,
}

impl NetworkOutputs {
    /// Stand-ins for a network tier that a plan would create: lets `plan` show what the
    /// later tiers would build on an empty account.
    pub fn placeholder() -> NetworkOutputs {
        let new = |what: &str| format!("(new {what})");
        NetworkOutputs {
            vpc_id: new("vpc"),
            internet_gateway_id: new("internet-gateway"),
            subnet_ids: SubnetRole::ALL.iter().map(|&r| (r, new(&format!("subnet/{r}")))).collect(),
            route_table_ids: RouteTableRole::ALL.iter().map(|&r| (r, new(&format!("route-table/{r}")))).collect(),
            nat_gateway_id: new("nat-gateway"),
            eip_allocation_id: new("nat-address"),
            security_group_ids: SecurityGroupRole::ALL.iter().map(|&r| (r, new(&format!("security-group/{r}")))).collect(),
        }
    }
}

impl AlbOutputs {
    /// Stand-ins for an ALB tier that a plan would create.
    pub fn placeholder() -> AlbOutputs {
        let new = |what: &str| format!("(new {what})");
        AlbOutputs {
            load_balancer_arn: new("load-balancer"),
            dns_name: new("load-balancer dns name"),
            listener_arn: new("listener"),
            app_target_group_arn: new("app target group"),
            target_group_arns: BTreeMap::new(),
        }
    }
}

/// What the database tier has built. The master password is not here: RDS keeps it in
/// the Secrets Manager secret named by `master_secret_arn`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseOutputs {
    pub endpoint_address: String,
    pub port: u16,
    pub instance_arn: String,
    pub master_secret_arn: String,
}
