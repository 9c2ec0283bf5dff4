//! The strict emulator: each AWS rule it adds bites when the order is wrong, and time
//! passes for what AWS takes minutes to do. (These tests need the strict emulator, the
//! default; they are skipped with a note under `THREE_TIER_EMULATOR=plain`.)

use aws_sdk_ec2::types::NatGatewayState;
use three_tier_core::error::Answer;
use three_tier_core::{AwsContext, AwsResultExt, Config, Result, RouteTableRole, SecurityGroupRole, Tier};

use crate::oracle;
use crate::support::{PrivateEmulator, RegionClock, clean, config_in, context, emulator, with_faults};

fn strict() -> bool {
    let strict = emulator().mode.strict;
    if !strict {
        eprintln!("skipped: the emulator is plain moto (THREE_TIER_EMULATOR=plain)");
    }
    strict
}

fn code<T: std::fmt::Debug>(result: Result<T>) -> String {
    result.expect_err("AWS refuses this").code().unwrap_or("none").to_owned()
}

async fn nat_state(ctx: &AwsContext, id: &str) -> NatGatewayState {
    let answer = ctx.ec2.describe_nat_gateways().nat_gateway_ids(id).send().await.unwrap();
    answer.nat_gateways()[0].state().cloned().unwrap()
}

#[tokio::test]
async fn a_teardown_in_the_wrong_order_fails_on_the_rules_aws_enforces() {
    if !strict() {
        return;
    }
    let config = config_in("it-order2", "me-south-1");
    let ctx = context(&config).await;
    clean(&ctx, &config).await;
    let network = stack::deploy(&ctx, &config, &[Tier::Network]).await.unwrap().network.unwrap();
    let ec2 = &ctx.ec2;

    // A subnet with a NAT gateway in it.
    let alb_subnet = network.subnet("alb-a");
    assert_eq!(code(ec2.delete_subnet().subnet_id(alb_subnet).send().await.aws("DeleteSubnet")), "DependencyViolation");
    // A security group another group's rule refers to.
    let alb_group = network.security_group(SecurityGroupRole::Alb);
    assert_eq!(
        code(ec2.delete_security_group().group_id(alb_group).send().await.aws("DeleteSecurityGroup")),
        "DependencyViolation"
    );
    // The NAT gateway's address, while the gateway stands.
    let nat = network.nat_gateway();
    assert_eq!(
        code(ec2.release_address().allocation_id(&nat.allocation_id).send().await.aws("ReleaseAddress")),
        "InvalidIPAddress.InUse"
    );
    // The internet gateway, while the NAT gateway's public address is mapped.
    assert_eq!(
        code(
            ec2.detach_internet_gateway()
                .internet_gateway_id(&network.internet_gateway_id)
                .vpc_id(&network.vpc_id)
                .send()
                .await
                .aws("DetachInternetGateway")
        ),
        "DependencyViolation"
    );
    // The VPC, with its groups and gateway still in it.
    assert_eq!(code(ec2.delete_vpc().vpc_id(&network.vpc_id).send().await.aws("DeleteVpc")), "DependencyViolation");

    // The NAT gateway is `deleting` for a while, and its address stays held until it is `deleted`.
    let clock = RegionClock::stopped(&config.stack.region);
    ec2.delete_nat_gateway().nat_gateway_id(&nat.id).send().await.unwrap();
    assert_eq!(nat_state(&ctx, &nat.id).await, NatGatewayState::Deleting);
    assert_eq!(
        code(ec2.release_address().allocation_id(&nat.allocation_id).send().await.aws("ReleaseAddress")),
        "InvalidIPAddress.InUse"
    );
    clock.pass("nat_gateway_deleted");
    assert_eq!(nat_state(&ctx, &nat.id).await, NatGatewayState::Deleted);
    // Then, for a while, AWS refuses to release its address as if it were another's.
    assert_eq!(
        code(ec2.release_address().allocation_id(&nat.allocation_id).send().await.aws("ReleaseAddress")),
        "AuthFailure"
    );
    drop(clock);

    // The right order still works, riding out that refusal.
    let plan = stack::plan_teardown(&ctx, &config, &[Tier::Network], false).await.unwrap();
    plan.apply(&ctx).await.unwrap();
    assert!(stack::plan_teardown(&ctx, &config, &[Tier::Network], false).await.unwrap().deletes_nothing());
}

