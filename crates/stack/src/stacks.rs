//! `cargo xtask stacks`: every stack of this tool in a region, found by its tags. The
//! costly failure of a tutorial stack is a NAT gateway forgotten for a month: this is how
//! a person finds one.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{Filter, InstanceStateName, NatGatewayState, Tag};
use aws_sdk_elasticloadbalancingv2::types::{LoadBalancer, LoadBalancerSchemeEnum};
use serde::Serialize;
use three_tier_core::calls::declared;
use three_tier_core::error::Answer;
use three_tier_core::lock;
use three_tier_core::naming::{STACK_TAG, TIER_TAG};
use three_tier_core::{AwsContext, AwsResultExt, Result, Tier};

use crate::cost::{self, DatabaseInstance, Estimate, Running, Volume};

/// One stack the region holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StackSummary {
    pub name: String,
    /// The tiers of which something exists.
    pub tiers: BTreeSet<Tier>,
    /// When its oldest dated resource (NAT gateway, instance, load balancer, database) was
    /// created, in seconds since the Unix epoch.
    pub since: Option<i64>,
    /// Who holds its lock, if a run does.
    pub locked_by: Option<String>,
    /// What of it is billed while it runs.
    pub running: Running,
    /// What that costs a month.
    pub cost: Estimate,
}

/// The calls listing stacks makes, as IAM names them (the lock's declare theirs).
pub const READS: &[&str] = &[
    "ec2:DescribeRegions",
    "ec2:DescribeTags",
    "ec2:DescribeVpcs",
    "ec2:DescribeAddresses",
    "ec2:DescribeNatGateways",
    "ec2:DescribeInstances",
    "ec2:DescribeVolumes",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeTags",
    "rds:DescribeDBInstances",
];

/// The regions the account has enabled (the opt-in ones it has not are left out).
pub async fn enabled_regions(ctx: &AwsContext) -> Result<Vec<String>> {
    let answer = declared(READS, ctx.ec2.describe_regions().send()).await.aws("DescribeRegions")?;
    let mut regions: Vec<String> = answer.regions().iter().filter_map(|r| r.region_name().map(str::to_owned)).collect();
    regions.sort();
    Ok(regions)
}

/// One resource of a stack, as the region's describe calls list it.
struct Found {
    stack: String,
    tier: Option<Tier>,
    /// Seconds since the Unix epoch, where AWS dates it.
    created: Option<i64>,
    /// What it adds to the stack's bill.
    bills: Running,
}

impl Found {
    fn new(stack: &str, tier: Option<Tier>, created: Option<i64>, bills: Running) -> Found {
        Found { stack: stack.to_owned(), tier, created, bills }
    }
}

/// Every stack whose tags the tool finds in the context's region, by name.
pub async fn stacks(ctx: &AwsContext) -> Result<Vec<StackSummary>> {
    let found = ctx.both(ec2_resources(ctx), ctx.both(load_balancers(ctx), databases(ctx)));
    let (ec2, (balancers, databases)) = declared(READS, found).await?;
    // By stack: its tiers, its oldest date, and what it runs.
    let mut found: BTreeMap<String, (BTreeSet<Tier>, Option<i64>, Running)> = BTreeMap::new();
    for resource in ec2.into_iter().chain(balancers).chain(databases) {
        let (tiers, since, running) = found.entry(resource.stack).or_default();
        tiers.extend(resource.tier);
        if let Some(created) = resource.created {
            *since = Some(since.map_or(created, |since| since.min(created)));
        }
        running.add(resource.bills);
    }
    let mut summaries = Vec::new();
    for (name, (tiers, since, running)) in found {
        // Another stack's lock may be out of this identity's reach: its column says so, and
        // the rest of the list stands.
        let locked_by = match lock::read(ctx, &name).await {
            Ok(lock) => lock.describe(),
            Err(err) if err.is(Answer::AccessDenied) => Some("unknown (ssm:GetParameter is denied)".into()),
            Err(err) => return Err(err),
        };
        let cost = cost::estimate(&ctx.region, &running);
        summaries.push(StackSummary { name, tiers, since, locked_by, running, cost });
    }
    Ok(summaries)
}

/// The stack named `name` in the context's region, if anything of it exists.
pub async fn stack_named(ctx: &AwsContext, name: &str) -> Result<Option<StackSummary>> {
    Ok(stacks(ctx).await?.into_iter().find(|summary| summary.name == name))
}

