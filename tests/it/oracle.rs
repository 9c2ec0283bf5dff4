//! The tests' own account of what a stack holds in AWS: a describe by tag or by name of
//! every kind the stack makes, written here without the tiers' observe code, which is what
//! the tests judge. Tags are checked on each answer here, not only by filters: moto
//! ignores some tag filters (DescribeNatGateways).

use std::collections::{BTreeMap, BTreeSet};

use three_tier_core::{AwsContext, Config, Tier};

/// A resource's tags, or none for the kinds AWS does not tag.
pub type TagMap = BTreeMap<String, String>;

const STACK_TAG: &str = "three-tier:stack";

/// What a stack holds: kind → id → the resource's tags.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Holdings(pub BTreeMap<&'static str, BTreeMap<String, TagMap>>);

impl Holdings {
    fn insert(&mut self, kind: &'static str, id: impl Into<String>, tags: TagMap) {
        self.0.entry(kind).or_default().insert(id.into(), tags);
    }

    /// Of `found` (EC2 resources: each id with its tags), those tagged with `stack`.
    fn insert_ec2<'a>(
        &mut self,
        stack: &str,
        kind: &'static str,
        found: impl IntoIterator<Item = (Option<&'a str>, &'a [aws_sdk_ec2::types::Tag])>,
    ) {
        for (id, tags) in found {
            let tags = ec2_tags(tags);
            if is_ours(&tags, stack) {
                self.insert(kind, id.unwrap(), tags);
            }
        }
    }

    /// How many of each kind it holds.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        self.0.iter().map(|(kind, ids)| (*kind, ids.len())).filter(|(_, n)| *n > 0).collect()
    }

    /// Only the kinds `tier` tags.
    pub fn of(&self, tier: Tier) -> Holdings {
        let kinds = tier_kinds(tier);
        Holdings(self.0.iter().filter(|(kind, _)| kinds.contains(*kind)).map(|(k, ids)| (*k, ids.clone())).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.values().all(BTreeMap::is_empty)
    }
}

/// Every kind surveyed, and the tier whose tag it carries (none: AWS does not tag it).
pub const KINDS: &[(&str, Option<Tier>)] = &[
    ("vpc", Some(Tier::Network)),
    ("subnet", Some(Tier::Network)),
    ("route table", Some(Tier::Network)),
    ("route table association", None),
    ("route", None),
    ("internet gateway", Some(Tier::Network)),
    ("nat gateway", Some(Tier::Network)),
    ("elastic ip", Some(Tier::Network)),
    ("security group", Some(Tier::Network)),
    ("security group ingress rule", None),
    ("load balancer", Some(Tier::Alb)),
    ("listener", Some(Tier::Alb)),
    ("listener rule", Some(Tier::Alb)),
    ("target group", Some(Tier::Alb)),
    ("instance", Some(Tier::Compute)),
    ("iam role", Some(Tier::Compute)),
    ("instance profile", Some(Tier::Compute)),
    ("role policy", None),
    ("db subnet group", Some(Tier::Database)),
    ("db instance", Some(Tier::Database)),
    ("lock parameter", None),
];

