//! The network tier on the emulator, checked line by line against SPEC.md.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, VpcAttributeName};
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use three_tier_core::naming::{STACK_TAG, TIER_TAG};
use three_tier_core::schedule::Schedule;
use three_tier_core::{Change, Error, Step, Tier};

use network::NetworkStep;
use stack::{StackPlan, StackStep};

use crate::support::{add_subnet, assert_declared, drop_subnet_ids, fresh_stack, redact};

fn stack_filter(stack: &str) -> Filter {
    Filter::builder().name(format!("tag:{STACK_TAG}")).values(stack).build()
}

fn tag<'a>(tags: &'a [aws_sdk_ec2::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

/// Every resource the stack's tags find, as (kind, Name) pairs; NAT gateways that AWS
/// still lists as `deleted` are gone.
async fn tagged_resources(ec2: &aws_sdk_ec2::Client, stack: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let name = |tags: &[aws_sdk_ec2::types::Tag]| tag(tags, "Name").unwrap_or("?").to_owned();
    let vpcs = ec2.describe_vpcs().filters(stack_filter(stack)).send().await.unwrap();
    found.extend(vpcs.vpcs().iter().map(|v| ("vpc".to_owned(), name(v.tags()))));
    let subnets = ec2.describe_subnets().filters(stack_filter(stack)).send().await.unwrap();
    found.extend(subnets.subnets().iter().map(|s| ("subnet".to_owned(), name(s.tags()))));
    let gateways = ec2.describe_internet_gateways().filters(stack_filter(stack)).send().await.unwrap();
    found.extend(gateways.internet_gateways().iter().map(|g| ("igw".to_owned(), name(g.tags()))));
    let tables = ec2.describe_route_tables().filters(stack_filter(stack)).send().await.unwrap();
    found.extend(tables.route_tables().iter().map(|t| ("route-table".to_owned(), name(t.tags()))));
    let groups = ec2.describe_security_groups().filters(stack_filter(stack)).send().await.unwrap();
    found.extend(groups.security_groups().iter().map(|g| ("security-group".to_owned(), name(g.tags()))));
    let addresses = ec2.describe_addresses().filters(stack_filter(stack)).send().await.unwrap();
    found.extend(addresses.addresses().iter().map(|a| ("eip".to_owned(), name(a.tags()))));
    // The emulator ignores tag filters on this call: the tags are checked here.
    let nats = ec2.describe_nat_gateways().send().await.unwrap();
    found.extend(
        nats.nat_gateways()
            .iter()
            .filter(|n| tag(n.tags(), STACK_TAG) == Some(stack))
            .filter(|n| n.state().is_some_and(|s| s.as_str() != "deleted"))
            .map(|n| ("nat-gateway".to_owned(), name(n.tags()))),
    );
    found.sort();
    found
}

/// The first `cut` steps of a one-tier plan, as a run that died there left them.
fn first(plan: &StackPlan, cut: usize) -> StackPlan {
    let tier = &plan.tiers[0];
    let steps = tier.steps[..cut].to_vec();
    StackPlan::new(plan.kind, vec![three_tier_core::Plan { steps, ..tier.clone() }]).unwrap()
}

#[tokio::test]
async fn deploy_builds_the_spec_reruns_without_change_and_teardown_leaves_only_others() {
    let stack = "it-net-spec";
    let (config, ctx) = fresh_stack(stack).await;
    let ec2 = &ctx.ec2;
    // A VPC that is not the stack's: teardown must leave it alone.
    let bystander = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap();
    let bystander_id = bystander.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();

    let outputs = stack::deploy(&ctx, &config, &[Tier::Network]).await.unwrap().network.unwrap();

    // VPC: 10.0.0.0/16 with DNS support and DNS hostnames.
    let vpcs = ec2.describe_vpcs().vpc_ids(&outputs.vpc_id).send().await.unwrap();
    let vpc = &vpcs.vpcs()[0];
    assert_eq!(vpc.cidr_block(), Some("10.0.0.0/16"));
    assert_eq!(tag(vpc.tags(), "Name"), Some("it-net-spec-vpc"));
    for attribute in [VpcAttributeName::EnableDnsSupport, VpcAttributeName::EnableDnsHostnames] {
        let answer =
            ec2.describe_vpc_attribute().vpc_id(&outputs.vpc_id).attribute(attribute.clone()).send().await.unwrap();
        let on = answer.enable_dns_support().or(answer.enable_dns_hostnames()).and_then(|a| a.value());
        assert_eq!(on, Some(true), "{attribute:?}");
    }

    // Internet gateway attached to the VPC.
    let gateways =
        ec2.describe_internet_gateways().internet_gateway_ids(&outputs.internet_gateway_id).send().await.unwrap();
    let attachments = gateways.internet_gateways()[0].attachments();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0].vpc_id(), Some(outputs.vpc_id.as_str()));

    // Five subnets: name, zone, CIDR, no public IPs on launch.
    let subnets = ec2.describe_subnets().filters(stack_filter(stack)).send().await.unwrap();
    let mut seen: Vec<(String, String, String, bool)> = subnets
        .subnets()
        .iter()
        .map(|s| {
            assert_eq!(s.vpc_id(), Some(outputs.vpc_id.as_str()));
            (
                tag(s.tags(), "Name").unwrap().to_owned(),
                s.availability_zone().unwrap().to_owned(),
                s.cidr_block().unwrap().to_owned(),
                s.map_public_ip_on_launch().unwrap_or(false),
            )
        })
        .collect();
    seen.sort();
    let expected = [
        ("alb-subnet", "ap-northeast-1a", "10.0.0.64/26"),
        ("alb-subnet2", "ap-northeast-1c", "10.0.1.0/26"),
        ("app-subnet", "ap-northeast-1a", "10.0.0.0/26"),
        ("db-subnet", "ap-northeast-1a", "10.0.0.128/26"),
        ("db-subnet2", "ap-northeast-1c", "10.0.0.192/26"),
    ];
    let expected: Vec<_> =
        expected.iter().map(|(n, z, c)| (n.to_string(), z.to_string(), c.to_string(), false)).collect();
    assert_eq!(seen, expected);
    let subnet_id = |name: &str| {
        subnets.subnets().iter().find(|s| tag(s.tags(), "Name") == Some(name)).unwrap().subnet_id().unwrap().to_owned()
    };

    // NAT gateway in alb-subnet with the stack's Elastic IP.
    let nats = ec2.describe_nat_gateways().nat_gateway_ids(&outputs.nat_gateway().id).send().await.unwrap();
    let nat = &nats.nat_gateways()[0];
    assert_eq!(nat.state().map(|s| s.as_str()), Some("available"));
    assert_eq!(nat.subnet_id(), Some(subnet_id("alb-subnet").as_str()));
    assert_eq!(nat.nat_gateway_addresses()[0].allocation_id(), Some(outputs.nat_gateway().allocation_id.as_str()));
    assert_eq!(tag(nat.tags(), "Name"), Some("nat-gateway"));

    // Route tables: public → IGW for BOTH ALB subnets, app → NAT, db → nowhere.
    let tables = ec2.describe_route_tables().filters(stack_filter(stack)).send().await.unwrap();
    let table = |name: &str| {
        let table = tables.route_tables().iter().find(|t| tag(t.tags(), "Name") == Some(name)).unwrap();
        let mut associated: Vec<String> =
            table.associations().iter().filter_map(|a| a.subnet_id().map(str::to_owned)).collect();
        associated.sort();
        let default_route = table.routes().iter().find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"));
        let target = default_route.map(|r| r.gateway_id().or(r.nat_gateway_id()).unwrap_or("?").to_owned());
        (associated, target)
    };
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    assert_eq!(
        table("it-net-spec-public-rt"),
        (sorted(vec![subnet_id("alb-subnet"), subnet_id("alb-subnet2")]), Some(outputs.internet_gateway_id.clone()))
    );
    assert_eq!(table("it-net-spec-app-rt"), (vec![subnet_id("app-subnet")], Some(outputs.nat_gateway().id.clone())));
    assert_eq!(table("it-net-spec-db-rt"), (sorted(vec![subnet_id("db-subnet"), subnet_id("db-subnet2")]), None));

    // Security groups chained by group reference: internet → alb-sg001 → sg001 → db-sg001.
    let groups = ec2.describe_security_groups().filters(stack_filter(stack)).send().await.unwrap();
    let group = |name: &str| groups.security_groups().iter().find(|g| g.group_name() == Some(name)).unwrap();
    let ingress = |name: &str| {
        let permissions = group(name).ip_permissions();
        assert_eq!(permissions.len(), 1, "{name} has one rule");
        let p = &permissions[0];
        let cidrs: Vec<_> = p.ip_ranges().iter().filter_map(|r| r.cidr_ip()).collect();
        let groups: Vec<_> = p.user_id_group_pairs().iter().filter_map(|g| g.group_id()).collect();
        (
            p.ip_protocol().unwrap().to_owned(),
            p.from_port().unwrap(),
            p.to_port().unwrap(),
            cidrs.join(","),
            groups.join(","),
        )
    };
    let id = |name: &str| group(name).group_id().unwrap().to_owned();
    assert_eq!(ingress("alb-sg001"), ("tcp".into(), 80, 80, "0.0.0.0/0".into(), String::new()));
    assert_eq!(ingress("sg001"), ("tcp".into(), 3030, 3030, String::new(), id("alb-sg001")));
    assert_eq!(ingress("db-sg001"), ("tcp".into(), 3306, 3306, String::new(), id("sg001")));
    for name in ["alb-sg001", "sg001", "db-sg001"] {
        assert_eq!(group(name).vpc_id(), Some(outputs.vpc_id.as_str()));
        let egress = group(name).ip_permissions_egress();
        assert!(egress.iter().any(|p| p.ip_protocol() == Some("-1")), "{name} keeps the default egress");
        assert!(!group(name).ip_permissions().iter().any(|p| p.from_port() == Some(22)), "no SSH anywhere");
    }

    // Every resource carries the stack and tier tags, and its name.
    let all = tagged_resources(ec2, stack).await;
    let kinds: Vec<&str> = all.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "eip",
            "igw",
            "nat-gateway",
            "route-table",
            "route-table",
            "route-table",
            "security-group",
            "security-group",
            "security-group",
            "subnet",
            "subnet",
            "subnet",
            "subnet",
            "subnet",
            "vpc"
        ]
    );
    let tier_tagged = ec2
        .describe_subnets()
        .filters(stack_filter(stack))
        .filters(Filter::builder().name(format!("tag:{TIER_TAG}")).values("network").build())
        .send()
        .await
        .unwrap();
    assert_eq!(tier_tagged.subnets().len(), 5);

    // Deploy again: the same outputs, and not one mutating call.
    let mark = ctx.calls.mark();
    let again = stack::deploy(&ctx, &config, &[Tier::Network]).await.unwrap().network.unwrap();
    assert_eq!(again, outputs);
    let calls = ctx.calls.since(mark);
    let mutating: Vec<_> = calls.iter().filter(|c| c.is_mutating()).map(|c| c.operation.clone()).collect();
    assert_eq!(mutating, Vec::<String>::new());
    assert!(calls.len() <= 10, "a no-op deploy is about ten reads, made {}", calls.len());

    // Teardown: nothing tagged remains, the bystander VPC does.
    let plan = stack::plan_teardown(&ctx, &config, &[Tier::Network], false).await.unwrap();
    plan.apply(&ctx).await.unwrap();
    assert_eq!(tagged_resources(ec2, stack).await, vec![]);
    let survivors = ec2.describe_vpcs().vpc_ids(&bystander_id).send().await.unwrap();
    assert_eq!(survivors.vpcs().len(), 1, "teardown left the untagged VPC alone");
    ec2.delete_vpc().vpc_id(&bystander_id).send().await.unwrap();

    // A second teardown finds nothing to do.
    assert!(stack::plan_teardown(&ctx, &config, &[Tier::Network], false).await.unwrap().deletes_nothing());
}

