//! `cargo xtask stacks`: every stack of this tool in a region, found by its tags. The
//! costly failure of a tutorial stack is a NAT gateway forgotten for a month: this is how
//! a person finds one.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{Filter, InstanceStateName, NatGatewayState, Tag};
use serde::Serialize;
use three_tier_core::lock;
use three_tier_core::naming::{STACK_TAG, TIER_TAG};
use three_tier_core::{AwsContext, AwsResultExt, Result, Tier};

/// One stack the region holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackSummary {
    pub name: String,
    /// The tiers of which something exists.
    pub tiers: BTreeSet<Tier>,
    /// When its oldest dated resource (NAT gateway, instance, load balancer, database) was
    /// created, in seconds since the Unix epoch.
    pub since: Option<i64>,
    /// Who holds its lock, if a run does.
    pub locked_by: Option<String>,
}

/// Every stack whose tags the tool finds in the context's region, by name.
pub async fn stacks(ctx: &AwsContext) -> Result<Vec<StackSummary>> {
    let mut found: BTreeMap<String, StackSummary> = BTreeMap::new();
    let mut note = |stack: &str, tier: Option<Tier>, created: Option<i64>| {
        let summary = found.entry(stack.to_owned()).or_insert_with(|| StackSummary {
            name: stack.to_owned(),
            tiers: BTreeSet::new(),
            since: None,
            locked_by: None,
        });
        summary.tiers.extend(tier);
        if let Some(created) = created {
            summary.since = Some(summary.since.map_or(created, |since| since.min(created)));
        }
    };
    let (ec2, (balancers, databases)) =
        ctx.both(ec2_resources(ctx), ctx.both(load_balancers(ctx), databases(ctx))).await?;
    for (stack, tier, created) in ec2.into_iter().chain(balancers).chain(databases) {
        note(&stack, tier, created);
    }
    let mut summaries: Vec<StackSummary> = found.into_values().collect();
    for summary in &mut summaries {
        summary.locked_by = lock::read(ctx, &summary.name).await?.describe();
    }
    Ok(summaries)
}

/// The stacks' VPCs, Elastic IPs (which outlive a VPC, and are billed), NAT gateways and
/// instances that are not gone: (stack, tier, created, where AWS dates it). Each is read
/// with its own describe, which lists only what exists (AWS deletes a resource's tags
/// with it; moto 5.2's DescribeTags keeps them).
async fn ec2_resources(ctx: &AwsContext) -> Result<Vec<(String, Option<Tier>, Option<i64>)>> {
    let ec2 = &ctx.ec2;
    let tagged = || Filter::builder().name("tag-key").values(STACK_TAG).build();
    let owner = |tags: &[Tag]| {
        let value = |key: &str| tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value());
        Some((value(STACK_TAG)?.to_owned(), value(TIER_TAG).and_then(Tier::from_tag)))
    };
    let mut found = Vec::new();
    let vpcs = ec2.describe_vpcs().filters(tagged()).send().await.aws("DescribeVpcs")?;
    found.extend(vpcs.vpcs().iter().filter_map(|v| owner(v.tags())).map(|(stack, tier)| (stack, tier, None)));
    let addresses = ec2.describe_addresses().filters(tagged()).send().await.aws("DescribeAddresses")?;
    found.extend(addresses.addresses().iter().filter_map(|a| owner(a.tags())).map(|(stack, tier)| (stack, tier, None)));
    // Tags are checked here: the emulator (moto 5.2) ignores tag filters on this call.
    let nats = ec2.describe_nat_gateways().filter(tagged()).send().await.aws("DescribeNatGateways")?;
    for nat in nats.nat_gateways().iter().filter(|n| n.state() != Some(&NatGatewayState::Deleted)) {
        if let Some((stack, tier)) = owner(nat.tags()) {
            found.push((stack, tier, nat.create_time().map(|t| t.secs())));
        }
    }
    let instances = ec2.describe_instances().filters(tagged()).send().await.aws("DescribeInstances")?;
    let live = instances
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| i.state().and_then(|s| s.name()) != Some(&InstanceStateName::Terminated));
    for instance in live {
        if let Some((stack, tier)) = owner(instance.tags()) {
            found.push((stack, tier, instance.launch_time().map(|t| t.secs())));
        }
    }
    Ok(found)
}

/// The stacks' load balancers: (stack, tier, created).
async fn load_balancers(ctx: &AwsContext) -> Result<Vec<(String, Option<Tier>, Option<i64>)>> {
    let answer = ctx.elbv2.describe_load_balancers().send().await.aws("DescribeLoadBalancers")?;
    let created: BTreeMap<String, Option<i64>> = answer
        .load_balancers()
        .iter()
        .filter_map(|lb| Some((lb.load_balancer_arn()?.to_owned(), lb.created_time().map(|t| t.secs()))))
        .collect();
    let arns: Vec<String> = created.keys().cloned().collect();
    let mut found = Vec::new();
    for chunk in arns.chunks(20) {
        let tags =
            ctx.elbv2.describe_tags().set_resource_arns(Some(chunk.to_vec())).send().await.aws("DescribeTags")?;
        for description in tags.tag_descriptions() {
            let stack = description.tags().iter().find(|t| t.key() == Some(STACK_TAG)).and_then(|t| t.value());
            if let (Some(stack), Some(arn)) = (stack, description.resource_arn()) {
                found.push((stack.to_owned(), Some(Tier::Alb), created.get(arn).copied().flatten()));
            }
        }
    }
    Ok(found)
}

/// The stacks' RDS instances: (stack, tier, created).
async fn databases(ctx: &AwsContext) -> Result<Vec<(String, Option<Tier>, Option<i64>)>> {
    let answer = ctx.rds.describe_db_instances().send().await.aws("DescribeDBInstances")?;
    Ok(answer
        .db_instances()
        .iter()
        .filter_map(|db| {
            let stack = db.tag_list().iter().find(|t| t.key() == Some(STACK_TAG))?.value()?;
            Some((stack.to_owned(), Some(Tier::Database), db.instance_create_time().map(|t| t.secs())))
        })
        .collect())
}
