//! The seed's two goals from real traffic: the strict emulator's data plane serves the
//! ALB (a real HTTP listener with real health checks), the instance's nginx and the RDS
//! instance's MySQL, reached only where the stack's groups and routes let traffic through.
//!
//! Each test judges what AWS (the emulator) holds and serves with its own code: the page is
//! fetched here, target health read here, the servers listed from the emulator.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{IpPermission, UserIdGroupPair};
use aws_sdk_elasticloadbalancingv2::types::{TargetDescription, TargetHealthStateEnum};
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use three_tier_core::outputs::AlbOutputs;
use three_tier_core::roles::SecurityGroupRole;
use three_tier_core::{AwsContext, Config};

use crate::support;

/// The default config in `region`, whose zones are `<region>a` and `<region>b`, with
/// `edit` applied to its text.
fn config_in(stack: &str, region: &str, edit: impl Fn(String) -> String) -> Config {
    let text =
        edit(Config::DEFAULT_TOML.replace("ap-northeast-1c", &format!("{region}b")).replace("ap-northeast-1", region));
    let mut config = Config::parse(Path::new("test"), &text).expect("test config parses");
    config.stack.name = stack.to_owned();
    config.validate(Path::new("test")).expect("test config is valid");
    config
}

/// GET / of the stack's URL as a browser on this machine would: the name through the
/// emulator's name map (standing for DNS), then plain HTTP. The status and the response.
fn get_page(alb: &AlbOutputs) -> (u16, String) {
    get(alb, "/")
}

/// GET `path` of the stack's URL, as [`get_page`] does.
fn get(alb: &AlbOutputs, path: &str) -> (u16, String) {
    try_get(alb, path).unwrap()
}

/// GET `path` of the stack's URL; an error where nothing answers.
pub(crate) fn try_get(alb: &AlbOutputs, path: &str) -> std::io::Result<(u16, String)> {
    let endpoint = support::emulator().endpoint();
    let address = emulator::resolve(&endpoint, &alb.dns_name, alb.listener_port)
        .ok_or_else(|| std::io::Error::other("the ALB's name does not resolve"))?;
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", alb.dns_name)?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, response))
}

/// The data plane's servers of `region`.
fn servers_in(region: &str) -> Vec<emulator::Server> {
    let plane = emulator::data_plane(&support::emulator().endpoint()).unwrap();
    plane.servers.into_iter().filter(|s| s.region == region).collect()
}

