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
