//! The database tier and the whole stack on the emulator: SPEC.md's database lines, the
//! orchestration's order, verify, and a teardown that leaves nothing.

use aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum;
use aws_sdk_iam::types::SummaryKeyType;
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use three_tier_core::schedule::Schedule;
use three_tier_core::{Config, Error, Tier};

use crate::oracle;
use crate::support::{FailFirst, HoldNatPending, assert_declared, clean, config_in, context, context_with, redact};

#[tokio::test]
async fn the_whole_stack_deploys_verifies_reruns_without_change_and_tears_down_to_nothing() {
    let mut config = config_in("it-stack", "sa-east-1");
    config.stack.tags = [("team", "web"), ("cost-center", "42")].map(|(k, v)| (k.to_owned(), v.to_owned())).into();
    let ctx = context(&config).await;
    clean(&ctx, &config).await;

    let mark = ctx.calls.mark();
    let outputs = stack::deploy(&ctx, &config, stack::TIERS).await.unwrap();
    // Every call the deploy made was declared by the step or the read that made it.
    assert_declared(&ctx.calls.since(mark));
    let network = outputs.network.clone().unwrap();
    let database = outputs.database.clone().unwrap();
    assert!(outputs.alb.is_some() && outputs.compute.is_some());

    // One of each resource SPEC.md names, by the test's own describes; every one AWS tags
    // carries its name, the stack's and its tier's tags, a role of its own, and the user's tags.
    let held = oracle::holdings(&ctx, "it-stack").await;
    assert_eq!(held.counts(), oracle::whole_stack(&config), "{held:#?}");
    let mut roles = std::collections::BTreeSet::new();
    for (kind, tier) in oracle::KINDS.iter().filter_map(|(kind, tier)| Some((*kind, (*tier)?))) {
        for (id, tags) in held.0.get(kind).into_iter().flatten() {
            let tag = |key: &str| tags.get(key).map(String::as_str);
            assert!(tag("Name").is_some_and(|n| !n.is_empty()), "{kind} {id}: {tags:?}");
            assert_eq!(tag("three-tier:stack"), Some("it-stack"), "{kind} {id}: {tags:?}");
            assert_eq!(tag("three-tier:tier"), Some(tier.as_str()), "{kind} {id}: {tags:?}");
            assert!(roles.insert(tag("three-tier:role").unwrap_or_default().to_owned()), "{kind} {id}: {tags:?}");
            for (key, value) in &config.stack.tags {
                assert_eq!(tags.get(key), Some(value), "{kind} {id} has the user's tag {key}: {tags:?}");
            }
        }
    }

    // The DB subnet group spans both DB subnets.
    let groups =
        ctx.rds.describe_db_subnet_groups().db_subnet_group_name("it-stack-db-subnet-group").send().await.unwrap();
    let mut subnets: Vec<&str> =
        groups.db_subnet_groups()[0].subnets().iter().filter_map(|s| s.subnet_identifier()).collect();
    subnets.sort();
    let mut db_subnets = vec![network.subnet("db-a"), network.subnet("db-b")];
    db_subnets.sort();
    assert_eq!(subnets, db_subnets);

    // The instance, line by line.
    let instances = ctx.rds.describe_db_instances().db_instance_identifier("it-stack-db").send().await.unwrap();
    let db = &instances.db_instances()[0];
    assert_eq!(db.engine(), Some("mysql"));
    assert!(db.engine_version().is_some_and(|v| v == "8.4" || v.starts_with("8.4.")), "{:?}", db.engine_version());
    assert_eq!(db.db_instance_class(), Some("db.t3.micro"));
    assert_eq!(db.storage_type(), Some("gp2"));
    assert_eq!(db.allocated_storage(), Some(20));
    assert_eq!(db.max_allocated_storage(), None, "storage autoscaling off");
    assert_eq!(db.multi_az(), Some(false));
    assert_eq!(db.publicly_accessible(), Some(false));
    assert_eq!(db.storage_encrypted(), Some(true));
    assert_eq!(db.deletion_protection(), Some(false));
    let groups: Vec<&str> = db.vpc_security_groups().iter().filter_map(|g| g.vpc_security_group_id()).collect();
    assert_eq!(groups, [network.security_group(three_tier_core::SecurityGroupRole::Db)]);
    assert_eq!(db.db_subnet_group().and_then(|g| g.db_subnet_group_name()), Some("it-stack-db-subnet-group"));
    assert_eq!(db.db_name(), Some("sample"));
    assert_eq!(db.master_username(), Some("admin"));
    assert_eq!(db.master_user_secret().and_then(|s| s.secret_arn()), Some(database.master_secret_arn.as_str()));
    assert_eq!(db.endpoint().and_then(|e| e.address()), Some(database.endpoint_address.as_str()));
    assert_eq!(database.port, 3306);

    // RDS made the password: none was sent, and none is in any request the tool made.
    let calls = ctx.calls.calls();
    let create = calls.iter().find(|c| c.operation == "CreateDBInstance").unwrap();
    assert_eq!(create.params.get("ManageMasterUserPassword").map(String::as_str), Some("true"));
    assert!(!create.params.contains_key("MasterUserPassword"));
    assert!(calls.iter().all(|c| !c.params.keys().any(|k| k.contains("Password") && k != "ManageMasterUserPassword")));

    // The instance role may read that secret, told by the DB instance's ARN.
    let policy = ctx
        .iam
        .get_role_policy()
        .role_name("it-stack-app-role-sa-east-1")
        .policy_name("read-database-secret")
        .send()
        .await
        .unwrap();
    let document = percent_decode(policy.policy_document());
    assert!(document.contains(&format!("\"{}\"", database.instance_arn)), "{document}");

    // The diagram draws what stands, with its ids and addresses, as Mermaid and SVG.
    let drawing = stack::diagram(&config, Some(&outputs));
    let mermaid = drawing.mermaid();
    let compute = outputs.compute.clone().unwrap();
    for fact in
        [&network.vpc_id, &network.nat_gateway().public_ip, &compute.first().private_ip, &database.endpoint_address]
    {
        assert!(mermaid.contains(fact.as_str()), "{fact} is drawn:\n{mermaid}");
    }
    // Each id and address is drawn where its role is: a swapped id fails.
    let mut by_role = vec![
        (network.vpc_id.clone(), "[vpc]".to_owned()),
        (network.internet_gateway_id.clone(), "[internet gateway]".to_owned()),
        (network.nat_gateway().id.clone(), "[nat gateway]".to_owned()),
        (network.nat_gateway().public_ip.clone(), "[nat address]".to_owned()),
        (compute.first().id.clone(), "[instance]".to_owned()),
        (compute.first().private_ip.clone(), "[instance address]".to_owned()),
    ];
    by_role.extend(network.subnet_ids.iter().map(|(role, id)| (id.clone(), format!("[subnet {role}]"))));
    by_role.extend(network.security_group_ids.iter().map(|(role, id)| (id.clone(), format!("[group {role}]"))));
    let mut filters: Vec<(String, String)> =
        by_role.into_iter().map(|(id, role)| (format!(r"\b{}\b", id.replace('.', r"\.")), role)).collect();
    filters.push((r"-[0-9]+\.sa-east-1\.elb".into(), "-[number].sa-east-1.elb".into()));
    filters.push((r"it-stack-db\.[a-z0-9]+\.".into(), "it-stack-db.[id].".into()));
    insta::with_settings!({ filters => filters.iter().map(|(f, r)| (f.as_str(), r.as_str())).collect::<Vec<_>>() }, {
        insta::assert_snapshot!("stack_diagram_mermaid", mermaid);
    });
    let svg = drawing.svg();
    assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
    assert!(svg.contains(&compute.first().id) && svg.contains("alb-sg001"), "{svg}");
    // With the real ids, as long as they come, no line runs through a label.
    assert_eq!(drawing.clutter(), Vec::<String>::new(), "{svg}");

    // What it runs, as the region's describe calls show it, is what its config prices.
    let listed = stack::stacks(&ctx).await.unwrap();
    let listed = listed.iter().find(|s| s.name == "it-stack").unwrap();
    // The root volume is the config's size or the AMI's snapshot's, whichever is larger.
    let mut planned = stack::cost::Running::planned(&config, stack::TIERS);
    assert!(listed.running.volumes.len() == 1 && listed.running.volumes[0].gib >= planned.volumes[0].gib);
    planned.volumes = listed.running.volumes.clone();
    assert_eq!(listed.running, planned, "{listed:?}");
    assert!(listed.cost.is_complete(), "{}", listed.cost.render());
    let listed_running = listed.running.clone();

    // Verify: the seed's two goals, from real traffic served by the emulator's data plane
    // (the same verify the AWS test runs: only who serves the traffic differs).
    let traffic = crate::support::traffic();
    let mark = ctx.calls.mark();
    let checks = stack::verify(&ctx, &config, &traffic, stack::VerifyLimits::default()).await.unwrap();
    assert_declared(&ctx.calls.since(mark));
    let outcomes: Vec<stack::Outcome> = checks.iter().map(|c| c.outcome).collect();
    // The three paths, then the three checks of the goals.
    assert_eq!(outcomes, [stack::Outcome::Passed; 6], "{checks:?}");
    let sent = ctx.calls.calls().into_iter().find(|c| c.operation == "SendCommand").unwrap();
    let script = sent.params.get("Parameters.commands.1").unwrap();
    assert!(script.contains(&database.endpoint_address) && script.contains("SHOW DATABASES"), "{script}");
    assert!(script.contains("docker exec -e MYSQL_PWD"), "the password travels in the environment");

    // Every tier stands and matches the config; deploy again changes nothing.
    let states = stack::status(&ctx, &config).await.unwrap();
    assert!(states.iter().all(|(_, s)| *s == stack::TierStatus::UpToDate), "{states:?}");
    let mark = ctx.calls.mark();
    let again = stack::deploy(&ctx, &config, stack::TIERS).await.unwrap();
    assert_eq!(again, outputs);
    let mutating: Vec<String> =
        ctx.calls.since(mark).iter().filter(|c| c.is_mutating()).map(|c| c.operation.clone()).collect();
    assert_eq!(mutating, Vec::<String>::new());

    // A lock left by a run that died: a deploy with nothing to change neither needs nor
    // touches it; with --force-unlock it clears it, and changes nothing else.
    use three_tier_core::lock::{Holder, Lock, StackLock};
    let dead = Holder { who: "someone@elsewhere (pid 1)".into(), ..Holder::this_process("cargo xtask deploy") };
    drop(StackLock::acquire(&ctx, "it-stack", &dead, false).await.unwrap());
    let me = Holder::this_process("cargo xtask deploy");
    let changes_since = |mark| -> Vec<String> {
        let calls = ctx.calls.since(mark);
        calls.iter().filter(|c| c.is_mutating() && !c.refused).map(|c| c.operation.clone()).collect()
    };
    let mark = ctx.calls.mark();
    let deployed = stack::deploy_locked(&ctx, &config, stack::TIERS, &me, false).await.unwrap();
    // Its cost line is read off what it observed, with no read of its own, and counts
    // what the region's describe calls list.
    let observed = deployed.observed.completed(&ctx, &config).await.unwrap();
    assert_eq!(stack::cost::Running::observed(&observed), listed_running);
    // Reads answer while it is held; a teardown is refused, naming the holder.
    stack::plan_deploy(&ctx, &config, stack::TIERS).await.unwrap();
    stack::status(&ctx, &config).await.unwrap();
    stack::outputs(&ctx, &config).await.unwrap();
    stack::stacks(&ctx).await.unwrap();
    let err = stack::teardown_locked(&ctx, &config, stack::TIERS, false, &me, false).await.unwrap_err();
    assert!(matches!(&err, Error::Locked { holder, .. } if holder.contains(&dead.who)), "{err}");
    assert_eq!(changes_since(mark), Vec::<String>::new());
    assert_declared(&ctx.calls.since(mark));
    assert!(
        matches!(three_tier_core::lock::read(&ctx, "it-stack").await.unwrap(), Lock::Held { holder, .. } if holder == dead)
    );
    let mark = ctx.calls.mark();
    stack::deploy_locked(&ctx, &config, stack::TIERS, &me, true).await.unwrap();
    assert_eq!(three_tier_core::lock::read(&ctx, "it-stack").await.unwrap(), Lock::Free);
    assert_eq!(
        changes_since(mark),
        ["PutParameter", "DeleteParameter"],
        "the lock taken over and given back, nothing else"
    );

    // Verify right after a deploy waits for the new target: `initial`, then `unhealthy`
    // while the user data starts nginx, then `healthy`.
    let plan = stack::plan_teardown(&ctx, &config, &[Tier::Compute], false).await.unwrap();
    stack::teardown(&ctx, &plan).await.unwrap();
    // The region's AWS time at a quarter of its pace: the states below last long enough
    // to be seen however loaded the machine.
    let slow = crate::support::RegionClock::at_rate(&config.stack.region, 0.25);
    let redeployed = stack::deploy(&ctx, &config, &[Tier::Compute]).await.unwrap();
    let group = redeployed.alb.unwrap().app_target_group_arn;
    let health = ctx.elbv2.describe_target_health().target_group_arn(group).send().await.unwrap();
    let state = health.target_health_descriptions()[0].target_health().and_then(|h| h.state()).cloned();
    assert_ne!(state, Some(TargetHealthStateEnum::Healthy), "a target just registered");
    // Its SSM agent registers a minute after it runs, and its user data starts the
    // container later still: the database check waits for both.
    let mark = ctx.calls.mark();
    let database_check = stack::verify_database(&ctx, &config, &traffic, stack::VerifyLimits::default()).await.unwrap();
    assert_eq!(database_check.outcome, stack::Outcome::Passed, "{database_check:?}");
    let sends = ctx.calls.since(mark).iter().filter(|c| c.operation == "SendCommand").count();
    assert!(sends > 1, "SendCommand was refused while the agent registered, then retried ({sends})");
    drop(slow);
    let checks = stack::verify(&ctx, &config, &traffic, stack::VerifyLimits::default()).await.unwrap();
    assert!(checks.iter().all(|c| c.outcome == stack::Outcome::Passed), "{checks:?}");

    // Teardown: RDS without a final snapshot and with its automated backups, and nothing left.
    let plan = stack::plan_teardown(&ctx, &config, stack::TIERS, false).await.unwrap();
    let mark = ctx.calls.mark();
    stack::teardown(&ctx, &plan).await.unwrap();
    let calls = ctx.calls.since(mark);
    assert_declared(&calls);
    // The NAT gateway's minute of deletion runs beside the other tiers' teardown.
    let at = |operation: &str| calls.iter().position(|c| c.operation == operation).unwrap();
    let order: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    assert!(at("DeleteNatGateway") < at("DeleteLoadBalancer"), "{order:?}");
    assert!(at("DeleteNatGateway") < at("DeleteDBSubnetGroup"), "{order:?}");
    let delete = calls.iter().find(|c| c.operation == "DeleteDBInstance").unwrap();
    assert_eq!(delete.params.get("SkipFinalSnapshot").map(String::as_str), Some("true"));
    assert_eq!(delete.params.get("DeleteAutomatedBackups").map(String::as_str), Some("true"));
    let states = stack::status(&ctx, &config).await.unwrap();
    assert!(states.iter().all(|(_, s)| *s == stack::TierStatus::Absent), "{states:?}");
    let left = oracle::holdings(&ctx, "it-stack").await;
    assert!(left.is_empty(), "{left:#?}");
    let err = ctx.rds.describe_db_instances().db_instance_identifier("it-stack-db").send().await.unwrap_err();
    assert!(err.as_service_error().is_some_and(|e| e.is_db_instance_not_found_fault()), "{err:?}");
    let err =
        ctx.rds.describe_db_subnet_groups().db_subnet_group_name("it-stack-db-subnet-group").send().await.unwrap_err();
    assert!(err.as_service_error().is_some_and(|e| e.is_db_subnet_group_not_found_fault()), "{err:?}");
    let vpcs = ctx
        .ec2
        .describe_vpcs()
        .filters(aws_sdk_ec2::types::Filter::builder().name("tag:three-tier:stack").values("it-stack").build())
        .send()
        .await
        .unwrap();
    assert!(vpcs.vpcs().is_empty());
}