#[tokio::test]
async fn the_wire_requests_of_a_fresh_deploy() {
    let (config, mut ctx) = fresh_stack("it-net-wire").await;
    // Steps one at a time in plan order: the same requests in the same order every run.
    ctx.schedule = Schedule::Ordered;
    let mark = ctx.calls.mark();
    stack::deploy(&ctx, &config, &[Tier::Network]).await.unwrap().network.unwrap();
    let calls = redact(&ctx.calls.since(mark));
    insta::assert_yaml_snapshot!("network_deploy_requests", calls);
    let plan = stack::plan_teardown(&ctx, &config, &[Tier::Network], false).await.unwrap();
    plan.apply(&ctx).await.unwrap();
}

#[tokio::test]
async fn an_interrupted_deploy_completes_without_duplicates() {
    let stack = "it-net-resume";
    let (config, ctx) = fresh_stack(stack).await;
    let full = stack::plan_deploy(&ctx, &config, &[Tier::Network]).await.unwrap();
    // The run dies after the NAT gateway is requested, before the security group rules.
    let steps = &full.tiers[0].steps;
    let cut = steps.iter().position(|s| matches!(s, StackStep::Network(NetworkStep::AuthorizeIngress { .. }))).unwrap();
    first(&full, cut).apply(&ctx).await.unwrap();

    let rest = stack::plan_deploy(&ctx, &config, &[Tier::Network]).await.unwrap();
    let creates: Vec<String> =
        rest.tiers[0].steps.iter().filter(|s| s.change() == Change::Create).map(|s| s.describe()).collect();
    let made_before = ["VPC", "subnet", "security group", "NAT"];
    assert!(creates.iter().all(|c| !made_before.iter().any(|made| c.starts_with(made))), "{creates:?}");
    stack::deploy(&ctx, &config, &[Tier::Network]).await.unwrap().network.unwrap();

    let kinds: Vec<String> =
        crate::network::tagged_resources(&ctx.ec2, stack).await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "vpc").count(), 1);
    assert_eq!(kinds.iter().filter(|k| *k == "subnet").count(), 5);
    assert_eq!(kinds.iter().filter(|k| *k == "nat-gateway").count(), 1);
    assert_eq!(kinds.iter().filter(|k| *k == "eip").count(), 1);
    assert_eq!(kinds.iter().filter(|k| *k == "security-group").count(), 3);
    assert_eq!(kinds.iter().filter(|k| *k == "route-table").count(), 3);

    // An interrupted teardown finishes on the next run, too.
    let teardown = stack::plan_teardown(&ctx, &config, &[Tier::Network], false).await.unwrap();
    let steps = &teardown.tiers[0].steps;
    let cut = steps.iter().position(|s| matches!(s, StackStep::Network(NetworkStep::DeleteSubnet { .. }))).unwrap();
    first(&teardown, cut).apply(&ctx).await.unwrap();
    assert!(!tagged_resources(&ctx.ec2, stack).await.is_empty());
    let rest = stack::plan_teardown(&ctx, &config, &[Tier::Network], false).await.unwrap();
    rest.apply(&ctx).await.unwrap();
    assert_eq!(tagged_resources(&ctx.ec2, stack).await, vec![]);
}