/// Every stack in each of `contexts`' regions, all regions at once: each region's own
/// answer, so one region that refuses (an organisation's policy, say) hides no other.
pub async fn stacks_in_regions(contexts: Vec<AwsContext>) -> Vec<(String, Result<Vec<StackSummary>>)> {
    let mut reads = tokio::task::JoinSet::new();
    for ctx in contexts {
        reads.spawn(async move { (ctx.region.clone(), stacks(&ctx).await) });
    }
    let mut found = Vec::new();
    while let Some(read) = reads.join_next().await {
        found.push(read.expect("a region's read does not panic"));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// The stacks' VPCs, Elastic IPs (which outlive a VPC, and are billed), NAT gateways,
/// instances and volumes that are not gone. Each is read with its own describe, which
/// lists only what exists (AWS deletes a resource's tags with it; moto 5.2's DescribeTags
/// keeps them).
async fn ec2_resources(ctx: &AwsContext) -> Result<Vec<Found>> {
    let ec2 = &ctx.ec2;
    let tagged = || Filter::builder().name("tag-key").values(STACK_TAG).build();
    let owner = |tags: &[Tag]| {
        let value = |key: &str| tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value());
        Some((value(STACK_TAG)?.to_owned(), value(TIER_TAG).and_then(Tier::from_tag)))
    };
    let mut found = Vec::new();
    // Every page: an account that ran many stacks holds many terminated instances, and
    // the live one may be on a later page than the first.
    let vpcs = ec2.describe_vpcs().filters(tagged()).into_paginator().items().send();
    let vpcs = vpcs.try_collect().await.aws("DescribeVpcs")?;
    for (stack, tier) in vpcs.iter().filter_map(|v| owner(v.tags())) {
        found.push(Found::new(&stack, tier, None, Running::default()));
    }
    let addresses = ec2.describe_addresses().filters(tagged()).send().await.aws("DescribeAddresses")?;
    for (stack, tier) in addresses.addresses().iter().filter_map(|a| owner(a.tags())) {
        found.push(Found::new(&stack, tier, None, Running { public_ipv4: 1, ..Running::default() }));
    }
    // Tags are checked here: the emulator (moto 5.2) ignores tag filters on this call.
    let nats = ec2.describe_nat_gateways().filter(tagged()).into_paginator().items().send();
    let nats = nats.try_collect().await.aws("DescribeNatGateways")?;
    for nat in nats.iter().filter(|n| n.state() != Some(&NatGatewayState::Deleted)) {
        if let Some((stack, tier)) = owner(nat.tags()) {
            let bills = Running { nat_gateways: 1, ..Running::default() };
            found.push(Found::new(&stack, tier, nat.create_time().map(|t| t.secs()), bills));
        }
    }
    let reservations = ec2.describe_instances().filters(tagged()).into_paginator().items().send();
    let reservations = reservations.try_collect().await.aws("DescribeInstances")?;
    let live = reservations
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| i.state().and_then(|s| s.name()) != Some(&InstanceStateName::Terminated));
    for instance in live {
        if let Some((stack, tier)) = owner(instance.tags()) {
            // A stopped instance bills its volumes only.
            let runs = instance.state().and_then(|s| s.name()) != Some(&InstanceStateName::Stopped);
            let instances = instance.instance_type().filter(|_| runs).map(|t| t.as_str().to_owned());
            let bills = Running { instances: instances.into_iter().collect(), ..Running::default() };
            found.push(Found::new(&stack, tier, instance.launch_time().map(|t| t.secs()), bills));
        }
    }
    let volumes = ec2.describe_volumes().filters(tagged()).into_paginator().items().send();
    let volumes = volumes.try_collect().await.aws("DescribeVolumes")?;
    for volume in &volumes {
        if let Some((stack, tier)) = owner(volume.tags()) {
            let volume_type = volume.volume_type().map(|t| t.as_str().to_owned()).unwrap_or_default();
            let gib = u32::try_from(volume.size().unwrap_or_default()).unwrap_or_default();
            let bills = Running { volumes: vec![Volume { volume_type, gib }], ..Running::default() };
            found.push(Found::new(&stack, tier, None, bills));
        }
    }
    Ok(found)
}

/// The stacks' load balancers, each with a public address per zone when internet-facing.
async fn load_balancers(ctx: &AwsContext) -> Result<Vec<Found>> {
    let pages = ctx.elbv2.describe_load_balancers().into_paginator().items().send();
    let answer = pages.try_collect().await.aws("DescribeLoadBalancers")?;
    let balancers: BTreeMap<&str, &LoadBalancer> =
        answer.iter().filter_map(|lb| Some((lb.load_balancer_arn()?, lb))).collect();
    let arns: Vec<String> = balancers.keys().map(|arn| (*arn).to_owned()).collect();
    let mut found = Vec::new();
    for chunk in arns.chunks(20) {
        let tags =
            ctx.elbv2.describe_tags().set_resource_arns(Some(chunk.to_vec())).send().await.aws("DescribeTags")?;
        for description in tags.tag_descriptions() {
            let stack = description.tags().iter().find(|t| t.key() == Some(STACK_TAG)).and_then(|t| t.value());
            let balancer = description.resource_arn().and_then(|arn| balancers.get(arn));
            if let (Some(stack), Some(balancer)) = (stack, balancer) {
                let public = balancer.scheme() == Some(&LoadBalancerSchemeEnum::InternetFacing);
                let zones = u32::try_from(balancer.availability_zones().len()).unwrap_or_default();
                let bills =
                    Running { load_balancers: 1, public_ipv4: if public { zones } else { 0 }, ..Running::default() };
                found.push(Found::new(stack, Some(Tier::Alb), balancer.created_time().map(|t| t.secs()), bills));
            }
        }
    }
    Ok(found)
}

/// The stacks' RDS instances.
async fn databases(ctx: &AwsContext) -> Result<Vec<Found>> {
    let pages = ctx.rds.describe_db_instances().into_paginator().items().send();
    let answer = pages.try_collect().await.aws("DescribeDBInstances")?;
    Ok(answer
        .iter()
        .filter_map(|db| {
            let stack = db.tag_list().iter().find(|t| t.key() == Some(STACK_TAG))?.value()?;
            let bills = Running {
                databases: vec![DatabaseInstance {
                    class: db.db_instance_class().unwrap_or_default().to_owned(),
                    engine: db.engine().unwrap_or_default().to_owned(),
                    storage_type: db.storage_type().unwrap_or_default().to_owned(),
                    gib: u32::try_from(db.allocated_storage().unwrap_or_default()).unwrap_or_default(),
                    multi_az: db.multi_az().unwrap_or_default(),
                }],
                secrets: u32::from(db.master_user_secret().is_some()),
                ..Running::default()
            };
            Some(Found::new(stack, Some(Tier::Database), db.instance_create_time().map(|t| t.secs()), bills))
        })
        .collect())
}