#[tokio::test]
async fn the_database_starts_while_the_nat_gateway_is_still_pending() {
    let config = config_in("it-order", "us-west-2");
    clean(&context(&config).await, &config).await;
    // Twice `pending`: after the network's first part, and at the waiter's first poll.
    let ctx = context_with(&config, vec![SharedInterceptor::new(HoldNatPending::new(2))]).await;

    let mark = ctx.calls.mark();
    stack::deploy(&ctx, &config, stack::TIERS).await.unwrap();
    let calls = ctx.calls.since(mark);
    let first = |what: &dyn Fn(&three_tier_core::calls::Call) -> bool| calls.iter().position(what).unwrap();
    let create_database = first(&|c| c.operation == "CreateDBInstance");
    let create_balancer = first(&|c| c.operation == "CreateLoadBalancer");
    let nat_route = first(&|c| c.operation == "CreateRoute" && c.params.contains_key("NatGatewayId"));
    let run_instance = first(&|c| c.operation == "RunInstances");
    let order: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    // The database starts once the subnets and security groups exist (SPEC.md, "Order"),
    // while the NAT gateway is pending; that it needs nothing of the route tables is an
    // edge the graph does not have (the stack crate's tests).
    let last = |operation: &str| calls.iter().rposition(|c| c.operation == operation).unwrap();
    assert!(last("CreateSubnet") < create_database && last("CreateSecurityGroup") < create_database, "{order:?}");
    assert!(create_database < nat_route, "the database does not wait for the NAT gateway: {order:?}");
    assert!(create_balancer < nat_route, "nor does the ALB");
    assert!(nat_route < run_instance, "the instance needs the NAT gateway for its user data");

    clean(&ctx, &config).await;
}