/// What SPEC.md's whole stack holds for `config`, kind by kind: one VPC, its subnets (the
/// seed's five), the public, db and app route tables with an association per subnet and
/// a default route each but the db's, one internet gateway, one NAT gateway with its
/// address (or one per app subnet's zone with `nat_gateways = "per-zone"`, each with an
/// app table of its own), three groups with one rule per allowed source, the ALB with
/// its listener, rules and target groups, the instances with their role (two policies)
/// and profile, the DB subnet group and instance; no lock once a run is over.
pub fn whole_stack(config: &Config) -> BTreeMap<&'static str, usize> {
    let target_groups: BTreeSet<&str> = config.alb.rules.iter().map(|r| r.target_group_name.as_str()).collect();
    let target_ports: BTreeSet<u16> =
        config.alb.rules.iter().map(|r| r.port.get()).chain([config.ports.app.get()]).collect();
    let subnets = config.network.subnets.0.len();
    let app_subnets = config.network.subnets.iter().filter(|(key, _)| key.as_str().starts_with("app")).count();
    let nat_gateways = match config.network.nat_gateways {
        three_tier_core::NatGateways::One => 1,
        three_tier_core::NatGateways::PerZone => app_subnets,
    };
    BTreeMap::from([
        ("vpc", 1),
        ("subnet", subnets),
        ("route table", 2 + nat_gateways),
        ("route table association", subnets),
        ("route", 1 + nat_gateways),
        ("internet gateway", 1),
        ("nat gateway", nat_gateways),
        ("elastic ip", nat_gateways),
        ("security group", 3),
        // HTTP from anywhere, each target port from the ALB's group, MySQL from the app's.
        ("security group ingress rule", 2 + target_ports.len()),
        ("load balancer", 1),
        ("listener", 1),
        ("listener rule", config.alb.rules.len()),
        ("target group", 1 + target_groups.len()),
        ("instance", config.compute.instances as usize),
        ("iam role", 1),
        ("instance profile", 1),
        ("role policy", 2),
        ("db subnet group", 1),
        ("db instance", 1),
    ])
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .collect()
}

/// What [`whole_stack`] holds of the kinds `tier` tags.
pub fn whole_tier(config: &Config, tier: Tier) -> BTreeMap<&'static str, usize> {
    let kinds = tier_kinds(tier);
    whole_stack(config).into_iter().filter(|(kind, _)| kinds.contains(kind)).collect()
}

fn tier_kinds(tier: Tier) -> BTreeSet<&'static str> {
    KINDS.iter().filter(|(_, t)| *t == Some(tier)).map(|(kind, _)| *kind).collect()
}

/// Everything of `stack` in the context's region (and its IAM names there), read by the
/// test's own calls.
pub async fn holdings(ctx: &AwsContext, stack: &str) -> Holdings {
    let mut held = Holdings::default();
    network(ctx, stack, &mut held).await;
    load_balancing(ctx, stack, &mut held).await;
    instances(ctx, stack, &mut held).await;
    iam(ctx, stack, &mut held).await;
    database(ctx, stack, &mut held).await;
    let lock = format!("/three-tier/{stack}/lock");
    if ctx.ssm.get_parameter().name(&lock).send().await.is_ok() {
        held.insert("lock parameter", lock, TagMap::new());
    }
    held
}

fn ec2_tags(tags: &[aws_sdk_ec2::types::Tag]) -> TagMap {
    tags.iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect()
}

fn is_ours(tags: &TagMap, stack: &str) -> bool {
    tags.get(STACK_TAG).map(String::as_str) == Some(stack)
}

