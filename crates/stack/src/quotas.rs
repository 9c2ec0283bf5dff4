//! Account quotas, checked before the first change: a sixth VPC or Elastic IP in a region
//! of a default account is refused by AWS half-way through a deploy, after other
//! resources were made. Each limit the plan would cross becomes a conflict of the plan,
//! so `plan` shows it and `deploy` refuses before any change.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, NatGatewayState};
use aws_sdk_iam::types::SummaryKeyType;
use three_tier_core::error::Answer;
use three_tier_core::{AwsContext, AwsResultExt, Config, Conflict, Plan, Result, Tier};

use crate::{Findings, StackStep};

/// One quota the stack needs room in: its name in Service Quotas, where it counts, AWS's
/// default, and which tier's plan creates what it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quota {
    kind: Kind,
    tier: Tier,
    name: &'static str,
    /// "in <region>", or the whole account for IAM.
    regional: bool,
    default: usize,
    /// Its service and quota codes in Service Quotas, which reports the value applied to
    /// the account (raised or not), where the service's own API does not.
    codes: Option<(&'static str, &'static str)>,
}

/// What a quota counts, and so where its usage and limit are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Vpcs,
    InternetGateways,
    Addresses,
    NatGateways,
    LoadBalancers,
    DbInstances,
    Roles,
    InstanceProfiles,
    /// vCPUs of running On-Demand instances of the standard families.
    StandardVcpus,
}

const VPCS: Quota = Quota {
    kind: Kind::Vpcs,
    tier: Tier::Network,
    name: "VPCs per Region",
    regional: true,
    default: 5,
    codes: Some(("vpc", "L-F678F1CE")),
};
const INTERNET_GATEWAYS: Quota = Quota {
    kind: Kind::InternetGateways,
    tier: Tier::Network,
    name: "Internet gateways per Region",
    regional: true,
    default: 5,
    codes: Some(("vpc", "L-A4707A72")),
};
const ADDRESSES: Quota = Quota {
    kind: Kind::Addresses,
    tier: Tier::Network,
    name: "EC2-VPC Elastic IPs",
    regional: true,
    default: 5,
    codes: None,
};
const NAT_GATEWAYS: Quota = Quota {
    kind: Kind::NatGateways,
    tier: Tier::Network,
    name: "NAT gateways per Availability Zone",
    regional: true,
    default: 5,
    codes: Some(("vpc", "L-FE5A380F")),
};
const LOAD_BALANCERS: Quota = Quota {
    kind: Kind::LoadBalancers,
    tier: Tier::Alb,
    name: "Application Load Balancers per Region",
    regional: true,
    default: 50,
    codes: None,
};
const DB_INSTANCES: Quota = Quota {
    kind: Kind::DbInstances,
    tier: Tier::Database,
    name: "DB instances",
    regional: true,
    default: 40,
    codes: None,
};
const ROLES: Quota = Quota {
    kind: Kind::Roles,
    tier: Tier::Compute,
    name: "Roles per account",
    regional: false,
    default: 1000,
    codes: None,
};
const INSTANCE_PROFILES: Quota = Quota {
    kind: Kind::InstanceProfiles,
    tier: Tier::Compute,
    name: "Instance profiles per account",
    regional: false,
    default: 1000,
    codes: None,
};

const STANDARD_VCPUS: Quota = Quota {
    kind: Kind::StandardVcpus,
    tier: Tier::Compute,
    name: "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
    regional: true,
    // In vCPUs; new accounts start low.
    default: 5,
    codes: Some(("ec2", "L-1216C47A")),
};

/// The calls `check` makes, as IAM names them: what the account holds, and its limits.
pub const READS: &[&str] = &[
    "ec2:DescribeVpcs",
    "ec2:DescribeInternetGateways",
    "ec2:DescribeNatGateways",
    "ec2:DescribeSubnets",
    "ec2:DescribeAddresses",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeAccountAttributes",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeAccountLimits",
    "rds:DescribeDBInstances",
    "rds:DescribeAccountAttributes",
    "iam:GetAccountSummary",
    "servicequotas:GetServiceQuota",
];