#[tokio::test]
async fn a_deleted_load_balancers_interfaces_hold_its_subnets_for_a_while() {
    if !strict() {
        return;
    }
    let config = config_in("it-linger", "eu-south-2");
    let ctx = context(&config).await;
    clean(&ctx, &config).await;
    let network = stack::deploy(&ctx, &config, &[Tier::Network]).await.unwrap().network.unwrap();
    let alb_out = stack::deploy(&ctx, &config, &[Tier::Alb]).await.unwrap().alb.unwrap();

    let clock = RegionClock::stopped(&config.stack.region);
    ctx.elbv2.delete_load_balancer().load_balancer_arn(&alb_out.load_balancer_arn).send().await.unwrap();
    let subnet = network.subnet("alb-b");
    assert_eq!(code(ctx.ec2.delete_subnet().subnet_id(subnet).send().await.aws("DeleteSubnet")), "DependencyViolation");
    drop(clock);
    // The network teardown that follows rides it out (DependencyViolation is retried).
    let plan = stack::plan_teardown(&ctx, &config, stack::TIERS, false).await.unwrap();
    stack::teardown(&ctx, &plan).await.unwrap();
    assert!(stack::plan_teardown(&ctx, &config, &[Tier::Network], false).await.unwrap().deletes_nothing());
}

#[tokio::test]
async fn invalid_alb_and_rds_requests_are_refused_with_aws_codes() {
    if !strict() {
        return;
    }
    let config: Config = config_in("it-params", "ap-southeast-3");
    let ctx = context(&config).await;
    clean(&ctx, &config).await;
    let network = stack::deploy(&ctx, &config, &[Tier::Network]).await.unwrap().network.unwrap();
    let (a, b) = (network.subnet("alb-a"), network.subnet("app"));

    // An ALB in one zone (alb-subnet and app-subnet are both in the first zone).
    let one_zone = ctx
        .elbv2
        .create_load_balancer()
        .name("it-strict-one-zone")
        .subnets(a)
        .subnets(b)
        .send()
        .await
        .aws("CreateLoadBalancer");
    assert_eq!(code(one_zone), "ValidationError");

    // A DB subnet group in one zone.
    let group = ctx
        .rds
        .create_db_subnet_group()
        .db_subnet_group_name("it-strict-one-zone")
        .db_subnet_group_description("one zone")
        .subnet_ids(network.subnet("db-a"))
        .subnet_ids(network.subnet("app"))
        .send()
        .await
        .aws("CreateDBSubnetGroup");
    assert_eq!(code(group), "DBSubnetGroupDoesNotCoverEnoughAZs");

    let db = |id: &str| {
        ctx.rds
            .create_db_instance()
            .db_instance_identifier(id)
            .engine("mysql")
            .db_instance_class("db.t3.micro")
            .master_username("admin")
            .allocated_storage(20)
    };
    assert_eq!(code(db("it-strict-no-password").send().await.aws("CreateDBInstance")), "InvalidParameterValue");
    assert_eq!(
        code(
            db("it-strict-both")
                .manage_master_user_password(true)
                .master_user_password("not-a-secret-1")
                .send()
                .await
                .aws("CreateDBInstance")
        ),
        "InvalidParameterCombination"
    );
    assert_eq!(
        code(
            db("it-strict-small")
                .manage_master_user_password(true)
                .allocated_storage(5)
                .send()
                .await
                .aws("CreateDBInstance")
        ),
        "InvalidParameterValue"
    );

    // An RDS instance is `creating` for a while; deleting it needs SkipFinalSnapshot or a snapshot name.
    let clock = RegionClock::stopped(&config.stack.region);
    db("it-strict-db").manage_master_user_password(true).send().await.unwrap();
    // A Multi-AZ one is `creating` until its standby is added too.
    db("it-strict-multi-az").manage_master_user_password(true).multi_az(true).send().await.unwrap();
    let rds = &ctx.rds;
    let status_of = |id: &'static str| async move {
        let answer = rds.describe_db_instances().db_instance_identifier(id).send().await.unwrap();
        answer.db_instances()[0].db_instance_status().unwrap_or_default().to_owned()
    };
    let status = || status_of("it-strict-db");
    assert_eq!(status().await, "creating");
    clock.pass("db_instance_available");
    assert_eq!(status().await, "available");
    assert_eq!(status_of("it-strict-multi-az").await, "creating");
    clock.pass("db_standby_added");
    assert_eq!(status_of("it-strict-multi-az").await, "available");
    ctx.rds
        .delete_db_instance()
        .db_instance_identifier("it-strict-multi-az")
        .skip_final_snapshot(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(ctx.rds.delete_db_instance().db_instance_identifier("it-strict-db").send().await.aws("DeleteDBInstance")),
        "InvalidParameterCombination"
    );
    ctx.rds.delete_db_instance().db_instance_identifier("it-strict-db").skip_final_snapshot(true).send().await.unwrap();
    assert_eq!(status().await, "deleting");
    clock.pass("db_instance_deleted");
    let gone = ctx.rds.describe_db_instances().db_instance_identifier("it-strict-db").send().await;
    assert_eq!(
        code(gone.aws("DescribeDBInstances")),
        "DBInstanceNotFound",
        "a deleted RDS instance is gone after a while"
    );
    drop(clock);

    clean(&ctx, &config).await;
}