#[tokio::test]
async fn teardown_refuses_to_strand_the_tiers_built_on_a_tier() {
    let config = config_in("it-refuse", "ap-south-1");
    let ctx = context(&config).await;
    clean(&ctx, &config).await;
    stack::deploy(&ctx, &config, &[Tier::Network, Tier::Database]).await.unwrap();

    let mark = ctx.calls.mark();
    let err = stack::plan_teardown(&ctx, &config, &[Tier::Network], false).await.unwrap_err();
    assert!(
        matches!(&err, Error::Dependents { tier: Tier::Network, dependents, .. } if *dependents == [Tier::Database]),
        "{err}"
    );
    assert!(err.to_string().contains("--cascade"), "{err}");
    assert!(ctx.calls.since(mark).iter().all(|c| !c.is_mutating()));

    // The database tier alone, with `final_snapshot = true`: RDS is asked for the snapshot,
    // the tier goes and the network stands; then it is deployed alone again.
    let mut keep = config.clone();
    keep.database.final_snapshot = true;
    let plan = stack::plan_teardown(&ctx, &keep, &[Tier::Database], false).await.unwrap();
    let mark = ctx.calls.mark();
    stack::teardown(&ctx, &plan).await.unwrap();
    let calls = ctx.calls.since(mark);
    let delete = calls.iter().find(|c| c.operation == "DeleteDBInstance").unwrap();
    assert_eq!(delete.params.get("SkipFinalSnapshot").map(String::as_str), Some("false"), "{delete:?}");
    let snapshot = delete.params.get("FinalDBSnapshotIdentifier").unwrap();
    assert!(snapshot.starts_with("it-refuse-db-final-"), "{snapshot}");
    let held = oracle::holdings(&ctx, "it-refuse").await;
    assert!(held.of(Tier::Database).is_empty(), "{held:#?}");
    assert_eq!(held.of(Tier::Network).counts(), oracle::whole_tier(&config, Tier::Network), "{held:#?}");
    let snapshots = ctx.rds.describe_db_snapshots().db_snapshot_identifier(snapshot).send().await.unwrap();
    assert_eq!(snapshots.db_snapshots().len(), 1, "the final snapshot is kept");
    ctx.rds.delete_db_snapshot().db_snapshot_identifier(snapshot).send().await.unwrap();
    stack::deploy(&ctx, &config, &[Tier::Database]).await.unwrap();
    let held = oracle::holdings(&ctx, "it-refuse").await;
    assert_eq!(held.of(Tier::Database).counts(), oracle::whole_tier(&config, Tier::Database), "{held:#?}");

    let plan = stack::plan_teardown(&ctx, &config, &[Tier::Network], true).await.unwrap();
    assert!(plan.tier(Tier::Database).is_some(), "--cascade takes the database along");
    stack::teardown(&ctx, &plan).await.unwrap();
    let states = stack::status(&ctx, &config).await.unwrap();
    assert!(states.iter().all(|(_, s)| *s == stack::TierStatus::Absent), "{states:?}");
}