/// A conflict for the tier's plan for each quota that its creates would cross, and a note
/// for each limit that could not be read (AWS's default then stands). Every quota is read
/// at once.
pub(crate) async fn check(ctx: &AwsContext, config: &Config, plans: &[Plan<StackStep>]) -> Result<Findings> {
    let creates = |wanted: &dyn Fn(&StackStep) -> bool| {
        plans.iter().flat_map(|plan| &plan.steps).filter(|step| wanted(step)).count()
    };
    use compute::ComputeStep;
    use network::NetworkStep;
    let needs = [
        (VPCS, creates(&|s| matches!(s, StackStep::Network(NetworkStep::CreateVpc { .. })))),
        (INTERNET_GATEWAYS, creates(&|s| matches!(s, StackStep::Network(NetworkStep::CreateInternetGateway { .. })))),
        (ADDRESSES, creates(&|s| matches!(s, StackStep::Network(NetworkStep::AllocateAddress { .. })))),
        (NAT_GATEWAYS, creates(&|s| matches!(s, StackStep::Network(NetworkStep::CreateNatGateway { .. })))),
        (LOAD_BALANCERS, creates(&|s| matches!(s, StackStep::Alb(alb::AlbStep::CreateLoadBalancer { .. })))),
        (DB_INSTANCES, creates(&|s| matches!(s, StackStep::Database(database::DatabaseStep::CreateDbInstance { .. })))),
        (ROLES, creates(&|s| matches!(s, StackStep::Compute(ComputeStep::CreateRole { .. })))),
        (INSTANCE_PROFILES, creates(&|s| matches!(s, StackStep::Compute(ComputeStep::CreateInstanceProfile { .. })))),
        (STANDARD_VCPUS, creates(&|s| matches!(s, StackStep::Compute(ComputeStep::RunInstance { .. })))),
    ];
    let checks = needs
        .into_iter()
        .filter(|(_, wanted)| *wanted > 0)
        .map(|(quota, wanted)| Box::pin(check_one(ctx, config, plans, quota, wanted)) as _)
        .collect();
    Ok(ctx.all(checks).await?.into_iter().collect())
}

/// Whether `wanted` more of what `quota` counts fit, in each scope it is counted in.
async fn check_one(
    ctx: &AwsContext,
    config: &Config,
    plans: &[Plan<StackStep>],
    quota: Quota,
    mut wanted: usize,
) -> Result<Findings> {
    let mut found = Findings::default();
    if quota.kind == Kind::StandardVcpus {
        // Counted in vCPUs, of a standard family only. A type EC2 does not know has no
        // count: the offerings check refuses it.
        let instance_type = &config.compute.instance_type.to_string();
        let vcpus = match vcpus(ctx, std::slice::from_ref(instance_type)).await {
            Ok(vcpus) => vcpus.get(instance_type).copied().unwrap_or_default(),
            Err(err) if err.code().is_some_and(|code| code.starts_with("InvalidInstanceType")) => 0,
            Err(err) => return Err(err),
        };
        wanted *= if is_standard(instance_type) { vcpus } else { 0 };
        if wanted == 0 {
            return Ok(found);
        }
    }
    // Where it is counted: the region (or the account), or for NAT gateways the zone of
    // each new one, against that zone's.
    let scopes = match quota.kind {
        Kind::NatGateways => new_nat_gateway_zones(config, plans).into_iter().collect(),
        _ => vec![(config.stack.region.clone(), wanted)],
    };
    for (scope, wanted) in scopes {
        let (used, limit) = usage(ctx, quota, &scope, &mut found.notes).await?;
        found.conflicts.extend(crossed(quota, &scope, used, limit, wanted).map(|conflict| (quota.tier, conflict)));
    }
    Ok(found)
}

