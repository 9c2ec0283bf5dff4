//! The stack's graph under any order it allows. The scheduler runs the ready steps one
//! at a time, picked from a seeded random sequence: a step that needs another without an
//! edge saying so fails in some order. With several seeds and configs, deploy converges
//! to SPEC.md, a second deploy changes nothing, and teardown leaves nothing.

use std::path::Path;
use std::time::Duration;

use three_tier_core::schedule::Schedule;
use three_tier_core::{Config, SecurityGroupRole};

use crate::oracle;
use crate::support::{assert_declared, clean, context};

/// The default config in `region`, for `stack`; with `other_addresses`, the VPC and its
/// subnets in 10.20.0.0/16, a larger instance type and more storage.
fn config(stack: &str, region: &str, other_addresses: bool) -> Config {
    let mut text = Config::DEFAULT_TOML.replace("ap-northeast-1", region);
    if other_addresses {
        text = text
            .replace("\"10.0.", "\"10.20.")
            .replace("instance_type = \"t3.micro\"", "instance_type = \"t3.small\"")
            .replace("allocated_storage_gib = 20", "allocated_storage_gib = 30");
    }
    let mut config = Config::parse(Path::new("test"), &text).expect("test config parses");
    config.stack.name = stack.to_owned();
    config.validate(Path::new("test")).expect("test config is valid");
    config
}

#[tokio::test]
async fn any_order_the_graph_allows_deploys_the_spec_and_tears_down_to_nothing() {
    // The readiness edges these orders check, each because the strict emulator refuses
    // what AWS refuses without it: anything used before it exists (a subnet, group, table,
    // the NAT gateway a route names, the subnet group an RDS instance names); the
    // internet-facing load balancer before the VPC's internet gateway is attached (seed 1
    // of "it-any-g" orders it first without that edge); RunInstances with an instance
    // profile IAM has not propagated; a target EC2 does not know yet; an instance launched
    // before its route to the NAT gateway (the data plane never starts its nginx: seed 3
    // fails without that edge). On teardown: a subnet, group or VPC deleted while something
    // uses it; the NAT gateway's address released while the gateway holds it; the gateway
    // detached while addresses are mapped.
    // The last runs with the four availability options: two of each gateway, table and
    // instance, RDS Multi-AZ. Boxed: eight whole-stack runs side by side would not fit on
    // a test thread's stack.
    tokio::join!(
        Box::pin(shuffled(11, config("it-any-a", "ap-northeast-3", false))),
        Box::pin(shuffled(23, config("it-any-b", "eu-central-2", true))),
        Box::pin(shuffled(42, config("it-any-c", "eu-south-1", true))),
        Box::pin(shuffled(7, config("it-any-d", "ap-northeast-3", true))),
        Box::pin(shuffled(5, config("it-any-e", "eu-central-2", false))),
        Box::pin(shuffled(3, config("it-any-f", "eu-south-1", false))),
        Box::pin(shuffled(1, config("it-any-g", "ap-northeast-3", false))),
        Box::pin(shuffled(17, crate::support::four_options("it-any-h", "eu-central-2"))),
    );
}