#[tokio::test]
async fn the_wire_requests_of_a_database_deploy() {
    let config = config_in("it-db-wire", "ap-south-1");
    let mut ctx = context(&config).await;
    // Steps one at a time in plan order: the same requests in the same order every run.
    ctx.schedule = Schedule::Ordered;
    clean(&ctx, &config).await;
    stack::deploy(&ctx, &config, &[Tier::Network]).await.unwrap();
    let mark = ctx.calls.mark();
    stack::deploy(&ctx, &config, &[Tier::Database]).await.unwrap();
    insta::assert_yaml_snapshot!("database_deploy_requests", redact(&ctx.calls.since(mark)));
    clean(&ctx, &config).await;
}

pub fn percent_decode(text: &str) -> String {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn the_stack_lock_refuses_a_second_holder_and_is_taken_over_when_stale_or_forced() {
    use three_tier_core::lock::{Holder, StackLock, parameter_name};
    let config = config_in("it-lock", "eu-west-1");
    let ctx = context(&config).await;
    let stack = &config.stack.name;
    let _ = ctx.ssm.delete_parameter().name(parameter_name(stack)).send().await;

    let first = Holder::this_process("cargo xtask deploy");
    let lock = StackLock::acquire(&ctx, stack, &first, false).await.unwrap();
    // A second run is refused, told who holds the stack; nothing of the first is lost.
    let second = Holder { who: "someone@elsewhere (pid 1)".into(), ..Holder::this_process("cargo xtask teardown") };
    let err = StackLock::acquire(&ctx, stack, &second, false).await.unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(&first.who) && message.contains("cargo xtask deploy"), "{message}");
    assert!(message.contains("--force-unlock"), "{message}");
    // Released, it can be taken.
    lock.release(&ctx).await.unwrap();
    let lock = StackLock::acquire(&ctx, stack, &second, false).await.unwrap();

    // --force-unlock takes it over; the run it was taken from does not delete it after.
    let forced = StackLock::acquire(&ctx, stack, &first, true).await.unwrap();
    lock.release(&ctx).await.unwrap();
    let held = ctx.ssm.get_parameter().name(parameter_name(stack)).send().await.unwrap();
    assert!(held.parameter().and_then(|p| p.value()).unwrap().contains("cargo xtask deploy"));
    forced.release(&ctx).await.unwrap();

    // Taken over by the same holder (the same value), the run it was taken from gives
    // back nothing: release compares the version it last wrote.
    let mine = StackLock::acquire(&ctx, stack, &first, false).await.unwrap();
    let again = StackLock::acquire(&ctx, stack, &first, true).await.unwrap();
    mine.release(&ctx).await.unwrap();
    assert!(ctx.ssm.get_parameter().name(parameter_name(stack)).send().await.is_ok(), "the takeover's lock stands");
    again.release(&ctx).await.unwrap();
    let err = ctx.ssm.get_parameter().name(parameter_name(stack)).send().await.unwrap_err();
    assert!(err.as_service_error().is_some_and(|e| e.is_parameter_not_found()), "released: {err:?}");
}

#[tokio::test]
async fn a_lock_written_through_a_long_run_is_not_taken_over_and_one_left_unwritten_is() {
    use std::time::Duration;
    use three_tier_core::lock::{Holder, StackLock, parameter_name, stale_after};
    let config = config_in("it-lock-stale", "eu-west-1");
    let mut ctx = context(&config).await;
    // Written every 300 ms: stale after 1.5 s unwritten, by AWS's LastModifiedDate.
    ctx.waits.lock_refresh = Duration::from_millis(300);
    assert_eq!(stale_after(ctx.waits.lock_refresh), Duration::from_millis(1500));
    let stack = &config.stack.name;
    let _ = ctx.ssm.delete_parameter().name(parameter_name(stack)).send().await;
    let first = Holder::this_process("cargo xtask deploy");
    let second = Holder { who: "someone@elsewhere (pid 1)".into(), ..Holder::this_process("cargo xtask teardown") };

    // A run of 4 s (a long wait) holds the lock; at 3 s, twice the staleness past its
    // taking, a second run is refused: the lock was written all along.
    let mut lock = StackLock::acquire(&ctx, stack, &first, false).await.unwrap();
    let long_run = async {
        tokio::time::sleep(Duration::from_secs(4)).await;
        Ok(())
    };
    let contender = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        StackLock::acquire(&ctx, stack, &second, false).await
    };
    let (held, refused) = tokio::join!(lock.hold(&ctx, long_run), contender);
    held.unwrap();
    let err = refused.unwrap_err();
    assert!(matches!(&err, Error::Locked { holder, .. } if holder.contains(&first.who)), "{err}");
    // Written at least once per staleness period (1.5 s) through the 4 s, or the second
    // run would have taken it over: the acquire and two refreshes at the least. (Every
    // 300 ms when the emulator answers at once; a loaded CI machine answered 7 times.)
    let writes = ctx.calls.calls().iter().filter(|c| c.operation == "PutParameter").count();
    assert!(writes >= 3, "written through 4 s: {writes} writes");
    // Written again and again, its version moved on: release still finds it its own.
    lock.release(&ctx).await.unwrap();
    assert!(ctx.ssm.get_parameter().name(parameter_name(stack)).send().await.is_err(), "released");

    // A lock its run stopped writing (the run died) is taken over once stale.
    let dead = StackLock::acquire(&ctx, stack, &second, false).await.unwrap();
    let err = StackLock::acquire(&ctx, stack, &first, false).await.unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "not stale yet: {err}");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let mut taken = StackLock::acquire(&ctx, stack, &first, false).await.unwrap();
    // Were the dead run to come back, its release leaves the new holder's lock alone.
    dead.release(&ctx).await.unwrap();
    let value = ctx.ssm.get_parameter().name(parameter_name(stack)).send().await.unwrap();
    assert!(value.parameter().and_then(|p| p.value()).unwrap().contains(&first.who));

    // A run whose lock another takes over (here by force) stops starting steps and says
    // who took it.
    let _forced = StackLock::acquire(&ctx, stack, &second, true).await.unwrap();
    let run = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(())
    };
    let err = taken.hold(&ctx, run).await.unwrap_err();
    assert!(matches!(&err, Error::LockTakenOver { holder, .. } if holder.contains(&second.who)), "{err}");
    assert!(ctx.interrupt.is_raised(), "the scheduler starts no further step");
    let _ = ctx.ssm.delete_parameter().name(parameter_name(stack)).send().await;
}