#[tokio::test]
async fn network_instance_and_listener_requests_aws_refuses_are_refused() {
    if !strict() {
        return;
    }
    let config = config_in("it-refusals", "ap-southeast-2");
    let ctx = context(&config).await;
    clean(&ctx, &config).await;
    let network = stack::deploy(&ctx, &config, &[Tier::Network]).await.unwrap().network.unwrap();
    let alb_out = stack::deploy(&ctx, &config, &[Tier::Alb]).await.unwrap().alb.unwrap();
    let ec2 = &ctx.ec2;
    let vpc_filter = |name: &str, value: &str| aws_sdk_ec2::types::Filter::builder().name(name).values(value).build();

    // The VPC's default security group.
    let default = ec2
        .describe_security_groups()
        .filters(vpc_filter("vpc-id", &network.vpc_id))
        .filters(vpc_filter("group-name", "default"))
        .send()
        .await
        .unwrap();
    let default = default.security_groups()[0].group_id().unwrap();
    assert_eq!(
        code(ec2.delete_security_group().group_id(default).send().await.aws("DeleteSecurityGroup")),
        "CannotDelete"
    );

    // A second internet gateway.
    let second = ec2.create_internet_gateway().send().await.unwrap();
    let second = second.internet_gateway().and_then(|g| g.internet_gateway_id()).unwrap();
    let attach = ec2.attach_internet_gateway().internet_gateway_id(second).vpc_id(&network.vpc_id).send().await;
    assert_eq!(code(attach.aws("AttachInternetGateway")), "Resource.AlreadyAssociated");
    ec2.delete_internet_gateway().internet_gateway_id(second).send().await.unwrap();

    // A subnet that has a route table already; a route to a NAT gateway that does not exist.
    let db_table = network.route_table(RouteTableRole::Db);
    let associate = ec2.associate_route_table().route_table_id(db_table).subnet_id(network.subnet("alb-a"));
    assert_eq!(code(associate.send().await.aws("AssociateRouteTable")), "Resource.AlreadyAssociated");
    let route = ec2
        .create_route()
        .route_table_id(db_table)
        .destination_cidr_block("192.0.2.0/24")
        .nat_gateway_id("nat-0123456789abcdef0");
    assert_eq!(code(route.send().await.aws("CreateRoute")), "InvalidNatGatewayID.NotFound");

    // Instances with an unknown image, an unknown type, another VPC's security group.
    let image = ctx.ssm.get_parameter().name(&config.compute.ami_parameter).send().await.unwrap();
    let image = image.parameter().and_then(|p| p.value()).unwrap().to_owned();
    let launch = |image: &str, instance_type: &str, group: &str| {
        ctx.ec2
            .run_instances()
            .image_id(image)
            .instance_type(aws_sdk_ec2::types::InstanceType::from(instance_type))
            .min_count(1)
            .max_count(1)
            .subnet_id(network.subnet("app"))
            .security_group_ids(group)
            .send()
    };
    let web = network.security_group(SecurityGroupRole::App);
    assert_eq!(
        code(launch("ami-0123456789abcdef0", "t3.micro", web).await.aws("RunInstances")),
        "InvalidAMIID.NotFound"
    );
    // As AWS answers a type it does not know (moto's own code is InvalidInstanceType.NotFound).
    assert_eq!(code(launch(&image, "t3.nonesuch", web).await.aws("RunInstances")), "InvalidParameterValue");
    let other_vpc = ec2.create_vpc().cidr_block("10.9.0.0/16").send().await.unwrap();
    let other_vpc = other_vpc.vpc().and_then(|v| v.vpc_id()).unwrap();
    let other_group =
        ec2.create_security_group().group_name("it-refusals-other").description("other").vpc_id(other_vpc);
    let other_group = other_group.send().await.unwrap().group_id().unwrap().to_owned();
    assert_eq!(code(launch(&image, "t3.micro", &other_group).await.aws("RunInstances")), "InvalidParameter");

    // An ALB with another VPC's security group; a second listener on port 80.
    let load_balancer = ctx
        .elbv2
        .create_load_balancer()
        .name("it-refusals-other-group")
        .subnets(network.subnet("alb-a"))
        .subnets(network.subnet("alb-b"))
        .security_groups(&other_group);
    assert_eq!(code(load_balancer.send().await.aws("CreateLoadBalancer")), "InvalidSecurityGroup");
    let forward = aws_sdk_elasticloadbalancingv2::types::Action::builder()
        .r#type(aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum::Forward)
        .target_group_arn(&alb_out.app_target_group_arn)
        .build();
    let listener = ctx
        .elbv2
        .create_listener()
        .load_balancer_arn(&alb_out.load_balancer_arn)
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(80)
        .default_actions(forward);
    assert_eq!(code(listener.send().await.aws("CreateListener")), "DuplicateListener");

    // An internet-facing ALB in a VPC with no internet gateway attached.
    let mut unreachable = Vec::new();
    let zones = config.network.subnets.of(three_tier_core::SubnetRole::Alb).map(|(_, s)| &s.availability_zone);
    for (block, zone) in ["10.9.1.0/24", "10.9.2.0/24"].into_iter().zip(zones) {
        let subnet = ec2.create_subnet().vpc_id(other_vpc).cidr_block(block).availability_zone(zone).send().await;
        unreachable.push(subnet.unwrap().subnet().and_then(|s| s.subnet_id()).unwrap().to_owned());
    }
    let load_balancer =
        ctx.elbv2.create_load_balancer().name("it-refusals-no-gateway").set_subnets(Some(unreachable.clone()));
    assert_eq!(code(load_balancer.send().await.aws("CreateLoadBalancer")), "InvalidSubnet");
    for subnet in unreachable {
        ec2.delete_subnet().subnet_id(subnet).send().await.unwrap();
    }
    ec2.delete_security_group().group_id(&other_group).send().await.unwrap();
    ec2.delete_vpc().vpc_id(other_vpc).send().await.unwrap();
    clean(&ctx, &config).await;
}

