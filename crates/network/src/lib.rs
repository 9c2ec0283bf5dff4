//! The network tier: the VPC and everything in it that the other tiers stand on (SPEC.md,
//! "Network tier"): internet gateway, the subnets by role, three route tables, the NAT gateway
//! with its Elastic IP (or one per zone), and the three chained security groups.
//!
//! `desired` and `plan` are pure; `observe` and `apply` talk to AWS.

mod apply;
mod desired;
mod observe;
mod plan;
mod rules;

use std::collections::BTreeMap;

pub use apply::run;
pub use desired::{DefaultRoute, Desired, IngressFrom, desired};
pub use observe::{Observed, observe};
pub use plan::{NetworkStep, RouteTarget, VpcAttribute, plan, teardown_plan};
pub use rules::{IngressRule, Source};

use aws_sdk_ec2::types::NatGatewayState;
use three_tier_core::outputs::{NatGatewayOutputs, NetworkOutputs, NetworkRefs};
use three_tier_core::{AwsContext, Config, Created, Plan, Ref, Result, SecurityGroupRole, Tier, TierCrate};

/// The network tier, as the stack drives it.
pub struct Network;

impl TierCrate for Network {
    const TIER: Tier = Tier::Network;
    const READS: &'static [&'static str] = &[
        "ec2:DescribeVpcs",
        "ec2:DescribeVpcAttribute",
        "ec2:DescribeSubnets",
        "ec2:DescribeRouteTables",
        "ec2:DescribeInternetGateways",
        "ec2:DescribeAddresses",
        "ec2:DescribeNatGateways",
        "ec2:DescribeSecurityGroups",
    ];
    type Inputs = ();
    type Observed = Observed;
    type Desired = Desired;
    type Step = NetworkStep;
    type Outputs = NetworkOutputs;

    async fn observe(ctx: &AwsContext, config: &Config) -> Result<Observed> {
        observe(ctx, &config.stack.name).await
    }

    fn desired(config: &Config, _: &()) -> Desired {
        desired(config)
    }

    fn plan(desired: &Desired, observed: &Observed) -> Plan<NetworkStep> {
        plan(desired, observed)
    }

    fn teardown(_: &Config, observed: &Observed) -> Plan<NetworkStep> {
        teardown_plan(observed)
    }

    fn outputs(config: &Config, observed: &Observed) -> Option<NetworkOutputs> {
        outputs(config, observed)
    }

    async fn run(ctx: &AwsContext, step: &NetworkStep, created: &Created) -> Result<three_tier_core::wait::Outcome> {
        run(ctx, step, created).await
    }
}

/// What the other tiers refer to: the ids of what exists, the keys of what a deploy plan
/// creates (the same choice [`plan`] makes, so the refs match its steps).
pub fn refs(config: &Config, observed: &Observed) -> NetworkRefs {
    let planned_or = |found: Option<&String>, key: String| found.map_or_else(|| Ref::planned(key), Ref::existing);
    NetworkRefs {
        vpc: planned_or(observed.vpc().map(|v| &v.id), "vpc".into()),
        subnets: config
            .network
            .subnets
            .iter()
            .map(|(key, _)| (key.clone(), planned_or(observed.subnet(key).map(|s| &s.id), format!("subnet/{key}"))))
            .collect(),
        security_groups: SecurityGroupRole::ALL
            .iter()
            .map(|&role| {
                (role, planned_or(observed.security_group(role).map(|g| &g.id), format!("security-group/{role}")))
            })
            .collect(),
    }
}

/// The tier's outputs, when every resource of it exists and the NAT gateway is available.
pub fn outputs(config: &Config, observed: &Observed) -> Option<NetworkOutputs> {
    let subnet_ids: BTreeMap<_, _> = config
        .network
        .subnets
        .iter()
        .map(|(key, _)| Some((key.clone(), observed.subnet(key)?.id.clone())))
        .collect::<Option<_>>()?;
    let desired = desired(config);
    let route_table_ids: BTreeMap<_, _> = desired
        .route_tables
        .keys()
        .map(|key| Some((key.clone(), observed.route_table(key)?.id.clone())))
        .collect::<Option<_>>()?;
    let security_group_ids: BTreeMap<_, _> = SecurityGroupRole::ALL
        .iter()
        .map(|&r| Some((r, observed.security_group(r)?.id.clone())))
        .collect::<Option<_>>()?;
    let nat_gateways = desired
        .nat_gateways
        .iter()
        .map(|spec| {
            let nat = observed.nat_gateway(&spec.key).filter(|n| n.state == NatGatewayState::Available)?;
            let address = observed.nat_address(&spec.address.key)?;
            Some(NatGatewayOutputs {
                id: nat.id.clone(),
                zone: desired.subnets[&spec.subnet].availability_zone.clone(),
                allocation_id: address.allocation_id.clone(),
                public_ip: address.public_ip.clone(),
            })
        })
        .collect::<Option<_>>()?;
    Some(NetworkOutputs {
        vpc_id: observed.vpc()?.id.clone(),
        internet_gateway_id: observed.internet_gateway()?.id.clone(),
        subnet_ids,
        route_table_ids,
        nat_gateways,
        security_group_ids,
    })
}

#[cfg(test)]
mod tests;