#[tokio::test]
async fn every_stack_in_the_region_is_listed_with_its_tiers_age_and_lock() {
    use three_tier_core::lock::{Holder, StackLock};
    let region = "ap-south-2";
    let (one, two) = (config_in("it-list-one", region), config_in("it-list-two", region));
    let ctx = context(&one).await;
    clean(&ctx, &one).await;
    clean(&ctx, &two).await;
    stack::deploy(&ctx, &one, &[Tier::Network]).await.unwrap();
    stack::deploy(&ctx, &two, &[Tier::Network, Tier::Alb]).await.unwrap();
    let lock =
        StackLock::acquire(&ctx, "it-list-two", &Holder::this_process("cargo xtask deploy"), false).await.unwrap();

    let stacks = stack::stacks(&ctx).await.unwrap();
    let names: Vec<&str> = stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["it-list-one", "it-list-two"], "{stacks:?}");
    assert_eq!(stacks[0].tiers.iter().copied().collect::<Vec<_>>(), [Tier::Network]);
    assert_eq!(stacks[1].tiers.iter().copied().collect::<Vec<_>>(), [Tier::Network, Tier::Alb]);
    assert!(stacks.iter().all(|s| s.since.is_some()), "the NAT gateway dates each: {stacks:?}");
    // What each runs is read from AWS, and is what its config plans for those tiers.
    assert_eq!(stacks[0].running, stack::cost::Running::planned(&one, &[Tier::Network]));
    assert_eq!(stacks[1].running, stack::cost::Running::planned(&two, &[Tier::Network, Tier::Alb]));
    assert!(stacks[0].cost.is_complete() && stacks[1].cost.monthly > stacks[0].cost.monthly, "{stacks:?}");
    assert_eq!(stacks[0].locked_by, None);
    assert!(stacks[1].locked_by.as_deref().is_some_and(|holder| holder.contains("cargo xtask deploy")), "{stacks:?}");
    // An identity that may not read another stack's lock lists every stack all the same,
    // that lock "unknown".
    let denied =
        FailFirst::ssm("GetParameter", 1, "AccessDeniedException", "not authorized to perform: ssm:GetParameter");
    let limited = context_with(&one, vec![SharedInterceptor::new(denied)]).await;
    let listed = stack::stacks(&limited).await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed[0].locked_by.as_deref().is_some_and(|l| l.starts_with("unknown")), "{listed:?}");
    assert!(listed[1].locked_by.as_deref().is_some_and(|holder| holder.contains("cargo xtask deploy")), "{listed:?}");

    lock.release(&ctx).await.unwrap();
    clean(&ctx, &one).await;
    clean(&ctx, &two).await;
    assert_eq!(stack::stacks(&ctx).await.unwrap(), Vec::new(), "torn down, nothing is listed");
}

#[tokio::test]
async fn a_deploy_that_would_cross_an_account_quota_is_refused_before_any_change() {
    let config = config_in("it-quota", "me-central-1");
    let ctx = context(&config).await;
    clean(&ctx, &config).await;
    // The region's VPCs up to the default quota of 5 (the default VPC is one of them).
    let present = ctx.ec2.describe_vpcs().send().await.unwrap().vpcs().len();
    let mut filler = Vec::new();
    for index in present..5 {
        let vpc = ctx.ec2.create_vpc().cidr_block(format!("10.{}.0.0/16", 100 + index)).send().await.unwrap();
        filler.push(vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned());
    }

    let plan = stack::plan_deploy(&ctx, &config, stack::TIERS).await.unwrap();
    let network = plan.tier(Tier::Network).unwrap();
    let quota = network.conflicts.iter().find(|c| c.resource.contains("VPCs per Region"));
    let quota = quota.unwrap_or_else(|| panic!("{}", plan.render()));
    assert!(quota.problem.contains("5 of 5") && quota.fix.contains("Service Quotas"), "{quota:?}");
    assert!(plan.render().contains("! quota \"VPCs per Region\""), "plan shows it");

    let mark = ctx.calls.mark();
    let err = stack::deploy(&ctx, &config, stack::TIERS).await.unwrap_err();
    assert!(err.to_string().contains("VPCs per Region"), "{err}");
    assert!(ctx.calls.since(mark).iter().all(|c| !c.is_mutating()), "refused before any change");

    for vpc in filler {
        ctx.ec2.delete_vpc().vpc_id(vpc).send().await.unwrap();
    }
}

#[tokio::test]
async fn a_deploy_that_would_cross_the_accounts_iam_role_quota_is_refused_before_any_change() {
    // IAM's quotas are the whole account's: filled in an emulator of this test's own, so
    // the other tests' roles are not refused meanwhile.
    let private = crate::support::PrivateEmulator::start("it-iam-quota");
    let config = config_in("it-roles", "us-east-1");
    let ctx = private.context("us-east-1").await;
    let summary = ctx.iam.get_account_summary().send().await.unwrap();
    let count = |key| summary.summary_map().and_then(|m| m.get(&key).copied()).unwrap_or_default();
    let (roles, quota) = (count(SummaryKeyType::Roles), count(SummaryKeyType::RolesQuota));
    assert_eq!(quota, 1000, "the account's own limit, as IAM reports it");
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    crate::support::sixteen_at_once((roles..quota).map(|n| {
        let iam = ctx.iam.clone();
        async move { iam.create_role().role_name(format!("filler-{n}")).assume_role_policy_document(trust).send().await }
    }))
    .await;
    // Instance profiles filled to their quota too.
    let (profiles, profile_quota) =
        (count(SummaryKeyType::InstanceProfiles), count(SummaryKeyType::InstanceProfilesQuota));
    assert_eq!(profile_quota, 1000, "the account's own limit, as IAM reports it");
    crate::support::sixteen_at_once((profiles..profile_quota).map(|n| {
        let iam = ctx.iam.clone();
        async move { iam.create_instance_profile().instance_profile_name(format!("filler-{n}")).send().await }
    }))
    .await;

    let plan = stack::plan_deploy(&ctx, &config, stack::TIERS).await.unwrap();
    let compute = plan.tier(Tier::Compute).unwrap();
    let conflict = compute.conflicts.iter().find(|c| c.resource.contains("Roles per account"));
    let conflict = conflict.unwrap_or_else(|| panic!("{}", plan.render()));
    assert_eq!(conflict.resource, "quota \"Roles per account\" of the account");
    assert!(conflict.problem.contains("1000 of 1000"), "{conflict:?}");
    let profiles = compute.conflicts.iter().find(|c| c.resource.contains("Instance profiles per account"));
    let profiles = profiles.unwrap_or_else(|| panic!("{}", plan.render()));
    assert!(profiles.problem.contains(&format!("{profile_quota} of {profile_quota}")), "{profiles:?}");
    let mark = ctx.calls.mark();
    let err = stack::deploy(&ctx, &config, stack::TIERS).await.unwrap_err();
    assert!(err.to_string().contains("Roles per account"), "{err}");
    assert!(ctx.calls.since(mark).iter().all(|c| !c.is_mutating()), "refused before any change");
}