#[tokio::test]
async fn the_emulator_logs_every_request_with_its_status() {
    if !strict() {
        return;
    }
    let config = config_in("it-strict-log", "us-east-1");
    let ctx = context(&config).await;
    let marker = "it-strict-log-marker";
    let mark = emulator().request_mark().unwrap();
    let _ = ctx.ec2.describe_vpcs().vpc_ids("vpc-00000000").send().await;
    let _ = ctx.iam.get_role().role_name(marker).send().await;
    let log = emulator().requests_since(mark, &config.stack.region).unwrap();
    let position = log.iter().rposition(|r| r.service == "iam" && r.action == "GetRole" && r.status == 404);
    assert!(position.is_some(), "GetRole of a missing role is logged with 404, and its region: {log:?}");
    assert!(log.iter().any(|r| r.service == "ec2" && r.action == "DescribeVpcs" && r.status >= 400));
}

#[tokio::test]
async fn nat_gateways_load_balancers_instances_and_targets_take_their_time() {
    if !strict() {
        return;
    }
    let config = config_in("it-time", "eu-west-2");
    let ctx = context(&config).await;
    clean(&ctx, &config).await;
    let network = stack::deploy(&ctx, &config, &[Tier::Network]).await.unwrap().network.unwrap();
    let alb_out = stack::deploy(&ctx, &config, &[Tier::Alb]).await.unwrap().alb.unwrap();
    let image = ctx.ssm.get_parameter().name(&config.compute.ami_parameter).send().await.unwrap();
    let image = image.parameter().and_then(|p| p.value()).unwrap().to_owned();
    let ec2 = &ctx.ec2;

    // From here the region's clock moves only when the test says.
    let clock = RegionClock::stopped(&config.stack.region);

    // A new NAT gateway is `pending` for a while, then `available`.
    let address = ec2.allocate_address().domain(aws_sdk_ec2::types::DomainType::Vpc).send().await.unwrap();
    let allocation_id = address.allocation_id().unwrap().to_owned();
    let nat =
        ec2.create_nat_gateway().subnet_id(network.subnet("alb-b")).allocation_id(&allocation_id).send().await.unwrap();
    let nat_id = nat.nat_gateway().and_then(|n| n.nat_gateway_id()).unwrap().to_owned();
    // (By its VPC: by its id, a new NAT gateway is unknown for a moment.)
    let nat_in_vpc = || async {
        let vpc = aws_sdk_ec2::types::Filter::builder().name("vpc-id").values(&network.vpc_id).build();
        let answer = ec2.describe_nat_gateways().filter(vpc).send().await.unwrap();
        answer.nat_gateways().iter().find(|n| n.nat_gateway_id() == Some(nat_id.as_str())).unwrap().state().cloned()
    };
    assert_eq!(nat_in_vpc().await, Some(NatGatewayState::Pending));
    clock.pass("nat_gateway_available");
    assert_eq!(nat_state(&ctx, &nat_id).await, NatGatewayState::Available);
    ec2.delete_nat_gateway().nat_gateway_id(&nat_id).send().await.unwrap();
    assert_eq!(nat_state(&ctx, &nat_id).await, NatGatewayState::Deleting);
    clock.pass("nat_gateway_deleted");
    assert_eq!(nat_state(&ctx, &nat_id).await, NatGatewayState::Deleted);
    clock.pass("address_release_delay");
    ec2.release_address().allocation_id(&allocation_id).send().await.unwrap();

    // A new load balancer is `provisioning` for a while, then `active`.
    let created = ctx
        .elbv2
        .create_load_balancer()
        .name("it-time-lb")
        .subnets(network.subnet("alb-a"))
        .subnets(network.subnet("alb-b"))
        .security_groups(network.security_group(SecurityGroupRole::Alb))
        .send()
        .await
        .unwrap();
    let arn = created.load_balancers()[0].load_balancer_arn().unwrap().to_owned();
    let lb_state = || async {
        let answer = ctx.elbv2.describe_load_balancers().load_balancer_arns(&arn).send().await.unwrap();
        answer.load_balancers()[0].state().and_then(|s| s.code()).map(|c| c.as_str().to_owned()).unwrap()
    };
    assert_eq!(lb_state().await, "provisioning");
    clock.pass("load_balancer_active");
    assert_eq!(lb_state().await, "active");
    ctx.elbv2.delete_load_balancer().load_balancer_arn(&arn).send().await.unwrap();

    let launched = ctx
        .ec2
        .run_instances()
        .image_id(image)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .subnet_id(network.subnet("app"))
        // The stack's app: the data plane's health checks reach nginx once it has booted.
        .security_group_ids(network.security_group(SecurityGroupRole::App))
        .user_data(aws_smithy_types::base64::encode(compute::user_data::render(&[3030])))
        .send()
        .await
        .unwrap();
    let id = launched.instances()[0].instance_id().unwrap().to_owned();
    // Right after launch EC2 and ELB do not know the instance by its id yet.
    let target = aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder().id(&id).port(3030).build();
    let unknown = ctx.ec2.describe_instances().instance_ids(&id).send().await.aws("DescribeInstances");
    assert_eq!(code(unknown), "InvalidInstanceID.NotFound");
    let register = ctx.elbv2.register_targets().target_group_arn(&alb_out.app_target_group_arn).targets(target.clone());
    assert_eq!(code(register.send().await.aws("RegisterTargets")), "InvalidTarget");
    let state = || async {
        let answer = ctx.ec2.describe_instances().instance_ids(&id).send().await.unwrap();
        let instance = &answer.reservations()[0].instances()[0];
        instance.state().and_then(|s| s.name()).map(|n| n.as_str().to_owned()).unwrap()
    };
    clock.pass("instance_visible");
    assert_eq!(state().await, "pending");
    clock.pass("instance_running");
    assert_eq!(state().await, "running");
    // SSM knows the instance only once its agent has registered, a minute after it runs.
    let send = || {
        ctx.ssm
            .send_command()
            .document_name("AWS-RunShellScript")
            .instance_ids(&id)
            .parameters("commands", vec!["true".into()])
            .send()
    };
    assert_eq!(code(send().await.aws("SendCommand")), "InvalidInstanceId");

    // A target registered as soon as its instance runs is `initial` through its first
    // checks, `unhealthy` while the user data still starts nginx, then `healthy` after
    // five passing checks: `verify` right after a deploy has to wait for it.
    ctx.elbv2.register_targets().target_group_arn(&alb_out.app_target_group_arn).targets(target).send().await.unwrap();
    let health = || async {
        let answer =
            ctx.elbv2.describe_target_health().target_group_arn(&alb_out.app_target_group_arn).send().await.unwrap();
        let state = answer.target_health_descriptions()[0].target_health().and_then(|h| h.state()).cloned();
        state.map(|s| s.as_str().to_owned()).unwrap_or_default()
    };
    assert_eq!(health().await, "initial");
    clock.pass("target_healthy");
    assert_eq!(health().await, "unhealthy");
    clock.pass("ssm_agent_registered");
    send().await.expect("the agent has registered");
    clock.pass("user_data_boot");
    clock.pass("target_recovery");
    assert_eq!(health().await, "healthy");

    ctx.ec2.terminate_instances().instance_ids(&id).send().await.unwrap();
    assert_eq!(state().await, "shutting-down");
    clock.pass("instance_terminated");
    assert_eq!(state().await, "terminated");

    drop(clock);
    clean(&ctx, &config).await;
}