async fn network(ctx: &AwsContext, stack: &str, held: &mut Holdings) {
    let ec2 = &ctx.ec2;
    let vpcs = ec2.describe_vpcs().into_paginator().items().send().try_collect().await.unwrap();
    held.insert_ec2(stack, "vpc", vpcs.iter().map(|v| (v.vpc_id(), v.tags())));
    let subnets = ec2.describe_subnets().into_paginator().items().send().try_collect().await.unwrap();
    held.insert_ec2(stack, "subnet", subnets.iter().map(|s| (s.subnet_id(), s.tags())));
    let tables = ec2.describe_route_tables().into_paginator().items().send().try_collect().await.unwrap();
    for table in tables {
        let tags = ec2_tags(table.tags());
        if !is_ours(&tags, stack) {
            continue;
        }
        let table_id = table.route_table_id().unwrap();
        for association in table.associations().iter().filter(|a| a.main() != Some(true)) {
            held.insert("route table association", association.route_table_association_id().unwrap(), TagMap::new());
        }
        for route in table.routes().iter().filter(|r| r.gateway_id() != Some("local")) {
            let target = route.gateway_id().or(route.nat_gateway_id()).unwrap_or("none");
            let to = route.destination_cidr_block().unwrap_or_default();
            held.insert("route", format!("{table_id} {to} → {target}"), TagMap::new());
        }
        held.insert("route table", table_id, tags);
    }
    let gateways = ec2.describe_internet_gateways().into_paginator().items().send().try_collect().await.unwrap();
    held.insert_ec2(stack, "internet gateway", gateways.iter().map(|g| (g.internet_gateway_id(), g.tags())));
    let nats = ec2.describe_nat_gateways().into_paginator().items().send().try_collect().await.unwrap();
    let standing = nats.iter().filter(|n| n.state().is_none_or(|s| s.as_str() != "deleted"));
    held.insert_ec2(stack, "nat gateway", standing.map(|n| (n.nat_gateway_id(), n.tags())));
    let addresses = ec2.describe_addresses().send().await.unwrap();
    held.insert_ec2(stack, "elastic ip", addresses.addresses().iter().map(|a| (a.allocation_id(), a.tags())));
    let groups = ec2.describe_security_groups().into_paginator().items().send().try_collect().await.unwrap();
    for group in groups {
        let tags = ec2_tags(group.tags());
        if !is_ours(&tags, stack) {
            continue;
        }
        let group_id = group.group_id().unwrap();
        for permission in group.ip_permissions() {
            let port = permission.from_port().unwrap_or_default();
            let cidrs = permission.ip_ranges().iter().filter_map(|r| r.cidr_ip());
            let groups = permission.user_id_group_pairs().iter().filter_map(|p| p.group_id());
            for source in cidrs.chain(groups) {
                held.insert("security group ingress rule", format!("{group_id} :{port} ← {source}"), TagMap::new());
            }
        }
        held.insert("security group", group_id, tags);
    }
}

/// ELB tags by ARN, read twenty at a time (DescribeTags' limit).
async fn elb_tags(ctx: &AwsContext, arns: &[String]) -> BTreeMap<String, TagMap> {
    let mut tags = BTreeMap::new();
    for chunk in arns.chunks(20) {
        let answer = ctx.elbv2.describe_tags().set_resource_arns(Some(chunk.to_vec())).send().await.unwrap();
        for description in answer.tag_descriptions() {
            let pairs = description.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())));
            tags.insert(description.resource_arn().unwrap().to_owned(), pairs.collect());
        }
    }
    tags
}

/// Of `arns`, those tagged with `stack`, with their tags.
async fn ours_by_tag(ctx: &AwsContext, stack: &str, arns: Vec<String>) -> Vec<(String, TagMap)> {
    let mut tags = elb_tags(ctx, &arns).await;
    arns.into_iter().filter_map(|arn| tags.remove(&arn).filter(|t| is_ours(t, stack)).map(|t| (arn, t))).collect()
}

async fn load_balancing(ctx: &AwsContext, stack: &str, held: &mut Holdings) {
    let elb = &ctx.elbv2;
    let balancers = elb.describe_load_balancers().into_paginator().items().send().try_collect().await.unwrap();
    let arns = balancers.iter().filter_map(|b| b.load_balancer_arn()).map(str::to_owned).collect();
    for (arn, tags) in ours_by_tag(ctx, stack, arns).await {
        let listeners = elb.describe_listeners().load_balancer_arn(&arn).send().await.unwrap();
        let listener_arns: Vec<String> =
            listeners.listeners().iter().filter_map(|l| l.listener_arn()).map(str::to_owned).collect();
        let mut listener_tags = elb_tags(ctx, &listener_arns).await;
        for listener in listener_arns {
            let rules = elb.describe_rules().listener_arn(&listener).send().await.unwrap();
            let rule_arns: Vec<String> = rules
                .rules()
                .iter()
                .filter(|r| r.is_default() != Some(true))
                .filter_map(|r| r.rule_arn())
                .map(str::to_owned)
                .collect();
            let mut rule_tags = elb_tags(ctx, &rule_arns).await;
            for rule in rule_arns {
                let tags = rule_tags.remove(&rule).unwrap_or_default();
                held.insert("listener rule", rule, tags);
            }
            let tags = listener_tags.remove(&listener).unwrap_or_default();
            held.insert("listener", listener, tags);
        }
        held.insert("load balancer", arn, tags);
    }
    let groups = elb.describe_target_groups().into_paginator().items().send().try_collect().await.unwrap();
    let arns = groups.iter().filter_map(|g| g.target_group_arn()).map(str::to_owned).collect();
    for (arn, tags) in ours_by_tag(ctx, stack, arns).await {
        held.insert("target group", arn, tags);
    }
}