#[tokio::test]
async fn an_account_limit_that_cannot_be_read_leaves_awss_default_with_a_note() {
    // An endpoint that answers the limit reads with 500, as plain moto 5.2 answers RDS's
    // DescribeAccountAttributes: in an emulator of this test's own, whose faults no other
    // test shares.
    let private = crate::support::PrivateEmulator::start("it-limits");
    let running = &private.running;
    let region = "us-east-2";
    let limit_reads = [
        "rds:DescribeAccountAttributes",
        "ec2:DescribeAccountAttributes",
        "elasticloadbalancing:DescribeAccountLimits",
    ];
    running.set_faults(&serde_json::json!({"region": region, "answer_500": limit_reads})).unwrap();
    let config = config_in("it-limits", region);
    let ctx = private.context(region).await;

    let plan = stack::plan_deploy(&ctx, &config, stack::TIERS).await.unwrap();
    assert_eq!(plan.conflicts().count(), 0, "{}", plan.render());
    let mut notes = plan.notes.clone();
    notes.sort();
    assert_eq!(notes.len(), 3, "{notes:#?}");
    for (note, quota, default) in [
        (&notes[0], "Application Load Balancers per Region", 50),
        (&notes[1], "DB instances", 40),
        (&notes[2], "EC2-VPC Elastic IPs", 5),
    ] {
        assert!(note.starts_with(&format!("quota \"{quota}\": the account's limit could not be read (")), "{note}");
        assert!(note.ends_with(&format!("AWS's default of {default} is assumed")), "{note}");
    }
    assert!(plan.render().contains("note: quota \"DB instances\""), "{}", plan.render());
    // The reads were tried (and retried), and answered 500 every time.
    let answered = running.requests_since(0, region).unwrap();
    let failed: Vec<&str> = answered.iter().filter(|r| r.status == 500).map(|r| r.action.as_str()).collect();
    assert!(failed.contains(&"DescribeAccountAttributes") && failed.contains(&"DescribeAccountLimits"), "{failed:?}");

    // An identity that may not read them: the same notes, saying so.
    running.set_faults(&serde_json::json!({"region": region, "deny": limit_reads})).unwrap();
    let plan = stack::plan_deploy(&ctx, &config, stack::TIERS).await.unwrap();
    assert_eq!(plan.conflicts().count(), 0, "{}", plan.render());
    let notes = &plan.notes;
    assert_eq!(notes.len(), 3, "{notes:#?}");
    assert!(notes.iter().all(|n| n.contains("could not be read (access denied); AWS's default")), "{notes:#?}");

    // The deploy goes on with the defaults.
    let outputs = stack::deploy(&ctx, &config, &[Tier::Network, Tier::Database]).await.unwrap();
    assert!(outputs.database.is_some());
}

#[tokio::test]
async fn quotas_count_a_deleting_nat_gateway_and_not_a_network_load_balancer() {
    // The region's counts are this test's alone in an emulator of its own.
    let private = crate::support::PrivateEmulator::start("it-counts");
    let region = "us-west-2";
    let config = config_in("it-counts", region);
    let ctx = private.context(region).await;
    // The clock stopped: a gateway being deleted stays `deleting`.
    private.running.set_clock(region, emulator::Clock::Freeze).unwrap();
    let ec2 = &ctx.ec2;
    let vpc = ec2.create_vpc().cidr_block("10.50.0.0/16").send().await.unwrap();
    let vpc = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();
    // Internet-facing load balancers need the VPC's internet gateway.
    let gateway = ec2.create_internet_gateway().send().await.unwrap();
    let gateway = gateway.internet_gateway().and_then(|g| g.internet_gateway_id()).unwrap().to_owned();
    ec2.attach_internet_gateway().internet_gateway_id(gateway).vpc_id(&vpc).send().await.unwrap();
    let mut subnets = Vec::new();
    for (block, zone) in [("10.50.1.0/24", "a"), ("10.50.2.0/24", "b")] {
        let zone = format!("{region}{zone}");
        let subnet = ec2.create_subnet().vpc_id(&vpc).cidr_block(block).availability_zone(zone).send().await.unwrap();
        subnets.push(subnet.subnet().and_then(|s| s.subnet_id()).unwrap().to_owned());
    }
    assert_eq!(config.network.nat_subnet().1.availability_zone, format!("{region}a"), "the stack's NAT zone");
    // Five NAT gateways of another owner in the stack's NAT zone, one of them being deleted.
    let mut gateways = Vec::new();
    for _ in 0..5 {
        let address = ec2.allocate_address().domain(aws_sdk_ec2::types::DomainType::Vpc).send().await.unwrap();
        let nat = ec2
            .create_nat_gateway()
            .subnet_id(&subnets[0])
            .allocation_id(address.allocation_id().unwrap())
            .send()
            .await
            .unwrap();
        gateways.push(nat.nat_gateway().and_then(|n| n.nat_gateway_id()).unwrap().to_owned());
    }
    ec2.delete_nat_gateway().nat_gateway_id(&gateways[0]).send().await.unwrap();
    let in_vpc = aws_sdk_ec2::types::Filter::builder().name("vpc-id").values(&vpc).build();
    let listed = ec2.describe_nat_gateways().filter(in_vpc).send().await.unwrap();
    let deleted = listed.nat_gateways().iter().find(|n| n.nat_gateway_id() == Some(gateways[0].as_str())).unwrap();
    assert_eq!(deleted.state(), Some(&aws_sdk_ec2::types::NatGatewayState::Deleting));
    // Application load balancers one short of the account's limit, and a network one.
    let limits = ctx.elbv2.describe_account_limits().send().await.unwrap();
    let limit: usize = limits
        .limits()
        .iter()
        .find(|l| l.name() == Some("application-load-balancers"))
        .and_then(|l| l.max()?.parse().ok())
        .unwrap();
    for n in 1..limit {
        ctx.elbv2
            .create_load_balancer()
            .name(format!("other-{n}"))
            .set_subnets(Some(subnets.clone()))
            .send()
            .await
            .unwrap();
    }
    ctx.elbv2
        .create_load_balancer()
        .name("other-network")
        .r#type(aws_sdk_elasticloadbalancingv2::types::LoadBalancerTypeEnum::Network)
        .set_subnets(Some(subnets.clone()))
        .send()
        .await
        .unwrap();

    let plan = stack::plan_deploy(&ctx, &config, stack::TIERS).await.unwrap();
    let conflicts: Vec<String> = plan.conflicts().map(|c| format!("{}: {}", c.resource, c.problem)).collect();
    assert!(
        conflicts.contains(&format!(
            "quota \"NAT gateways per Availability Zone\" in {region}a: has 5 of 5 in use, and the stack needs 1 more"
        )),
        "the deleting one counts: {conflicts:#?}"
    );
    assert!(!conflicts.iter().any(|c| c.contains("Application Load Balancers")), "the NLB does not: {conflicts:#?}");
    // The five gateways' addresses fill the Elastic IP quota, which the stack's NAT needs one more of.
    let addresses = format!("quota \"EC2-VPC Elastic IPs\" in {region}: has 5 of 5 in use, and the stack needs 1 more");
    assert!(conflicts.contains(&addresses), "{conflicts:#?}");

    // One more application load balancer, and the stack's would cross that quota.
    ctx.elbv2.create_load_balancer().name("other-last").set_subnets(Some(subnets.clone())).send().await.unwrap();
    let plan = stack::plan_deploy(&ctx, &config, stack::TIERS).await.unwrap();
    let conflicts: Vec<String> = plan.conflicts().map(|c| format!("{}: {}", c.resource, c.problem)).collect();
    let balancers = format!(
        "quota \"Application Load Balancers per Region\" in {region}: has {limit} of {limit} in use, and the stack needs 1 more"
    );
    assert!(conflicts.contains(&balancers), "{conflicts:#?}");
}