#[tokio::test]
async fn new_security_groups_route_tables_and_nat_gateways_are_unknown_by_id_for_a_moment() {
    if !strict() {
        return;
    }
    let config = config_in("it-young", "ap-east-1");
    let ctx = context(&config).await;
    let ec2 = &ctx.ec2;
    let clock = RegionClock::stopped(&config.stack.region);
    let vpc = ec2.create_vpc().cidr_block("10.9.0.0/16").send().await.unwrap();
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();

    // A group AWS has just made: its first use a moment later can answer NotFound.
    let group = ec2.create_security_group().group_name("it-young").description("young").vpc_id(&vpc_id).send().await;
    let group_id = group.unwrap().group_id().unwrap().to_owned();
    let rule = aws_sdk_ec2::types::IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(80)
        .to_port(80)
        .ip_ranges(aws_sdk_ec2::types::IpRange::builder().cidr_ip("0.0.0.0/0").build())
        .build();
    let authorize = || ec2.authorize_security_group_ingress().group_id(&group_id).ip_permissions(rule.clone()).send();
    assert_eq!(code(authorize().await.aws("AuthorizeSecurityGroupIngress")), "InvalidGroup.NotFound");
    clock.pass("new_resource_visible");
    authorize().await.expect("the group is known now");

    // A route table, the same.
    let subnet = ec2.create_subnet().vpc_id(&vpc_id).cidr_block("10.9.0.0/24").availability_zone("ap-east-1a").send();
    let subnet_id = subnet.await.unwrap().subnet().and_then(|s| s.subnet_id()).unwrap().to_owned();
    let table = ec2.create_route_table().vpc_id(&vpc_id).send().await.unwrap();
    let table_id = table.route_table().and_then(|t| t.route_table_id()).unwrap().to_owned();
    let associate = || ec2.associate_route_table().route_table_id(&table_id).subnet_id(&subnet_id).send();
    assert_eq!(code(associate().await.aws("AssociateRouteTable")), "InvalidRouteTableID.NotFound");
    clock.pass("new_resource_visible");
    associate().await.expect("the route table is known now");

    // A NAT gateway, to a describe by its id.
    let address = ec2.allocate_address().domain(aws_sdk_ec2::types::DomainType::Vpc).send().await.unwrap();
    let allocation_id = address.allocation_id().unwrap().to_owned();
    let gateway = ec2.create_internet_gateway().send().await.unwrap();
    let gateway_id = gateway.internet_gateway().and_then(|g| g.internet_gateway_id()).unwrap().to_owned();
    ec2.attach_internet_gateway().internet_gateway_id(&gateway_id).vpc_id(&vpc_id).send().await.unwrap();
    let nat = ec2.create_nat_gateway().subnet_id(&subnet_id).allocation_id(&allocation_id).send().await.unwrap();
    let nat_id = nat.nat_gateway().and_then(|n| n.nat_gateway_id()).unwrap().to_owned();
    let describe = || ec2.describe_nat_gateways().nat_gateway_ids(&nat_id).send();
    assert_eq!(code(describe().await.aws("DescribeNatGateways")), "NatGatewayNotFound");
    clock.pass("new_resource_visible");
    describe().await.expect("the NAT gateway is known now");
    // The network tier rides all three out: its deploys in these tests meet them every time.

    ec2.delete_nat_gateway().nat_gateway_id(&nat_id).send().await.unwrap();
    clock.pass("nat_gateway_deleted");
    assert_eq!(nat_state(&ctx, &nat_id).await, NatGatewayState::Deleted);
    clock.pass("address_release_delay");
    ec2.release_address().allocation_id(&allocation_id).send().await.unwrap();
}