/// The zones the plans' new NAT gateways go in, with how many in each.
fn new_nat_gateway_zones(config: &Config, plans: &[Plan<StackStep>]) -> BTreeMap<String, usize> {
    let desired = network::desired(config);
    let mut zones = BTreeMap::new();
    for step in plans.iter().flat_map(|plan| &plan.steps) {
        if let StackStep::Network(network::NetworkStep::CreateNatGateway { key, .. }) = step
            && let Some(spec) = desired.nat_gateways.iter().find(|n| n.key == *key)
        {
            *zones.entry(desired.subnets[&spec.subnet].availability_zone.clone()).or_default() += 1;
        }
    }
    zones
}

/// The account's NAT gateways in `zone`. AWS counts a gateway until it is deleted: one
/// `deleting` (a teardown just run) still holds its place.
async fn nat_gateways_in(ctx: &AwsContext, zone: &str) -> Result<usize> {
    let ec2 = &ctx.ec2;
    let gateways = async {
        let pages = ec2.describe_nat_gateways().into_paginator().items().send();
        pages.try_collect().await.aws("DescribeNatGateways")
    };
    let zone_subnets = async {
        let in_zone = Filter::builder().name("availability-zone").values(zone).build();
        let pages = ec2.describe_subnets().filters(in_zone).into_paginator().items().send();
        pages.try_collect().await.aws("DescribeSubnets")
    };
    let (gateways, zone_subnets) = ctx.both(gateways, zone_subnets).await?;
    let in_zone: Vec<&str> = zone_subnets.iter().filter_map(|s| s.subnet_id()).collect();
    let live = gateways.iter().filter(|n| {
        matches!(n.state(), Some(NatGatewayState::Pending | NatGatewayState::Available | NatGatewayState::Deleting))
            && n.subnet_id().is_some_and(|s| in_zone.contains(&s))
    });
    Ok(live.count())
}

/// The conflict when `wanted` more would take `used` past `limit` in `scope`.
fn crossed(quota: Quota, scope: &str, used: usize, limit: usize, wanted: usize) -> Option<Conflict> {
    (used + wanted > limit).then(|| Conflict {
        resource: if quota.regional {
            format!("quota \"{}\" in {scope}", quota.name)
        } else {
            format!("quota \"{}\" of the account", quota.name)
        },
        problem: format!("has {used} of {limit} in use, and the stack needs {wanted} more"),
        fix: format!(
            "free one (`cargo xtask stacks` lists this tool's stacks; `cargo xtask teardown --stack NAME` removes \
             one), or request a higher \"{}\" in the Service Quotas console",
            quota.name
        ),
    })
}

/// How many of the quota's resources the account uses (in the region, account-wide for
/// IAM, in the zone `scope` names for NAT gateways), and its limit: from the account where
/// an API reports it, else AWS's default. The count and the limit are read at once.
async fn usage(ctx: &AwsContext, quota: Quota, scope: &str, notes: &mut Vec<String>) -> Result<(usize, usize)> {
    let ((used, reported_with_count), reported) =
        ctx.both(count(ctx, quota, scope), async { Ok(limit(ctx, quota).await) }).await?;
    let reported = reported.unwrap_or_else(|note| {
        notes.push(note);
        None
    });
    Ok((used, reported_with_count.or(reported).unwrap_or(quota.default)))
}

