//! The typed outputs each tier hands to the tiers built on it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::plan::Ref;
use crate::roles::{RouteTableKey, RouteTableRole, SecurityGroupRole, SubnetKey, SubnetRole};

/// What the network tier has built, once all of it exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkOutputs {
    pub vpc_id: String,
    pub internet_gateway_id: String,
    pub subnet_ids: BTreeMap<SubnetKey, String>,
    pub route_table_ids: BTreeMap<RouteTableKey, String>,
    /// One, or with `network.nat_gateways = "per-zone"` one per app subnet's zone, in the
    /// app subnets' key order.
    pub nat_gateways: Vec<NatGatewayOutputs>,
    pub security_group_ids: BTreeMap<SecurityGroupRole, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatGatewayOutputs {
    pub id: String,
    pub zone: String,
    pub allocation_id: String,
    /// The Elastic IP the app subnets it serves go out by.
    pub public_ip: String,
}

impl NetworkOutputs {
    /// The subnet keyed `key` (`alb-a`, `app`, ...); like [`NetworkOutputs::security_group`],
    /// for a key the stack has.
    pub fn subnet(&self, key: &str) -> &str {
        self.subnet_ids.get(key).unwrap_or_else(|| panic!("the stack has no subnet keyed {key}"))
    }

    /// The ids of one role's subnets, in key order.
    pub fn subnets_of(&self, role: SubnetRole) -> Vec<&str> {
        self.subnet_ids.iter().filter(|(key, _)| key.role() == role).map(|(_, id)| id.as_str()).collect()
    }

    pub fn security_group(&self, role: SecurityGroupRole) -> &str {
        &self.security_group_ids[&role]
    }

    /// The first NAT gateway: the only one unless `network.nat_gateways` is per-zone.
    pub fn nat_gateway(&self) -> &NatGatewayOutputs {
        self.nat_gateways.first().expect("a deployed network has a NAT gateway")
    }

    /// The table of `role` that is not a zone's own: the public, the db, and the app table
    /// of the NAT gateway in the first ALB subnet.
    pub fn route_table(&self, role: RouteTableRole) -> &str {
        &self.route_table_ids[&RouteTableKey::of(role)]
    }
}

/// What other tiers refer to of the network tier: each an id when it exists, else the key
/// of the step of the same run that creates it, so a whole stack plans in one pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkRefs {
    pub vpc: Ref,
    pub subnets: BTreeMap<SubnetKey, Ref>,
    pub security_groups: BTreeMap<SecurityGroupRole, Ref>,
}

impl NetworkRefs {
    /// One role's subnets, in key order.
    pub fn subnets_of(&self, role: SubnetRole) -> Vec<&Ref> {
        self.subnets.iter().filter(|(key, _)| key.role() == role).map(|(_, subnet)| subnet).collect()
    }

    pub fn security_group(&self, role: SecurityGroupRole) -> &Ref {
        &self.security_groups[&role]
    }
}

impl NetworkRefs {
    /// The default config's network, deployed, with readable ids (`vpc-1`, `subnet-app`,
    /// `sg-db`, ...): what the tiers' plans are shown and tested on.
    pub fn example() -> NetworkRefs {
        NetworkRefs::example_for(&Config::default_config())
    }

    /// `config`'s network, deployed, with readable ids (`subnet-app-b`).
    pub fn example_for(config: &Config) -> NetworkRefs {
        NetworkRefs {
            vpc: Ref::existing("vpc-1"),
            subnets: config
                .network
                .subnets
                .iter()
                .map(|(key, _)| (key.clone(), Ref::existing(format!("subnet-{key}"))))
                .collect(),
            security_groups: SecurityGroupRole::ALL
                .iter()
                .map(|&role| (role, Ref::existing(format!("sg-{role}"))))
                .collect(),
        }
    }
}

impl From<&NetworkOutputs> for NetworkRefs {
    fn from(outputs: &NetworkOutputs) -> NetworkRefs {
        NetworkRefs {
            vpc: Ref::existing(&outputs.vpc_id),
            subnets: outputs.subnet_ids.iter().map(|(key, id)| (key.clone(), Ref::existing(id))).collect(),
            security_groups: outputs.security_group_ids.iter().map(|(&role, id)| (role, Ref::existing(id))).collect(),
        }
    }
}

/// What the ALB tier has built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlbOutputs {
    pub load_balancer_arn: String,
    /// The load balancer's DNS name: the stack answers on [`AlbOutputs::url`].
    pub dns_name: String,
    pub listener_arn: String,
    /// The listener's port (`ports.http`).
    pub listener_port: u16,
    /// The target group the instance registers in (app-target-group).
    pub app_target_group_arn: String,
    /// Every target group of the tier, by its AWS name.
    pub target_group_arns: BTreeMap<String, String>,
}

/// What the compute tier has built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputeOutputs {
    /// The app instances by key (`instance`, `instance-2`, ...), each running.
    pub instances: BTreeMap<String, InstanceOutputs>,
    pub role_arn: String,
    pub instance_profile_arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceOutputs {
    pub id: String,
    pub private_ip: String,
}

impl ComputeOutputs {
    /// The first instance (`instance`): the one `verify`, `shell` and `logs` work on.
    pub fn first(&self) -> &InstanceOutputs {
        self.instances
            .get("instance")
            .expect("the outputs hold every instance the config asks for, and it asks for one")
    }
}

/// What other tiers refer to of the ALB tier: the target groups the instance registers in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlbRefs {
    pub app_target_group: Ref,
    /// Each listener rule's target group, in the config's order.
    pub rule_target_groups: Vec<Ref>,
}

impl AlbOutputs {
    /// The address the stack answers on: `http://<dns_name>/`, with the listener's port
    /// when it is not HTTP's own.
    pub fn url(&self) -> String {
        match self.listener_port {
            80 => format!("http://{}/", self.dns_name),
            port => format!("http://{}:{port}/", self.dns_name),
        }
    }
}

impl From<&AlbOutputs> for AlbRefs {
    fn from(outputs: &AlbOutputs) -> AlbRefs {
        let rule_target_groups = outputs
            .target_group_arns
            .iter()
            .filter(|(_, arn)| **arn != outputs.app_target_group_arn)
            .map(|(_, arn)| Ref::existing(arn))
            .collect();
        AlbRefs { app_target_group: Ref::existing(&outputs.app_target_group_arn), rule_target_groups }
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
    /// The primary's zone, as RDS names it.
    pub zone: Option<String>,
    /// Multi-AZ: the standby's zone (`None` until RDS names it); `None` when single-AZ.
    pub multi_az: Option<Standby>,
}

/// A Multi-AZ instance's standby.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standby {
    pub zone: Option<String>,
}