#[tokio::test]
async fn a_new_instance_profile_is_refused_by_run_instances_for_a_while() {
    if !strict() {
        return;
    }
    let config = config_in("it-profile-lag", "af-south-1");
    let ctx = context(&config).await;
    let name = "it-profile-lag-profile";
    let _ = ctx.iam.remove_role_from_instance_profile().instance_profile_name(name).role_name(name).send().await;
    let _ = ctx.iam.delete_instance_profile().instance_profile_name(name).send().await;
    let _ = ctx.iam.delete_role().role_name(name).send().await;
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let clock = RegionClock::stopped(&config.stack.region);
    ctx.iam.create_role().role_name(name).assume_role_policy_document(trust).send().await.unwrap();
    ctx.iam.create_instance_profile().instance_profile_name(name).send().await.unwrap();
    ctx.iam.add_role_to_instance_profile().instance_profile_name(name).role_name(name).send().await.unwrap();
    let image = ctx.ssm.get_parameter().name(&config.compute.ami_parameter).send().await.unwrap();
    let image = image.parameter().and_then(|p| p.value()).unwrap().to_owned();
    let launch = || {
        ctx.ec2
            .run_instances()
            .image_id(&image)
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
            .min_count(1)
            .max_count(1)
            .iam_instance_profile(aws_sdk_ec2::types::IamInstanceProfileSpecification::builder().name(name).build())
            .send()
    };
    let refused = launch().await.aws("RunInstances").expect_err("IAM has not reached EC2 yet");
    assert!(refused.is(Answer::ProfilePropagating), "the compute tier retries this error: {refused}");
    // ... and taken once it has.
    clock.pass("instance_profile_usable");
    let launched = launch().await.expect("IAM has reached EC2");
    let id = launched.instances()[0].instance_id().unwrap();
    // EC2 takes a moment to know the new instance by its id, for termination too.
    let terminate = || ctx.ec2.terminate_instances().instance_ids(id).send();
    assert_eq!(code(terminate().await.aws("TerminateInstances")), "InvalidInstanceID.NotFound");
    clock.pass("instance_visible");
    terminate().await.expect("EC2 knows the instance now");
    drop(clock);
    ctx.iam.remove_role_from_instance_profile().instance_profile_name(name).role_name(name).send().await.unwrap();
    ctx.iam.delete_instance_profile().instance_profile_name(name).send().await.unwrap();
    ctx.iam.delete_role().role_name(name).send().await.unwrap();
}