#[tokio::test]
async fn a_raised_quota_is_read_from_service_quotas() {
    // Six VPCs in the region, and a VPC quota of 10 that the account had raised: in an
    // emulator of this test's own, whose fillers no other test meets.
    let private = crate::support::PrivateEmulator::start("it-raised");
    let region = "eu-west-1";
    let config = config_in("it-raised", region);
    let ctx = private.context(region).await;
    private.running.raise_quota(region, "vpc", "L-F678F1CE", 10.0).unwrap();
    let present = ctx.ec2.describe_vpcs().send().await.unwrap().vpcs().len();
    for index in present..6 {
        ctx.ec2.create_vpc().cidr_block(format!("10.{}.0.0/16", 100 + index)).send().await.unwrap();
    }
    assert_eq!(ctx.ec2.describe_vpcs().send().await.unwrap().vpcs().len(), 6);

    let plan = stack::plan_deploy(&ctx, &config, &[Tier::Network]).await.unwrap();
    assert_eq!(plan.conflicts().count(), 0, "{}", plan.render());
    assert!(plan.notes.is_empty(), "every limit was read: {:?}", plan.notes);
    let asked = ctx.calls.calls().into_iter().filter(|c| c.operation == "GetServiceQuota").count();
    assert!(asked >= 1, "the VPC quota came from Service Quotas");
    stack::deploy(&ctx, &config, &[Tier::Network]).await.unwrap();
    assert_eq!(ctx.ec2.describe_vpcs().send().await.unwrap().vpcs().len(), 7);
}

#[tokio::test]
async fn db_instances_are_counted_across_pages() {
    // RDS answers 100 a page: 150 DB instances of another owner (PostgreSQL, which the data
    // plane serves no server for) in an emulator of this test's own.
    let private = crate::support::PrivateEmulator::start("it-pages");
    let region = "eu-central-1";
    let config = config_in("it-pages", region);
    let ctx = private.context(region).await;
    crate::support::sixteen_at_once((0..150).map(|n| {
        let rds = ctx.rds.clone();
        async move {
            rds.create_db_instance()
                .db_instance_identifier(format!("other-{n}"))
                .engine("postgres")
                .db_instance_class("db.t3.micro")
                .allocated_storage(20)
                .master_username("other")
                .manage_master_user_password(true)
                .send()
                .await
        }
    }))
    .await;
    let first_page = ctx.rds.describe_db_instances().send().await.unwrap();
    assert_eq!(first_page.db_instances().len(), 100, "one page is not all of them");

    let plan = stack::plan_deploy(&ctx, &config, stack::TIERS).await.unwrap();
    let database = plan.tier(Tier::Database).unwrap();
    let quota = database.conflicts.iter().find(|c| c.resource.contains("DB instances"));
    let quota = quota.unwrap_or_else(|| panic!("{}", plan.render()));
    assert_eq!(quota.problem, "has 150 of 40 in use, and the stack needs 1 more", "{quota:?}");
}

#[tokio::test]
async fn a_lock_given_back_while_it_is_read_is_created_again_never_overwritten() {
    use three_tier_core::lock::{Holder, StackLock, parameter_name};
    let config = config_in("it-lock-race", "eu-west-1");
    let stack = &config.stack.name;
    let plain = context(&config).await;
    let _ = plain.ssm.delete_parameter().name(parameter_name(stack)).send().await;
    let first = Holder::this_process("cargo xtask deploy");
    let held = StackLock::acquire(&plain, stack, &first, false).await.unwrap();

    // The second run's create finds the lock, and its read finds none, as if the first run
    // gave it back in between; the first run in fact still holds it when the second
    // creates again: refused, not overwritten.
    let racing = FailFirst::ssm("GetParameter", 1, "ParameterNotFound", "Parameter not found.");
    let ctx = context_with(&config, vec![SharedInterceptor::new(racing)]).await;
    let second = Holder { who: "someone@elsewhere (pid 1)".into(), ..Holder::this_process("cargo xtask teardown") };
    let err = StackLock::acquire(&ctx, stack, &second, false).await.unwrap_err();
    assert!(matches!(&err, Error::Locked { holder, .. } if holder.contains(&first.who)), "{err}");
    let puts: Vec<Option<String>> = ctx
        .calls
        .calls()
        .into_iter()
        .filter(|c| c.operation == "PutParameter")
        .map(|c| c.params.get("Overwrite").cloned())
        .collect();
    assert_eq!(puts, [Some("false".to_owned()), Some("false".to_owned())], "created twice, never overwritten");
    let value = plain.ssm.get_parameter().name(parameter_name(stack)).send().await.unwrap();
    assert!(value.parameter().and_then(|p| p.value()).unwrap().contains(&first.who));
    held.release(&plain).await.unwrap();
}

/// The AWS operations of `calls` that change something (not a Describe, List or Get).
fn changes(calls: &[three_tier_core::calls::Call]) -> Vec<&str> {
    let read = |op: &str| ["Describe", "List", "Get"].iter().any(|prefix| op.starts_with(prefix));
    calls.iter().map(|c| c.operation.as_str()).filter(|op| !read(op)).collect()
}

