//! Account quotas, checked before the first change: a sixth VPC or Elastic IP in a region
//! of a default account is refused by AWS half-way through a deploy, after other
//! resources were made. Each limit the plan would cross becomes a conflict of the plan,
//! so `plan` shows it and `deploy` refuses before any change.

use aws_sdk_ec2::types::{Filter, NatGatewayState};
use three_tier_core::{AwsContext, AwsResultExt, Config, Conflict, Plan, Result, Tier};

use crate::StackStep;

/// One quota the stack needs room in: its name in Service Quotas, AWS's default, and
/// how many of them the plan creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quota {
    tier: Tier,
    name: &'static str,
    default: usize,
}

const VPCS: Quota = Quota { tier: Tier::Network, name: "VPCs per Region", default: 5 };
const ADDRESSES: Quota = Quota { tier: Tier::Network, name: "EC2-VPC Elastic IPs", default: 5 };
const NAT_GATEWAYS: Quota = Quota { tier: Tier::Network, name: "NAT gateways per Availability Zone", default: 5 };
const LOAD_BALANCERS: Quota = Quota { tier: Tier::Alb, name: "Application Load Balancers per Region", default: 50 };
const DB_INSTANCES: Quota = Quota { tier: Tier::Database, name: "DB instances", default: 40 };

/// Adds a conflict to the tier's plan for each quota that its creates would cross.
pub(crate) async fn check(ctx: &AwsContext, config: &Config, plans: &mut [Plan<StackStep>]) -> Result<()> {
    let creates = |wanted: &dyn Fn(&StackStep) -> bool| {
        plans.iter().flat_map(|plan| &plan.steps).filter(|step| wanted(step)).count()
    };
    use network::NetworkStep;
    let needs = [
        (VPCS, creates(&|s| matches!(s, StackStep::Network(NetworkStep::CreateVpc { .. })))),
        (ADDRESSES, creates(&|s| matches!(s, StackStep::Network(NetworkStep::AllocateAddress { .. })))),
        (NAT_GATEWAYS, creates(&|s| matches!(s, StackStep::Network(NetworkStep::CreateNatGateway { .. })))),
        (LOAD_BALANCERS, creates(&|s| matches!(s, StackStep::Alb(alb::AlbStep::CreateLoadBalancer { .. })))),
        (DB_INSTANCES, creates(&|s| matches!(s, StackStep::Database(database::DatabaseStep::CreateDbInstance { .. })))),
    ];
    for (quota, wanted) in needs.into_iter().filter(|(_, wanted)| *wanted > 0) {
        let (used, limit) = usage(ctx, config, quota).await?;
        if used + wanted > limit {
            let conflict = Conflict {
                resource: format!("quota \"{}\" in {}", quota.name, config.stack.region),
                problem: format!("has {used} of {limit} in use, and the stack needs {wanted} more"),
                fix: format!(
                    "free one (`cargo xtask stacks` lists this tool's stacks; `cargo xtask teardown --stack NAME` removes \
                     one), or request a higher \"{}\" in the Service Quotas console",
                    quota.name
                ),
            };
            if let Some(plan) = plans.iter_mut().find(|plan| plan.tier == quota.tier) {
                plan.conflicts.push(conflict);
            }
        }
    }
    Ok(())
}

/// How many of the quota's resources the account uses in the region, and its limit: from
/// the account where an API reports it, else AWS's default.
async fn usage(ctx: &AwsContext, config: &Config, quota: Quota) -> Result<(usize, usize)> {
    let ec2 = &ctx.ec2;
    Ok(match quota {
        VPCS => (ec2.describe_vpcs().send().await.aws("DescribeVpcs")?.vpcs().len(), quota.default),
        ADDRESSES => {
            let used = ec2.describe_addresses().send().await.aws("DescribeAddresses")?.addresses().len();
            (used, elastic_ip_limit(ctx).await?.unwrap_or(quota.default))
        }
        NAT_GATEWAYS => {
            // The stack's NAT gateway goes in the first ALB subnet's zone.
            let zone = &config.network.subnets.alb_a.availability_zone;
            let answer = ec2.describe_nat_gateways().send().await.aws("DescribeNatGateways")?;
            let zone_subnets = ec2
                .describe_subnets()
                .filters(Filter::builder().name("availability-zone").values(zone).build())
                .send()
                .await
                .aws("DescribeSubnets")?;
            let in_zone: Vec<&str> = zone_subnets.subnets().iter().filter_map(|s| s.subnet_id()).collect();
            let live = answer.nat_gateways().iter().filter(|n| {
                matches!(n.state(), Some(NatGatewayState::Pending | NatGatewayState::Available))
                    && n.subnet_id().is_some_and(|s| in_zone.contains(&s))
            });
            (live.count(), quota.default)
        }
        LOAD_BALANCERS => {
            let answer = ctx.elbv2.describe_load_balancers().send().await.aws("DescribeLoadBalancers")?;
            (answer.load_balancers().len(), quota.default)
        }
        _ => (
            ctx.rds.describe_db_instances().send().await.aws("DescribeDBInstances")?.db_instances().len(),
            quota.default,
        ),
    })
}

/// The account's Elastic IP limit, which EC2 reports (`vpc-max-elastic-ips`).
async fn elastic_ip_limit(ctx: &AwsContext) -> Result<Option<usize>> {
    let answer = ctx
        .ec2
        .describe_account_attributes()
        .attribute_names(aws_sdk_ec2::types::AccountAttributeName::from("vpc-max-elastic-ips"))
        .send()
        .await
        .aws("DescribeAccountAttributes")?;
    Ok(answer
        .account_attributes()
        .iter()
        .flat_map(|a| a.attribute_values())
        .find_map(|v| v.attribute_value()?.parse().ok()))
}