#[tokio::test]
async fn throttling_is_ridden_out_and_a_run_that_dies_half_way_completes_when_run_again() {
    if !strict() {
        return;
    }
    let config = config_in("it-faults", "ap-northeast-2");
    let ctx = context(&config).await;
    clean(&ctx, &config).await;
    let emulator = emulator();

    // Every third request throttled: the SDK's retries ride it out.
    let region = config.stack.region.as_str();
    let mark = emulator.request_mark().unwrap();
    let every_third = serde_json::json!({"region": region, "throttle_every": 3});
    with_faults(&emulator, every_third, stack::deploy(&ctx, &config, &[Tier::Network])).await.unwrap();
    // This test's own requests only: every test shares the emulator's log.
    let own = emulator.requests_since(mark, region).unwrap();
    // Counted by the throttling code: eventual consistency's refusals are EC2 400s too.
    let throttled = own.iter().filter(|r| r.injected.as_deref() == Some("RequestLimitExceeded")).count();
    assert!(throttled > 5, "requests were throttled ({throttled})");
    assert!(own.iter().all(|r| r.injected.is_none() || r.status == 400), "throttling is a 400 on EC2");
    clean(&ctx, &config).await;

    // A random tenth of the requests throttled and another tenth answered 500 or 503.
    let mark = emulator.request_mark().unwrap();
    let bad_day =
        serde_json::json!({"region": region, "throttle_fraction": 0.1, "server_error_fraction": 0.1, "seed": 7});
    with_faults(&emulator, bad_day, stack::deploy(&ctx, &config, &[Tier::Network])).await.unwrap();
    let injected: Vec<String> =
        emulator.requests_since(mark, region).unwrap().into_iter().filter_map(|r| r.injected).collect();
    for code in ["RequestLimitExceeded", "InternalError", "Unavailable"] {
        assert!(injected.iter().any(|c| c == code), "some requests were answered {code}: {injected:?}");
    }
    let observed = network::observe(&ctx, &config.stack.name).await.unwrap();
    assert_eq!(
        (observed.vpcs.len(), observed.subnets.len(), observed.security_groups.len()),
        (1, 5, 3),
        "no duplicates"
    );
    clean(&ctx, &config).await;

    // The tenth change fails for good: the run stops there, and the next one completes.
    let tenth = serde_json::json!({"region": region, "fail_nth_mutating": 10});
    let failed = with_faults(&emulator, tenth, stack::deploy(&ctx, &config, &[Tier::Network])).await;
    assert_eq!(failed.unwrap_err().code(), Some("InjectedFailure"));
    stack::deploy(&ctx, &config, &[Tier::Network]).await.unwrap().network.unwrap();
    let observed = network::observe(&ctx, &config.stack.name).await.unwrap();
    assert_eq!(
        (observed.vpcs.len(), observed.subnets.len(), observed.security_groups.len()),
        (1, 5, 3),
        "no duplicates"
    );
    clean(&ctx, &config).await;
}