async fn shuffled(seed: u64, config: Config) {
    let mut ctx = context(&config).await;
    clean(&ctx, &config).await;
    ctx.schedule = Schedule::Shuffled { seed };
    // One step at a time: a delete that AWS refuses for want of an edge would be retried
    // while the step it needs cannot start. A short bound makes that a quick failure; a
    // deleted load balancer's interfaces linger 1.2 s at the tests' time scale.
    ctx.waits.dependency_violation = Duration::from_secs(20);
    let stack = config.stack.name.clone();

    let mark = ctx.calls.mark();
    let outputs = stack::deploy(&ctx, &config, stack::TIERS).await.unwrap_or_else(|err| panic!("seed {seed}: {err}"));
    assert_declared(&ctx.calls.since(mark));
    let network = outputs.network.clone().unwrap();
    let (alb, compute, database) =
        (outputs.alb.clone().unwrap(), outputs.compute.clone().unwrap(), outputs.database.clone().unwrap());

    // SPEC.md's topology, read back from the emulator.
    let vpcs = ctx.ec2.describe_vpcs().vpc_ids(&network.vpc_id).send().await.unwrap();
    assert_eq!(vpcs.vpcs()[0].cidr_block(), Some(config.network.vpc_cidr.to_string().as_str()));
    for (key, spec) in config.network.subnets.iter() {
        let subnets = ctx.ec2.describe_subnets().subnet_ids(network.subnet(key.as_str())).send().await.unwrap();
        assert_eq!(subnets.subnets()[0].cidr_block(), Some(spec.cidr.to_string().as_str()), "{stack} {key}");
        assert_eq!(subnets.subnets()[0].availability_zone(), Some(spec.availability_zone.as_str()));
    }
    let nat = ctx.ec2.describe_nat_gateways().nat_gateway_ids(&network.nat_gateway().id).send().await.unwrap();
    assert_eq!(nat.nat_gateways()[0].state().map(|s| s.as_str()), Some("available"));
    assert_eq!(nat.nat_gateways()[0].subnet_id(), Some(network.subnet("alb-a")));
    let balancers =
        ctx.elbv2.describe_load_balancers().load_balancer_arns(&alb.load_balancer_arn).send().await.unwrap();
    let balancer = &balancers.load_balancers()[0];
    assert_eq!(balancer.state().and_then(|s| s.code()).map(|c| c.as_str()), Some("active"));
    assert_eq!(balancer.security_groups(), [network.security_group(SecurityGroupRole::Alb)]);
    let health = ctx.elbv2.describe_target_health().target_group_arn(&alb.app_target_group_arn).send().await.unwrap();
    let mut targets: Vec<(Option<&str>, Option<i32>)> =
        health.target_health_descriptions().iter().filter_map(|d| d.target()).map(|t| (t.id(), t.port())).collect();
    targets.sort();
    let app_port = Some(i32::from(config.ports.app.get()));
    let mut expected: Vec<(Option<&str>, Option<i32>)> =
        compute.instances.values().map(|i| (Some(i.id.as_str()), app_port)).collect();
    expected.sort();
    assert_eq!(targets, expected, "seed {seed}: every instance on the app port");
    let instances = ctx.ec2.describe_instances().instance_ids(&compute.first().id).send().await.unwrap();
    let instance = &instances.reservations()[0].instances()[0];
    assert_eq!(instance.subnet_id(), Some(network.subnet("app")));
    assert_eq!(instance.instance_type().map(|t| t.as_str()), Some(config.compute.instance_type.as_str()));
    let dbs =
        ctx.rds.describe_db_instances().db_instance_identifier(config.names().db_instance()).send().await.unwrap();
    let db = &dbs.db_instances()[0];
    assert_eq!(db.db_instance_status(), Some("available"));
    assert_eq!(db.allocated_storage(), i32::try_from(config.database.allocated_storage_gib).ok());
    assert_eq!(db.endpoint().and_then(|e| e.address()), Some(database.endpoint_address.as_str()));

    let held = oracle::holdings(&ctx, &stack).await;
    assert_eq!(held.counts(), oracle::whole_stack(&config), "seed {seed}: one of each\n{held:#?}");
    // The instance became a healthy target: the data plane starts its nginx only if it
    // reached the internet at boot, so an instance launched before its route to the NAT
    // gateway never answers (the edge from the NAT route to RunInstances).
    let started = std::time::Instant::now();
    loop {
        let health =
            ctx.elbv2.describe_target_health().target_group_arn(&alb.app_target_group_arn).send().await.unwrap();
        let states: Vec<_> = health.target_health_descriptions().iter().map(|d| d.target_health().cloned()).collect();
        let healthy = |h: &Option<aws_sdk_elasticloadbalancingv2::types::TargetHealth>| {
            h.as_ref().and_then(|h| h.state()).is_some_and(|s| s.as_str() == "healthy")
        };
        if !states.is_empty() && states.iter().all(healthy) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "seed {seed}: a target never became healthy: {states:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Converged: a second deploy, in another order, changes nothing.
    ctx.schedule = Schedule::Shuffled { seed: seed + 1 };
    let mark = ctx.calls.mark();
    stack::deploy(&ctx, &config, stack::TIERS).await.unwrap();
    assert!(ctx.calls.since(mark).iter().all(|c| !c.is_mutating()), "seed {seed}: a second deploy changed something");

    // Teardown in a shuffled order too: nothing with the stack's tags is left.
    let plan = stack::plan_teardown(&ctx, &config, stack::TIERS, false).await.unwrap();
    let mark = ctx.calls.mark();
    stack::teardown(&ctx, &plan).await.unwrap_or_else(|err| panic!("seed {seed}: {err}"));
    // Deletes run in the order AWS accepts, not retried into it: only what a deleted load
    // balancer's lingering interfaces hold (its subnets and group) and the NAT gateway's
    // address are tried more than once.
    let calls = ctx.calls.since(mark);
    assert_declared(&calls);
    let tries = |operation: &str, param: &str, id: &str| {
        calls.iter().filter(|c| c.operation == operation && c.params.get(param).map(String::as_str) == Some(id)).count()
    };
    for key in ["app", "db-a", "db-b"] {
        assert_eq!(tries("DeleteSubnet", "SubnetId", network.subnet(key)), 1, "seed {seed}: subnet {key}");
    }
    for role in [SecurityGroupRole::App, SecurityGroupRole::Db] {
        assert_eq!(
            tries("DeleteSecurityGroup", "GroupId", network.security_group(role)),
            1,
            "seed {seed}: group {role}"
        );
    }
    assert_eq!(tries("DeleteVpc", "VpcId", &network.vpc_id), 1, "seed {seed}: the VPC");
    // The address is released once the gateway that held it is seen deleted, not before
    // (then tried again through AWS's AuthFailure window after the deletion).
    for nat in &network.nat_gateways {
        let released = calls
            .iter()
            .position(|c| c.operation == "ReleaseAddress" && c.params.get("AllocationId") == Some(&nat.allocation_id));
        let nat_seen =
            calls.iter().rposition(|c| c.operation == "DescribeNatGateways" && c.params.values().any(|v| *v == nat.id));
        assert!(
            nat_seen.zip(released).is_some_and(|(seen, released)| seen < released),
            "seed {seed}: the address {} released while its NAT gateway {} stood",
            nat.allocation_id,
            nat.id
        );
    }
    let left = oracle::holdings(&ctx, &stack).await;
    assert!(left.is_empty(), "seed {seed}: {left:#?}");
    let err =
        ctx.rds.describe_db_instances().db_instance_identifier(config.names().db_instance()).send().await.unwrap_err();
    assert!(err.as_service_error().is_some_and(|e| e.is_db_instance_not_found_fault()), "{err:?}");
    let states = stack::status(&ctx, &config).await.unwrap();
    assert!(states.iter().all(|(_, s)| *s == stack::TierStatus::Absent), "seed {seed}: {states:?}");
}