#[tokio::test]
async fn an_instance_type_or_db_class_aws_does_not_offer_is_refused_before_any_change() {
    // us-east-1e offers no t3 type (EC2's own offerings data, which moto carries).
    let text = Config::DEFAULT_TOML.replace("ap-northeast-1a", "us-east-1e").replace("ap-northeast-1", "us-east-1");
    let mut config = Config::parse(std::path::Path::new("test"), &text).unwrap();
    config.stack.name = "it-offer".into();
    config.database.instance_class = three_tier_core::config::DbInstanceClass::parse("db.r6gd.xlarge").unwrap();
    config.validate(std::path::Path::new("test")).unwrap();
    let ctx = context(&config).await;

    let plan = stack::plan_deploy(&ctx, &config, stack::TIERS).await.unwrap();
    let compute = plan.tier(Tier::Compute).unwrap();
    let offered = compute.conflicts.iter().find(|c| c.resource == "instance type t3.micro");
    let offered = offered.unwrap_or_else(|| panic!("{}", plan.render()));
    assert_eq!(offered.problem, "is not offered in us-east-1e, the app subnet's zone (RunInstances would refuse it)");
    assert!(offered.fix.contains("e.g. t2.") || offered.fix.contains("e.g. t3a."), "nearest offered: {offered:?}");
    let database = plan.tier(Tier::Database).unwrap();
    let class = database.conflicts.iter().find(|c| c.resource == "DB instance class db.r6gd.xlarge");
    let class = class.unwrap_or_else(|| panic!("{}", plan.render()));
    assert_eq!(
        class.problem,
        "is not offered for mysql 8.4 with gp2 storage in us-east-1 (CreateDBInstance would refuse it)"
    );
    assert!(class.fix.contains("db.t3.micro"), "what is offered: {class:?}");

    // deploy refuses, naming the first, and changes nothing.
    let mark = ctx.calls.calls().len();
    let err = stack::deploy(&ctx, &config, stack::TIERS).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict { resource, .. } if resource == "instance type t3.micro"), "{err}");
    assert_eq!(changes(&ctx.calls.calls()[mark..]), Vec::<&str>::new());

    // A type no zone offers (a typo) is refused the same way, with the family's sizes.
    let mut typo = config_in("it-offer", "us-east-1");
    typo.compute.instance_type = three_tier_core::config::InstanceType::parse("t3.gigantic").unwrap();
    let plan = stack::plan_deploy(&ctx, &typo, stack::TIERS).await.unwrap();
    let compute = plan.tier(Tier::Compute).unwrap();
    let refused = compute.conflicts.iter().find(|c| c.resource == "instance type t3.gigantic");
    let refused = refused.unwrap_or_else(|| panic!("{}", plan.render()));
    assert!(refused.fix.contains("t3.large") && refused.fix.contains("t3.micro"), "{refused:?}");
    // The default config's choices are offered: no conflict.
    let plan = stack::plan_deploy(&ctx, &config_in("it-offer", "us-east-1"), stack::TIERS).await.unwrap();
    assert!(plan.tiers.iter().all(|t| t.conflicts.is_empty()), "{}", plan.render());
}

#[tokio::test]
async fn the_instance_types_vcpus_count_against_the_on_demand_vcpu_quota() {
    let private = crate::support::PrivateEmulator::start("it-vcpus");
    let region = "eu-west-1";
    let config = config_in("it-vcpus", region);
    let ctx = private.context(region).await;
    let vcpu_quota = |value: f64| private.running.raise_quota(region, "ec2", "L-1216C47A", value).unwrap();
    let quota_conflict = |plan: &stack::StackPlan| {
        let compute = plan.tier(Tier::Compute).unwrap();
        compute.conflicts.iter().find(|c| c.resource.contains("On-Demand Standard")).map(|c| c.problem.clone())
    };
    // Another owner's t3.micro runs in the region: 2 vCPUs of 4.
    vcpu_quota(4.0);
    let image = ctx.ec2.describe_images().send().await.unwrap();
    let image = image.images()[0].image_id().unwrap().to_owned();
    let launched = ctx
        .ec2
        .run_instances()
        .image_id(&image)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    assert_eq!(launched.instances().len(), 1);
    let plan = stack::plan_deploy(&ctx, &config, stack::TIERS).await.unwrap();
    assert_eq!(quota_conflict(&plan), None, "2 of 4 in use, 2 more fit: {}", plan.render());
    // A quota of 3: the stack's t3.micro (2 vCPUs) no longer fits.
    vcpu_quota(3.0);
    let plan = stack::plan_deploy(&ctx, &config, stack::TIERS).await.unwrap();
    assert_eq!(
        quota_conflict(&plan).as_deref(),
        Some("has 2 of 3 in use, and the stack needs 2 more"),
        "{}",
        plan.render()
    );
}

#[tokio::test]
async fn multi_az_is_created_then_turned_off_and_on_in_place_with_the_standby_in_another_zone() {
    let mut config = crate::support::config("it-multi-az");
    config.database.multi_az = true;
    let ctx = context(&config).await;
    clean(&ctx, &config).await;
    let tiers = [Tier::Network, Tier::Database];

    // The test's own read: (ARN, MultiAZ, primary zone, standby zone).
    let described = || async {
        let answer =
            ctx.rds.describe_db_instances().db_instance_identifier(config.names().db_instance()).send().await.unwrap();
        let db = &answer.db_instances()[0];
        let zone = |z: Option<&str>| z.map(str::to_owned);
        (
            db.db_instance_arn().unwrap().to_owned(),
            db.multi_az(),
            zone(db.availability_zone()),
            zone(db.secondary_availability_zone()),
        )
    };
    let outputs = stack::deploy(&ctx, &config, &tiers).await.unwrap();
    let (arn, multi_az, primary, standby) = described().await;
    assert_eq!(multi_az, Some(true));
    let db_zones: Vec<&str> =
        config.network.subnets.of(three_tier_core::SubnetRole::Db).map(|(_, s)| s.availability_zone.as_str()).collect();
    let (primary, standby) = (primary.unwrap(), standby.expect("a Multi-AZ instance names its standby's zone"));
    assert!(primary != standby && db_zones.contains(&primary.as_str()) && db_zones.contains(&standby.as_str()));
    let database = outputs.database.unwrap();
    assert_eq!(database.multi_az.and_then(|s| s.zone), Some(standby));

    // Off, then on again: the same instance is modified, never replaced.
    for on in [false, true] {
        let mut wanted = config.clone();
        wanted.database.multi_az = on;
        let plan = stack::plan_deploy(&ctx, &wanted, &tiers).await.unwrap();
        assert!(plan.render().contains(if on { "Multi-AZ on" } else { "Multi-AZ off" }), "{}", plan.render());
        let mark = ctx.calls.mark();
        stack::deploy(&ctx, &wanted, &tiers).await.unwrap();
        let calls = ctx.calls.since(mark);
        assert_declared(&calls);
        let modify = calls.iter().find(|c| c.operation == "ModifyDBInstance").unwrap();
        assert_eq!(modify.params.get("MultiAZ").map(String::as_str), Some(if on { "true" } else { "false" }));
        assert!(!calls.iter().any(|c| c.operation == "CreateDBInstance" || c.operation == "DeleteDBInstance"));
        let (same_arn, multi_az, _, standby) = described().await;
        assert_eq!((same_arn.as_str(), multi_az, standby.is_some()), (arn.as_str(), Some(on), on));
    }

    clean(&ctx, &config).await;
}