/// How many of the quota's resources the account uses in `scope`, and the limit too where
/// the same answer reports it (IAM's account summary).
async fn count(ctx: &AwsContext, quota: Quota, scope: &str) -> Result<(usize, Option<usize>)> {
    let ec2 = &ctx.ec2;
    let used = match quota.kind {
        Kind::Vpcs => {
            ec2.describe_vpcs().into_paginator().items().send().try_collect().await.aws("DescribeVpcs")?.len()
        }
        Kind::InternetGateways => {
            // Detached ones count too.
            let pages = ec2.describe_internet_gateways().into_paginator().items().send();
            pages.try_collect().await.aws("DescribeInternetGateways")?.len()
        }
        Kind::Addresses => ec2.describe_addresses().send().await.aws("DescribeAddresses")?.addresses().len(),
        Kind::NatGateways => nat_gateways_in(ctx, scope).await?,
        Kind::LoadBalancers => {
            let pages = ctx.elbv2.describe_load_balancers().into_paginator().items().send();
            let balancers = pages.try_collect().await.aws("DescribeLoadBalancers")?;
            // Network and gateway load balancers have quotas of their own.
            balancers
                .iter()
                .filter(|b| {
                    b.r#type() == Some(&aws_sdk_elasticloadbalancingv2::types::LoadBalancerTypeEnum::Application)
                })
                .count()
        }
        Kind::DbInstances => {
            // RDS answers 100 a page.
            let pages = ctx.rds.describe_db_instances().into_paginator().items().send();
            pages.try_collect().await.aws("DescribeDBInstances")?.len()
        }
        Kind::StandardVcpus => {
            let running = Filter::builder().name("instance-state-name").values("pending").values("running").build();
            let pages = ec2.describe_instances().filters(running).into_paginator().items().send();
            let reservations = pages.try_collect().await.aws("DescribeInstances")?;
            let types: Vec<String> = reservations
                .iter()
                .flat_map(|r| r.instances())
                .filter_map(|i| i.instance_type().map(|t| t.as_str().to_owned()))
                .filter(|t| is_standard(t))
                .collect();
            let mut distinct = types.clone();
            distinct.sort();
            distinct.dedup();
            let per_type = vcpus(ctx, &distinct).await?;
            types.iter().map(|t| per_type.get(t).copied().unwrap_or_default()).sum()
        }
        Kind::Roles | Kind::InstanceProfiles => {
            let summary = ctx.iam.get_account_summary().send().await.aws("GetAccountSummary")?;
            let map = summary.summary_map().cloned().unwrap_or_default();
            let value = |key: SummaryKeyType| map.get(&key).and_then(|v| usize::try_from(*v).ok());
            let (used, limit) = if quota.kind == Kind::Roles {
                (SummaryKeyType::Roles, SummaryKeyType::RolesQuota)
            } else {
                (SummaryKeyType::InstanceProfiles, SummaryKeyType::InstanceProfilesQuota)
            };
            return Ok((value(used).unwrap_or_default(), value(limit)));
        }
    };
    Ok((used, None))
}

/// The quota's limit as the account reports it: `Ok(None)` where nothing reports it,
/// `Err` with a note where it could not be read.
async fn limit(ctx: &AwsContext, quota: Quota) -> std::result::Result<Option<usize>, String> {
    match quota.kind {
        Kind::Addresses => Ok(unless_unreadable(elastic_ip_limit(ctx).await, quota)?),
        Kind::LoadBalancers => {
            let limits = ctx.elbv2.describe_account_limits().send().await.aws("DescribeAccountLimits");
            Ok(unless_unreadable(limits, quota)?.limits().iter().find_map(|limit| {
                (limit.name() == Some("application-load-balancers")).then(|| limit.max()?.parse().ok())?
            }))
        }
        Kind::DbInstances => {
            let quotas = ctx.rds.describe_account_attributes().send().await.aws("DescribeAccountAttributes");
            Ok(unless_unreadable(quotas, quota)?.account_quotas().iter().find_map(|q| {
                (q.account_quota_name() == Some("DBInstances")).then(|| usize::try_from(q.max()?).ok())?
            }))
        }
        // Service Quotas' value, where it has the quota (IAM's limits come with its counts).
        _ => applied(ctx, quota).await,
    }
}

/// Whether an instance type is of a family the standard On-Demand vCPU quota counts (A,
/// C, D, H, I, M, R, T, Z; not `inf`, `g`, `p`, `x` and the others of their own quotas).
fn is_standard(instance_type: &str) -> bool {
    let family: String = instance_type.chars().take_while(char::is_ascii_lowercase).collect();
    matches!(family.as_str(), "a" | "c" | "d" | "h" | "i" | "im" | "is" | "m" | "r" | "t" | "z")
}