#[tokio::test]
async fn drift_is_repaired_and_the_repair_is_stable() {
    let stack = "it-net-drift";
    let (config, ctx) = fresh_stack(stack).await;
    let outputs = stack::deploy(&ctx, &config, &[Tier::Network]).await.unwrap().network.unwrap();
    let ec2 = &ctx.ec2;
    let app_group = outputs.security_group(three_tier_core::SecurityGroupRole::App).to_owned();
    // Someone opens SSH on the app group and turns DNS hostnames off.
    ec2.authorize_security_group_ingress()
        .group_id(&app_group)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(aws_sdk_ec2::types::IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    ec2.modify_vpc_attribute()
        .vpc_id(&outputs.vpc_id)
        .enable_dns_hostnames(aws_sdk_ec2::types::AttributeBooleanValue::builder().value(false).build())
        .send()
        .await
        .unwrap();

    let plan = stack::plan_deploy(&ctx, &config, &[Tier::Network]).await.unwrap();
    let steps: Vec<String> = plan.tiers[0].steps.iter().map(|s| s.describe()).collect();
    assert_eq!(steps.len(), 2, "{steps:?}");
    // `status` says what drifted, line by line as `plan` shows it.
    let states = stack::status(&ctx, &config).await.unwrap();
    let network_state = &states.iter().find(|(tier, _)| *tier == three_tier_core::Tier::Network).unwrap().1;
    let stack::TierStatus::Drifted { steps: lines } = network_state else { panic!("{states:?}") };
    assert_eq!(
        lines,
        &["~ turn on DNS hostnames of VPC {vpc}", "~ remove rule tcp 22 from 0.0.0.0/0 from sg001"]
            .map(|line| line.replace("{vpc}", &outputs.vpc_id)),
        "{lines:?}"
    );
    let mark = ctx.calls.mark();
    stack::deploy(&ctx, &config, &[Tier::Network]).await.unwrap().network.unwrap();
    assert_declared(&ctx.calls.since(mark));

    let groups = ec2.describe_security_groups().group_ids(&app_group).send().await.unwrap();
    assert!(!groups.security_groups()[0].ip_permissions().iter().any(|p| p.from_port() == Some(22)));
    let hostnames = ec2
        .describe_vpc_attribute()
        .vpc_id(&outputs.vpc_id)
        .attribute(VpcAttributeName::EnableDnsHostnames)
        .send()
        .await
        .unwrap();
    assert_eq!(hostnames.enable_dns_hostnames().and_then(|a| a.value()), Some(true));
    let after = stack::plan_deploy(&ctx, &config, &[Tier::Network]).await.unwrap();
    assert!(after.graph.is_empty(), "{}", after.render());

    // Someone points the app subnet's way out at the internet gateway, moves a DB subnet
    // onto the public table and strips a subnet's Name tag: deploy puts each back.
    use three_tier_core::RouteTableRole;
    let app_table = outputs.route_table(RouteTableRole::App);
    let public_table = outputs.route_table(RouteTableRole::Public);
    let db_subnet = outputs.subnet("db-a");
    ec2.replace_route()
        .route_table_id(app_table)
        .destination_cidr_block("0.0.0.0/0")
        .gateway_id(&outputs.internet_gateway_id)
        .send()
        .await
        .unwrap();
    let association = |subnet: &str| {
        let subnet = subnet.to_owned();
        async move {
            let filter = Filter::builder().name("association.subnet-id").values(&subnet).build();
            let tables = ec2.describe_route_tables().filters(filter).send().await.unwrap();
            let table = &tables.route_tables()[0];
            let found = table.associations().iter().find(|a| a.subnet_id() == Some(subnet.as_str())).unwrap();
            (table.route_table_id().unwrap().to_owned(), found.route_table_association_id().unwrap().to_owned())
        }
    };
    let (_, moved) = association(db_subnet).await;
    ec2.replace_route_table_association().association_id(moved).route_table_id(public_table).send().await.unwrap();
    let tag = aws_sdk_ec2::types::Tag::builder().key("Name").build();
    ec2.delete_tags().resources(outputs.subnet("alb-b")).tags(tag).send().await.unwrap();
    let plan = stack::plan_deploy(&ctx, &config, &[Tier::Network]).await.unwrap();
    assert_eq!(plan.graph.nodes.len(), 3, "{}", plan.render());
    let mark = ctx.calls.mark();
    stack::deploy(&ctx, &config, &[Tier::Network]).await.unwrap().network.unwrap();
    assert_declared(&ctx.calls.since(mark));

    let tables = ec2.describe_route_tables().route_table_ids(app_table).send().await.unwrap();
    let default = tables.route_tables()[0].routes().iter().find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"));
    assert_eq!(default.and_then(|r| r.nat_gateway_id()), Some(outputs.nat_gateway().id.as_str()), "{default:?}");
    assert_eq!(association(db_subnet).await.0, outputs.route_table(RouteTableRole::Db));
    let subnets = ec2.describe_subnets().subnet_ids(outputs.subnet("alb-b")).send().await.unwrap();
    let name = subnets.subnets()[0].tags().iter().find(|t| t.key() == Some("Name")).and_then(|t| t.value());
    assert_eq!(name, Some(config.network.subnets.get("alb-b").unwrap().name.as_str()));
    let after = stack::plan_deploy(&ctx, &config, &[Tier::Network]).await.unwrap();
    assert!(after.graph.is_empty(), "{}", after.render());

    // An answer without the ids it must hold is an error naming the call and the field,
    // never an empty id a plan would act on.
    let broken = crate::support::context_with(&config, vec![SharedInterceptor::new(drop_subnet_ids())]).await;
    let err = stack::plan_deploy(&broken, &config, &[Tier::Network]).await.map(|p| p.render()).unwrap_err();
    assert!(matches!(err, Error::MissingField { operation: "DescribeSubnets", field: "SubnetId" }), "{err}");

    let plan = stack::plan_teardown(&ctx, &config, &[Tier::Network], false).await.unwrap();
    plan.apply(&ctx).await.unwrap();
}

/// The config's subnets as the test's own reads find them: role tag → (CIDR, zone, id).
async fn subnets_by_role_tag(ec2: &aws_sdk_ec2::Client, stack: &str) -> BTreeMap<String, (String, String, String)> {
    let subnets = ec2.describe_subnets().filters(stack_filter(stack)).send().await.unwrap();
    subnets
        .subnets()
        .iter()
        .map(|s| {
            let role = tag(s.tags(), "three-tier:role").unwrap().to_owned();
            let found = (s.cidr_block().unwrap(), s.availability_zone().unwrap(), s.subnet_id().unwrap());
            (role, (found.0.to_owned(), found.1.to_owned(), found.2.to_owned()))
        })
        .collect()
}

/// The ids of the ALB subnets among `subnets`, sorted.
fn alb_subnets(subnets: &BTreeMap<String, (String, String, String)>) -> Vec<String> {
    let mut ids: Vec<String> =
        subnets.iter().filter(|(role, _)| role.starts_with("subnet/alb")).map(|(_, s)| s.2.clone()).collect();
    ids.sort();
    ids
}

/// The subnets the load balancer named `name` spans, sorted.
async fn load_balancer_subnets(ctx: &three_tier_core::AwsContext, name: &str) -> Vec<String> {
    let balancers = ctx.elbv2.describe_load_balancers().names(name).send().await.unwrap();
    let zones = balancers.load_balancers()[0].availability_zones();
    let mut ids: Vec<String> = zones.iter().filter_map(|z| z.subnet_id().map(str::to_owned)).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_subnet_added_to_the_config_joins_its_role_and_one_taken_out_is_deleted() {
    use three_tier_core::SubnetRole;

    let (config, ctx) = fresh_stack("it-subnet-keys").await;
    let ec2 = &ctx.ec2;
    let tiers = [Tier::Network, Tier::Alb];
    stack::deploy(&ctx, &config, &tiers).await.unwrap();

    // A second app subnet in another zone, and a third ALB subnet in a third zone, in
    // blocks of the VPC no subnet uses.
    let mut wider = config.clone();
    let app_zone = &config.instance_subnets()[0].1.availability_zone;
    let other_zone = config.stack.availability_zones.iter().find(|z| *z != app_zone).unwrap().clone();
    let zones = ec2.describe_availability_zones().send().await.unwrap();
    let alb_zones: Vec<&str> =
        config.network.subnets.of(SubnetRole::Alb).map(|(_, s)| s.availability_zone.as_str()).collect();
    let third_zone = zones.availability_zones().iter().filter_map(|z| z.zone_name()).find(|z| !alb_zones.contains(z));
    let third_zone = third_zone.expect("the region has a third zone").to_owned();
    add_subnet(&mut wider, "app-b", &other_zone);
    add_subnet(&mut wider, "alb-c", &third_zone);
    let added: Vec<_> = ["app-b", "alb-c"]
        .map(|key| {
            let subnet = wider.network.subnets.get(key).unwrap();
            (key, subnet.cidr, subnet.availability_zone.clone())
        })
        .into();
    wider.validate(std::path::Path::new("test")).unwrap();
    let mark = ctx.calls.mark();
    stack::deploy(&ctx, &wider, &tiers).await.unwrap();
    assert_declared(&ctx.calls.since(mark));

    // Each new subnet exists as config says, carries its key as its role tag and sits on
    // its role's route table; the ALB spans the three ALB subnets.
    let subnets = subnets_by_role_tag(ec2, &config.stack.name).await;
    assert_eq!(subnets.len(), config.network.subnets.0.len() + 2, "{subnets:#?}");
    for (key, cidr, zone) in &added {
        let (found_cidr, found_zone, _) = &subnets[&format!("subnet/{key}")];
        assert_eq!((found_cidr, found_zone), (&cidr.to_string(), zone), "{key}");
    }
    let table_of = |subnet_id: &str| {
        let filter = Filter::builder().name("association.subnet-id").values(subnet_id).build();
        async move {
            let tables = ec2.describe_route_tables().filters(filter).send().await.unwrap();
            tables
                .route_tables()
                .iter()
                .map(|t| tag(t.tags(), "three-tier:role").unwrap_or("main").to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(table_of(&subnets["subnet/app-b"].2).await, ["route-table/app"]);
    assert_eq!(table_of(&subnets["subnet/alb-c"].2).await, ["route-table/public"]);
    let alb_name = wider.names().account_unique(&wider.alb.name);
    assert_eq!(load_balancer_subnets(&ctx, &alb_name).await, alb_subnets(&subnets));
    assert_eq!(alb_subnets(&subnets).len(), 3);
    let again = stack::plan_deploy(&ctx, &wider, &tiers).await.unwrap();
    assert!(again.graph.is_empty(), "{}", again.render());

    // Taken out of the config again: the ALB leaves alb-c, and both subnets are deleted.
    stack::deploy(&ctx, &config, &tiers).await.unwrap();
    let subnets = subnets_by_role_tag(ec2, &config.stack.name).await;
    let keys: Vec<&str> = subnets.keys().map(|role| role.trim_start_matches("subnet/")).collect();
    let configured: Vec<&str> = config.network.subnets.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, configured);
    assert_eq!(load_balancer_subnets(&ctx, &alb_name).await, alb_subnets(&subnets));

    let plan = stack::plan_teardown(&ctx, &config, &tiers, false).await.unwrap();
    plan.apply(&ctx).await.unwrap();
}