#[tokio::test]
async fn a_create_aws_did_but_whose_answer_was_lost_is_sent_again_without_making_a_second() {
    if !strict() {
        return;
    }
    // An emulator of its own: every RunInstances of the region it logs is this test's.
    let private = PrivateEmulator::start("lost-answer");
    let config = config_in("it-lost-answer", "eu-west-1");
    let region = config.stack.region.as_str();
    let ctx = private.context(region).await;

    // AWS makes the NAT gateway and the instance, and the answers are lost: the SDK sends
    // each call again, with the same ClientToken, and AWS answers with what it made.
    let lost = serde_json::json!({"region": region, "apply_then_500": ["ec2:CreateNatGateway", "ec2:RunInstances"]});
    with_faults(&private.running, lost, stack::deploy(&ctx, &config, stack::TIERS)).await.unwrap();
    let requests = private.running.requests_since(0, region).unwrap();
    for action in ["CreateNatGateway", "RunInstances"] {
        let answers: Vec<(u16, Option<&str>)> =
            requests.iter().filter(|r| r.action == action).map(|r| (r.status, r.injected.as_deref())).collect();
        assert_eq!(
            answers.first(),
            Some(&(500, Some("InternalError"))),
            "{action}: done, its answer lost: {answers:?}"
        );
        assert_eq!(answers.iter().filter(|(status, _)| *status == 200).count(), 1, "{action}: {answers:?}");
    }
    let held = oracle::holdings(&ctx, &config.stack.name).await;
    assert_eq!(held.counts(), oracle::whole_stack(&config), "one NAT gateway, one instance: {held:#?}");
}

#[tokio::test]
async fn an_aws_error_reads_in_a_few_lines_with_its_request_id() {
    let config = config_in("it-error", "us-east-1");
    let ctx = context(&config).await;
    let refused = ctx.ec2.delete_vpc().vpc_id("vpc-00000000").send().await.aws("DeleteVpc").unwrap_err();
    let text = refused.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("DeleteVpc failed: InvalidVpcID.NotFound: "), "{text}");
    assert!(lines.iter().any(|line| line.starts_with("  request id: ")), "the request id on its own line: {text}");
    assert!(lines.len() <= 3 && !text.contains("Error {") && !text.contains("aws_request_id"), "{text}");
    // Wrapped as a failed step of a run, it names the tier and the step first.
    let failed = three_tier_core::Error::Steps {
        failures: vec![three_tier_core::error::StepFailure {
            tier: three_tier_core::Tier::Network,
            step: "VPC it-error-vpc (vpc-00000000)".into(),
            error: Box::new(refused),
        }],
    };
    assert!(
        failed.to_string().starts_with("network step `VPC it-error-vpc (vpc-00000000)` failed: DeleteVpc failed: ")
    );
}