/// Waits (on the region's clock, at most a minute of real time) until `target` is in
/// `state` in `group`; returns its health's reason and description.
async fn wait_for_target(ctx: &AwsContext, group: &str, target: &str, state: TargetHealthStateEnum) -> String {
    let started = Instant::now();
    loop {
        let health = ctx.elbv2.describe_target_health().target_group_arn(group).send().await.unwrap();
        let found = health
            .target_health_descriptions()
            .iter()
            .find(|d| d.target().and_then(|t| t.id()) == Some(target))
            .and_then(|d| d.target_health())
            .cloned();
        if let Some(health) = &found
            && health.state() == Some(&state)
        {
            return format!("{:?}: {}", health.reason(), health.description().unwrap_or_default());
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{target} never became {state:?}: {found:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The check whose name starts with `name`.
#[track_caller]
fn check<'c>(checks: &'c [stack::Check], name: &str) -> &'c stack::Check {
    checks.iter().find(|c| c.name.starts_with(name)).unwrap_or_else(|| panic!("no check {name}: {checks:#?}"))
}

fn limits() -> stack::VerifyLimits {
    stack::VerifyLimits {
        health: Duration::from_secs(3),
        http: Duration::from_secs(3),
        command: Duration::from_secs(60),
    }
}

/// A rule of `group` letting TCP `port` in from `source`, as the network tier authorizes it.
fn from_group(port: u16, source: &str) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port.into())
        .to_port(port.into())
        .user_id_group_pairs(UserIdGroupPair::builder().group_id(source).build())
        .build()
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_proves_both_goals_from_real_traffic_and_fails_where_a_rule_is_missing() {
    let config = config_in("it-dataplane", "ca-central-1", |text| text);
    let ctx = support::context(&config).await;
    support::clean(&ctx, &config).await;
    let traffic = support::traffic();
    let outputs = stack::deploy(&ctx, &config, stack::TIERS).await.unwrap();
    let (network, alb, compute) = (outputs.network.unwrap(), outputs.alb.unwrap(), outputs.compute.unwrap());
    let [alb_group, app_group, db_group] = [SecurityGroupRole::Alb, SecurityGroupRole::App, SecurityGroupRole::Db]
        .map(|r| network.security_group(r).to_owned());

    // Right after deploy: both goals pass, from real traffic.
    let checks = stack::verify(&ctx, &config, &traffic, stack::VerifyLimits::default()).await.unwrap();
    assert!(checks.iter().all(|c| c.outcome == stack::Outcome::Passed), "{checks:?}");
    assert!(
        check(&checks, "the nginx container").detail.contains("SHOW DATABASES lists sample (information_schema,"),
        "the server's list: {checks:?}"
    );
    // `logs` returns what the sandbox's commands print: the user data's run, and the
    // access log of the nginx the health checks reach.
    let logs = stack::instance_logs(&ctx, &compute.first().id, Duration::from_secs(60)).await.unwrap().unwrap();
    assert!(logs.output.contains("nginx publishes [3030]"), "{logs:?}");
    assert!(logs.output.contains("nginx-1  | ") && logs.output.contains("ELB-HealthChecker/2.0"), "{logs:?}");
    let (status, page) = get_page(&alb);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Welcome to nginx!") && page.contains("Server: nginx"), "nginx's own page: {page}");
    let servers = servers_in("ca-central-1");
    let kinds: Vec<&str> = servers.iter().map(|s| s.kind.as_str()).collect();
    for kind in ["nginx", "mariadb", "listener"] {
        assert_eq!(kinds.iter().filter(|k| **k == kind).count(), 1, "{kinds:?}");
    }

    // A second instance whose compose file publishes another port than the target
    // group's, registered beside the first, as a console user might: it never becomes
    // healthy, and the page is still served by the first.
    let described = ctx.ec2.describe_instances().instance_ids(&compute.first().id).send().await.unwrap();
    let image = described.reservations()[0].instances()[0].image_id().unwrap().to_owned();
    let other_port = compute::user_data::render(&[9090]);
    let launched = ctx
        .ec2
        .run_instances()
        .image_id(image)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .subnet_id(network.subnet("app"))
        .security_group_ids(&app_group)
        .user_data(aws_smithy_types::base64::encode(other_port))
        .send()
        .await
        .unwrap();
    let stray = launched.instances()[0].instance_id().unwrap().to_owned();
    let target = TargetDescription::builder().id(&stray).port(config.ports.app.get().into()).build();
    let started = Instant::now();
    while let Err(err) =
        ctx.elbv2.register_targets().target_group_arn(&alb.app_target_group_arn).targets(target.clone()).send().await
    {
        assert!(started.elapsed() < Duration::from_secs(30), "{err:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let why = wait_for_target(&ctx, &alb.app_target_group_arn, &stray, TargetHealthStateEnum::Unhealthy).await;
    assert!(why.contains("FailedHealthChecks"), "nothing answers on the target group's port: {why}");
    assert_eq!(get_page(&alb).0, 200, "the healthy target serves");
    ctx.elbv2.deregister_targets().target_group_arn(&alb.app_target_group_arn).targets(target).send().await.unwrap();
    ctx.ec2.terminate_instances().instance_ids(&stray).send().await.unwrap();

    // sg001 no longer lets the ALB in: the health checks time out, the target turns
    // unhealthy, and the ALB, failing open to its only target, cannot reach it: AWS
    // answers 504 (503 is for a target group without registered targets).
    let ingress = from_group(config.ports.app.get(), &alb_group);
    ctx.ec2.revoke_security_group_ingress().group_id(&app_group).ip_permissions(ingress).send().await.unwrap();
    let why =
        wait_for_target(&ctx, &alb.app_target_group_arn, &compute.first().id, TargetHealthStateEnum::Unhealthy).await;
    assert!(why.contains("Timeout") && why.contains(&app_group), "the hop is named: {why}");
    let (status, page) = get_page(&alb);
    assert_eq!(status, 504, "{page}");
    let checks = stack::verify(&ctx, &config, &traffic, limits()).await.unwrap();
    let web = check(&checks, "path internet → ALB → nginx");
    assert_eq!(web.outcome, stack::Outcome::Failed, "{checks:?}");
    assert!(web.detail.contains(&app_group), "verify names the group: {checks:?}");
    assert_eq!(check(&checks, "the ALB serves").outcome, stack::Outcome::Skipped, "{checks:?}");

    // deploy repairs the rule; the target passes its checks again and the page is back.
    stack::deploy(&ctx, &config, stack::TIERS).await.unwrap();
    wait_for_target(&ctx, &alb.app_target_group_arn, &compute.first().id, TargetHealthStateEnum::Healthy).await;
    assert_eq!(get_page(&alb).0, 200);

    // db-sg001 no longer lets the instance in: the container's client cannot connect.
    let ingress = from_group(config.ports.database.get(), &app_group);
    ctx.ec2.revoke_security_group_ingress().group_id(&db_group).ip_permissions(ingress).send().await.unwrap();
    let check = stack::verify_database(&ctx, &config, &traffic, limits()).await.unwrap();
    assert_eq!(check.outcome, stack::Outcome::Failed, "{check:?}");
    assert!(check.detail.contains("Can't connect"), "the client's own words: {check:?}");
    stack::deploy(&ctx, &config, stack::TIERS).await.unwrap();
    let check = stack::verify_database(&ctx, &config, &traffic, limits()).await.unwrap();
    assert_eq!(check.outcome, stack::Outcome::Passed, "{check:?}");

    // Teardown stops every server it started: none is listed, and their processes are gone.
    let pids: Vec<u32> = servers_in("ca-central-1").iter().filter_map(|s| s.pid).collect();
    assert_eq!(pids.len(), 2, "nginx and mariadbd");
    support::clean(&ctx, &config).await;
    let started = Instant::now();
    while !servers_in("ca-central-1").is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "{:?}", servers_in("ca-central-1"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for pid in pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "process {pid} still runs");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn another_stack_with_other_ports_and_addresses_passes_the_same() {
    let config = config_in("it-dp-ports", "us-west-1", |text| {
        text.replace("http = 80", "http = 8080")
            .replace("app = 3030", "app = 8081")
            .replace("database = 3306", "database = 3307")
            .replace("10.0.", "10.20.")
    });
    assert_eq!((config.ports.http.get(), config.ports.app.get(), config.ports.database.get()), (8080, 8081, 3307));
    let ctx = support::context(&config).await;
    support::clean(&ctx, &config).await;
    let outputs = stack::deploy(&ctx, &config, stack::TIERS).await.unwrap();
    let alb = outputs.alb.unwrap();
    assert!(alb.url().ends_with(":8080/"), "{}", alb.url());

    let checks = stack::verify(&ctx, &config, &support::traffic(), stack::VerifyLimits::default()).await.unwrap();
    assert!(checks.iter().all(|c| c.outcome == stack::Outcome::Passed), "{checks:?}");
    assert!(
        check(&checks, "the ALB serves").detail.contains(":8080/"),
        "the check used the listener's port: {checks:?}"
    );
    let hops: String = checks.iter().filter_map(|c| c.path.as_ref()).map(stack::reach::Path::render).collect();
    for expected in ["allows tcp 8080 from 0.0.0.0/0", "allows tcp 8081 from alb-sg001", "allows tcp 3307 from sg001"] {
        assert!(hops.contains(expected), "{expected}: {hops}");
    }
    let (status, page) = get_page(&alb);
    assert!(status == 200 && page.contains("Welcome to nginx!"), "{page}");
    let servers = servers_in("us-west-1");
    let ports: Vec<(&str, u16)> = servers.iter().map(|s| (s.kind.as_str(), s.port)).collect();
    for expected in [("nginx", 8081), ("mariadb", 3307), ("listener", 8080)] {
        assert!(ports.contains(&expected), "{ports:?}");
    }
    support::clean(&ctx, &config).await;
}

/// What `verify` says of the three paths: (name, outcome, detail), and the goals' outcomes.
async fn verified(ctx: &AwsContext, config: &Config) -> Vec<stack::Check> {
    stack::verify(ctx, config, &support::traffic(), limits()).await.unwrap()
}

/// The names of the checks that failed.
fn failed(checks: &[stack::Check]) -> Vec<&str> {
    checks.iter().filter(|c| c.outcome == stack::Outcome::Failed).map(|c| c.name.as_str()).collect()
}

#[track_caller]
fn assert_only_closed(checks: &[stack::Check], path: &str, hop: &[&str]) {
    assert_eq!(failed(checks), [format!("path {path}")], "{checks:#?}");
    let closed = check(checks, &format!("path {path}"));
    for words in hop {
        assert!(closed.detail.contains(words), "{words}: {}", closed.detail);
    }
    assert!(closed.detail.contains("fix: cargo xtask deploy network"), "{}", closed.detail);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_names_the_hop_a_console_user_closed_and_deploy_reopens_it() {
    let config = config_in("it-reach", "eu-west-3", |text| text);
    let ctx = support::context(&config).await;
    support::clean(&ctx, &config).await;
    let outputs = stack::deploy(&ctx, &config, stack::TIERS).await.unwrap();
    let (network, alb, instance) =
        (outputs.network.unwrap(), outputs.alb.unwrap(), outputs.compute.unwrap().first().id.clone());
    let [alb_group, app_group, db_group] = [SecurityGroupRole::Alb, SecurityGroupRole::App, SecurityGroupRole::Db]
        .map(|r| network.security_group(r).to_owned());
    let app_table = network.route_table(three_tier_core::RouteTableRole::App);

    let checks = verified(&ctx, &config).await;
    assert!(checks.iter().all(|c| c.outcome == stack::Outcome::Passed), "{checks:#?}");
    let paths: Vec<&str> = checks.iter().filter(|c| c.path.is_some()).map(|c| c.name.as_str()).collect();
    assert_eq!(paths, ["path internet → ALB → nginx", "path nginx → MySQL", "path instance → internet"]);

    // sg001 no longer lets the ALB in: the web path is closed there; the goals that need
    // it are skipped, the database's still runs.
    let ingress = from_group(config.ports.app.get(), &alb_group);
    ctx.ec2.revoke_security_group_ingress().group_id(&app_group).ip_permissions(ingress).send().await.unwrap();
    let checks = verified(&ctx, &config).await;
    assert_only_closed(
        &checks,
        "internet → ALB → nginx",
        &[&format!("sg001 ({app_group})"), "tcp 3030 in from the ALB"],
    );
    assert_eq!(check(&checks, "the instance is a healthy target").outcome, stack::Outcome::Skipped);
    assert_eq!(check(&checks, "the ALB serves").outcome, stack::Outcome::Skipped);
    assert_eq!(check(&checks, "the nginx container").outcome, stack::Outcome::Passed);
    stack::deploy(&ctx, &config, stack::TIERS).await.unwrap();
    let paths = stack::reach::deployed(&ctx, &config).await.unwrap();
    assert!(paths.iter().all(stack::reach::Path::open), "{paths:#?}");

    // The app route table's route to the NAT gateway is gone: the way out is closed, and
    // with it every goal (the user data could not install Docker).
    ctx.ec2.delete_route().route_table_id(app_table).destination_cidr_block("0.0.0.0/0").send().await.unwrap();
    let checks = verified(&ctx, &config).await;
    assert_only_closed(&checks, "instance → internet", &["app-subnet route", "no route for 0.0.0.0/0"]);
    let skipped = checks.iter().filter(|c| c.outcome == stack::Outcome::Skipped).count();
    assert_eq!(skipped, 3, "{checks:#?}");
    stack::deploy(&ctx, &config, stack::TIERS).await.unwrap();
    let paths = stack::reach::deployed(&ctx, &config).await.unwrap();
    assert!(paths.iter().all(stack::reach::Path::open), "{paths:#?}");

    // db-sg001 no longer lets the instance in.
    let ingress = from_group(config.ports.database.get(), &app_group);
    ctx.ec2.revoke_security_group_ingress().group_id(&db_group).ip_permissions(ingress).send().await.unwrap();
    let checks = verified(&ctx, &config).await;
    assert_only_closed(&checks, "nginx → MySQL", &[&format!("db-sg001 ({db_group})"), "tcp 3306 in from the instance"]);
    assert_eq!(check(&checks, "the nginx container").outcome, stack::Outcome::Skipped);
    assert_eq!(check(&checks, "the ALB serves").outcome, stack::Outcome::Passed);
    stack::deploy(&ctx, &config, stack::TIERS).await.unwrap();
    let checks = verified(&ctx, &config).await;
    assert!(checks.iter().all(|c| c.outcome == stack::Outcome::Passed), "{checks:#?}");

    // The health check asks for a page nginx does not have: every path is open, but the
    // target stays unhealthy past verify's limit, which says so with AWS's reason. The
    // ALB, failing open to its only target, still serves the page.
    let group = &alb.app_target_group_arn;
    ctx.elbv2.modify_target_group().target_group_arn(group).health_check_path("/missing").send().await.unwrap();
    let why = wait_for_target(&ctx, group, &instance, TargetHealthStateEnum::Unhealthy).await;
    assert!(why.contains("ResponseCodeMismatch"), "{why}");
    let checks = verified(&ctx, &config).await;
    assert_eq!(failed(&checks), ["the instance is a healthy target"], "{checks:#?}");
    let target = check(&checks, "the instance is a healthy target");
    for words in [&format!("{instance} is still unhealthy"), "after 3s", "Target.ResponseCodeMismatch", "[404]"] {
        assert!(target.detail.contains(words), "{words}: {}", target.detail);
    }
    assert_eq!(check(&checks, "the ALB serves").outcome, stack::Outcome::Passed, "{checks:#?}");
    stack::deploy(&ctx, &config, stack::TIERS).await.unwrap();
    wait_for_target(&ctx, group, &instance, TargetHealthStateEnum::Healthy).await;

    // The instance taken out of the target group: the web path is closed there, and the
    // checks behind it are skipped; deploy registers it again.
    let registered = TargetDescription::builder().id(&instance).port(config.ports.app.get().into()).build();
    ctx.elbv2.deregister_targets().target_group_arn(group).targets(registered).send().await.unwrap();
    let checks = verified(&ctx, &config).await;
    assert_eq!(failed(&checks), ["path internet → ALB → nginx"], "{checks:#?}");
    let web = check(&checks, "path internet → ALB → nginx");
    for words in [
        &format!("closed at target group {}", config.app_target_group_name()),
        &format!("{instance} is not registered in it"),
        "fix: cargo xtask deploy compute",
    ] {
        assert!(web.detail.contains(words), "{words}: {}", web.detail);
    }
    assert_eq!(check(&checks, "the instance is a healthy target").outcome, stack::Outcome::Skipped);
    stack::deploy(&ctx, &config, stack::TIERS).await.unwrap();
    wait_for_target(&ctx, group, &instance, TargetHealthStateEnum::Healthy).await;

    // An agent that never finishes the command: the database check fails at its limit,
    // naming the command and what to look at.
    let stuck = SharedInterceptor::new(support::hold_command_in_progress());
    let stuck = support::context_with(&config, vec![stuck]).await;
    let short = stack::VerifyLimits { command: Duration::from_secs(2), ..limits() };
    let database = stack::verify_database(&stuck, &config, &support::traffic(), short).await.unwrap();
    assert_eq!(database.outcome, stack::Outcome::Failed, "{database:?}");
    for words in ["did not finish within 2s", "is the SSM agent online?"] {
        assert!(database.detail.contains(words), "{words}: {}", database.detail);
    }

    support::clean(&ctx, &config).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listener_rules_target_group_is_served_by_the_instance_on_its_own_port() {
    // A region of its own: the test slows its clock.
    let region = "ap-southeast-5";
    let mut config = config_in("it-dp-rule", region, |text| {
        text.replace(
            "# [[alb.rules]]\n# priority = 10\n# path_pattern = \"/api/*\"\n# target_group_name = \"api-target-group\"\n# port = 8080",
            "[[alb.rules]]\npriority = 10\npath_pattern = \"/api/*\"\ntarget_group_name = \"api-target-group\"\nport = 8082",
        )
    });
    assert_eq!(config.alb.rules.len(), 1);
    support::add_subnet(&mut config, "app-b", &format!("{region}b"));
    config.compute.instances = 2;
    config.validate(Path::new("test")).unwrap();
    let ctx = support::context(&config).await;
    support::clean(&ctx, &config).await;

    // Deployed first without the rule, with two instances in two zones: each publishes
    // 3030 alone, and cloud-init will not run a new user data on them.
    let without_rule = Config { alb: Config::default_config().alb, ..config.clone() };
    let before = stack::deploy(&ctx, &without_rule, stack::TIERS).await.unwrap();
    let old: Vec<String> = before.compute.unwrap().instances.values().map(|i| i.id.clone()).collect();
    let before_alb = before.alb.unwrap();
    let first = verified(&ctx, &without_rule).await;
    assert!(first.iter().all(|c| c.outcome == stack::Outcome::Passed), "{first:#?}");

    // Adding the rule replaces them one at a time, each new one serving before its old
    // one is drained: a user reloading the page all along is always served.
    // AWS time at a fifth of the tests' usual pace: a new instance boots for seconds, long
    // enough for a request to find it if the old one were drained too soon.
    let slow = support::RegionClock::at_rate(region, 0.2);
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (alb, watching) = (before_alb.clone(), watching.clone());
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            while watching.load(Ordering::Relaxed) {
                answers.push(try_get(&alb, "/").map_or_else(|err| format!("no answer: {err}"), |(s, _)| s.to_string()));
                std::thread::sleep(Duration::from_millis(50));
            }
            answers
        })
    };
    // And the app target group, read all along: it never holds fewer healthy targets than
    // the two instances asked for (a new one is healthy before an old one leaves).
    let health = {
        let (ctx, group, watching) = (ctx.clone(), before_alb.app_target_group_arn.clone(), watching.clone());
        tokio::spawn(async move {
            let mut healthy_counts = Vec::new();
            while watching.load(Ordering::Relaxed) {
                let health = ctx.elbv2.describe_target_health().target_group_arn(&group).send().await.unwrap();
                let healthy = health
                    .target_health_descriptions()
                    .iter()
                    .filter(|d| d.target_health().and_then(|h| h.state()) == Some(&TargetHealthStateEnum::Healthy));
                healthy_counts.push(healthy.count());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            healthy_counts
        })
    };
    let outputs = stack::deploy(&ctx, &config, stack::TIERS).await;
    watching.store(false, Ordering::Relaxed);
    drop(slow);
    let answers = watcher.join().unwrap();
    let healthy_counts = health.await.unwrap();
    let outputs = outputs.unwrap();
    let failed: Vec<&String> = answers.iter().filter(|a| *a != "200").collect();
    assert!(
        answers.len() > 20 && failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        answers.len()
    );
    let fewest = healthy_counts.iter().min().copied();
    assert!(healthy_counts.len() > 20 && fewest == Some(2), "healthy targets over the roll: {healthy_counts:?}");
    assert!(healthy_counts.contains(&3), "a new instance served beside the two: {healthy_counts:?}");
    // Two new instances, the old ones terminated.
    let new: Vec<String> = outputs.compute.as_ref().unwrap().instances.values().map(|i| i.id.clone()).collect();
    assert_eq!(new.len(), 2);
    assert!(new.iter().all(|id| !old.contains(id)), "{old:?} → {new:?}");
    let described = ctx.ec2.describe_instances().set_instance_ids(Some(old.clone())).send().await.unwrap();
    let states: Vec<&str> = described
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str()))
        .collect();
    assert_eq!(states, ["terminated", "terminated"]);
    let again = stack::plan_deploy(&ctx, &config, stack::TIERS).await.unwrap();
    assert!(again.graph.is_empty(), "{}", again.render());
    let (network, alb, compute) = (outputs.network.unwrap(), outputs.alb.unwrap(), outputs.compute.unwrap());
    let [alb_group, app_group] =
        [SecurityGroupRole::Alb, SecurityGroupRole::App].map(|r| network.security_group(r).to_owned());

    // sg001 lets the ALB in on both target groups' ports, as AWS describes it.
    let groups = ctx.ec2.describe_security_groups().group_ids(&app_group).send().await.unwrap();
    let mut ports: Vec<(i32, String)> = groups.security_groups()[0]
        .ip_permissions()
        .iter()
        .flat_map(|p| {
            p.user_id_group_pairs().iter().map(move |g| (p.from_port().unwrap(), g.group_id().unwrap().to_owned()))
        })
        .collect();
    ports.sort();
    assert_eq!(ports, [(3030, alb_group.clone()), (8082, alb_group.clone())]);
    // The instance is the rule's target group's target, on its port, and healthy: nginx
    // answers there.
    let api_group = &alb.target_group_arns["it-dp-rule-api-target-group"];
    wait_for_target(&ctx, api_group, &compute.first().id, TargetHealthStateEnum::Healthy).await;
    let health = ctx.elbv2.describe_target_health().target_group_arn(api_group).send().await.unwrap();
    let targets = health.target_health_descriptions().iter().filter_map(|d| d.target());
    let target = targets.clone().find(|t| t.id() == Some(compute.first().id.as_str())).unwrap();
    assert_eq!(target.port(), Some(8082));
    assert_eq!(targets.count(), 2, "both new instances serve the rule's group");
    // /api/ reaches nginx through the rule (nginx has no such page: its own 404), where an
    // empty target group would answer 503 from the ALB.
    let (status, page) = get(&alb, "/api/");
    assert!(status == 404 && page.contains("Server: nginx"), "{page}");
    let checks = verified(&ctx, &config).await;
    assert!(checks.iter().all(|c| c.outcome == stack::Outcome::Passed), "{checks:#?}");
    let web = check(&checks, "path internet → ALB → nginx").path.as_ref().unwrap().render();
    assert!(web.contains("rule 10 /api/*") && web.contains("publishes 8082 to nginx's port 80"), "{web}");

    support::clean(&ctx, &config).await;
}