/// The vCPUs of each of `types`, as EC2 describes them (100 types a call).
async fn vcpus(ctx: &AwsContext, types: &[String]) -> Result<std::collections::BTreeMap<String, usize>> {
    let mut vcpus = std::collections::BTreeMap::new();
    for batch in types.chunks(100) {
        let types = batch.iter().map(|t| aws_sdk_ec2::types::InstanceType::from(t.as_str())).collect();
        let pages = ctx.ec2.describe_instance_types().set_instance_types(Some(types)).into_paginator().items().send();
        for described in pages.try_collect().await.aws("DescribeInstanceTypes")? {
            if let (Some(name), Some(count)) =
                (described.instance_type(), described.v_cpu_info().and_then(|v| v.default_v_cpus()))
            {
                vcpus.insert(name.as_str().to_owned(), usize::try_from(count).unwrap_or_default());
            }
        }
    }
    Ok(vcpus)
}

/// The quota's value applied to the account, as Service Quotas reports it: a raised
/// quota is seen.
async fn applied(ctx: &AwsContext, quota: Quota) -> std::result::Result<Option<usize>, String> {
    let Some((service, code)) = quota.codes else { return Ok(None) };
    let answer =
        ctx.quotas.get_service_quota().service_code(service).quota_code(code).send().await.aws("GetServiceQuota");
    let value = unless_unreadable(answer, quota)?.quota().and_then(|q| q.value());
    // Quotas are whole numbers that Service Quotas reports as doubles.
    Ok(value.map(|value| value.max(0.0).round() as usize))
}

/// An account's limit that could not be read: the note that says so, and that AWS's
/// default stands. Whatever the reason (an identity without that one permission, an
/// endpoint that lacks the call, a 5xx after the SDK's retries), a limit is an estimate
/// AWS enforces anyway: it never stops the stack.
fn unless_unreadable<T>(answer: Result<T>, quota: Quota) -> std::result::Result<T, String> {
    answer.map_err(|err| {
        let why = if err.is(Answer::AccessDenied) { "access denied".to_owned() } else { first_line(&err) };
        format!(
            "quota \"{}\": the account's limit could not be read ({why}); AWS's default of {} is assumed",
            quota.name, quota.default
        )
    })
}

fn first_line(err: &three_tier_core::Error) -> String {
    err.to_string().lines().next().unwrap_or_default().to_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_is_crossed_only_past_its_limit_and_an_account_quota_says_so() {
        assert_eq!(crossed(ROLES, "eu-west-1", 998, 1000, 1), None);
        assert_eq!(crossed(ROLES, "eu-west-1", 999, 1000, 1), None);
        let full = crossed(ROLES, "eu-west-1", 1000, 1000, 1).unwrap();
        assert_eq!(full.resource, "quota \"Roles per account\" of the account");
        assert_eq!(full.problem, "has 1000 of 1000 in use, and the stack needs 1 more");
        let vpcs = crossed(VPCS, "eu-west-1", 5, 5, 1).unwrap();
        assert_eq!(vpcs.resource, "quota \"VPCs per Region\" in eu-west-1");
        assert!(vpcs.fix.contains("Service Quotas"), "{vpcs:?}");
    }

    #[test]
    fn the_standard_vcpu_quota_counts_its_families_only() {
        for standard in ["t3.micro", "m5.large", "c7g.xlarge", "r6i.2xlarge", "i4i.large", "z1d.large", "a1.medium"] {
            assert!(is_standard(standard), "{standard}");
        }
        for other in ["inf1.xlarge", "g5.xlarge", "p4d.24xlarge", "x2idn.16xlarge", "f1.2xlarge", "trn1.2xlarge"] {
            assert!(!is_standard(other), "{other}");
        }
    }
}