async fn instances(ctx: &AwsContext, stack: &str, held: &mut Holdings) {
    let reservations = ctx.ec2.describe_instances().into_paginator().items().send().try_collect().await.unwrap();
    let live = reservations
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| i.state().and_then(|s| s.name()).is_none_or(|s| s.as_str() != "terminated"));
    held.insert_ec2(stack, "instance", live.map(|i| (i.instance_id(), i.tags())));
}

/// The role and profile by their names in this region, and by the names of stacks
/// deployed before IAM names carried the region; each kept only when tagged with `stack`.
async fn iam(ctx: &AwsContext, stack: &str, held: &mut Holdings) {
    let iam = &ctx.iam;
    let region = &ctx.region;
    let iam_tags = |tags: &[aws_sdk_iam::types::Tag]| -> TagMap {
        tags.iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()
    };
    for role in [format!("{stack}-app-role-{region}"), format!("{stack}-app-role")] {
        let Ok(answer) = iam.get_role().role_name(&role).send().await else { continue };
        let tags = iam_tags(answer.role().map(|r| r.tags()).unwrap_or_default());
        if !is_ours(&tags, stack) {
            continue;
        }
        let inline = iam.list_role_policies().role_name(&role).send().await.unwrap();
        for name in inline.policy_names() {
            held.insert("role policy", format!("{role} inline {name}"), TagMap::new());
        }
        let attached = iam.list_attached_role_policies().role_name(&role).send().await.unwrap();
        for policy in attached.attached_policies() {
            held.insert("role policy", format!("{role} attached {}", policy.policy_arn().unwrap()), TagMap::new());
        }
        held.insert("iam role", role, tags);
    }
    for profile in [format!("{stack}-app-profile-{region}"), format!("{stack}-app-profile")] {
        let Ok(answer) = iam.get_instance_profile().instance_profile_name(&profile).send().await else { continue };
        let tags = iam_tags(answer.instance_profile().map(|p| p.tags()).unwrap_or_default());
        if is_ours(&tags, stack) {
            held.insert("instance profile", profile, tags);
        }
    }
}

async fn database(ctx: &AwsContext, stack: &str, held: &mut Holdings) {
    let rds = &ctx.rds;
    let rds_tags = |tags: &[aws_sdk_rds::types::Tag]| -> TagMap {
        tags.iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect()
    };
    let instances = rds.describe_db_instances().into_paginator().items().send().try_collect().await.unwrap();
    for db in instances {
        let tags = rds_tags(db.tag_list());
        if is_ours(&tags, stack) {
            held.insert("db instance", db.db_instance_identifier().unwrap(), tags);
        }
    }
    // DescribeDBSubnetGroups carries no tags: each group's are read by its ARN.
    let groups = rds.describe_db_subnet_groups().into_paginator().items().send().try_collect().await.unwrap();
    for group in groups {
        let Some(arn) = group.db_subnet_group_arn() else { continue };
        let answer = rds.list_tags_for_resource().resource_name(arn).send().await.unwrap();
        let tags = rds_tags(answer.tag_list());
        if is_ours(&tags, stack) {
            held.insert("db subnet group", group.db_subnet_group_name().unwrap(), tags);
        }
    }
}
