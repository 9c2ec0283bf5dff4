//! The command line's answer to bad input: one message naming the key, the problem and
//! the fix; exit code 2; and not a single request to AWS.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const DEFAULT: &str = include_str!("../../config/default.toml");

/// (what is wrong, text replaced in the default config, its replacement, the key named).
const BAD_CONFIGS: &[(&str, &str, &str, &str)] = &[
    ("CIDR that does not parse", "vpc_cidr = \"10.0.0.0/16\"", "vpc_cidr = \"10.0.0/16\"", "network.vpc_cidr"),
    ("CIDR with host bits", "cidr = \"10.0.0.0/26\"", "cidr = \"10.0.0.1/26\"", "network.subnets.app.cidr"),
    ("subnet outside the VPC", "cidr = \"10.0.0.0/26\"", "cidr = \"10.1.0.0/26\"", "network.subnets.app.cidr"),
    ("overlapping subnets", "cidr = \"10.0.0.192/26\"", "cidr = \"10.0.0.128/25\"", "network.subnets.db-b.cidr"),
    (
        "ALB subnets in one AZ",
        "cidr = \"10.0.1.0/26\"\navailability_zone = \"ap-northeast-1c\"",
        "cidr = \"10.0.1.0/26\"\navailability_zone = \"ap-northeast-1a\"",
        "network.subnets.alb-b.availability_zone",
    ),
    (
        "DB subnets in one AZ",
        "cidr = \"10.0.0.192/26\"\navailability_zone = \"ap-northeast-1c\"",
        "cidr = \"10.0.0.192/26\"\navailability_zone = \"ap-northeast-1a\"",
        "network.subnets.db-b.availability_zone",
    ),
    (
        "AZ of another region",
        "availability_zone = \"ap-northeast-1c\"",
        "availability_zone = \"us-east-1c\"",
        "network.subnets.alb-b.availability_zone",
    ),
    ("subnet key without its role", "[network.subnets.app]", "[network.subnets.web]", "network.subnets.web"),
    ("a single ALB subnet", "[network.subnets.alb-b]", "[network.subnets.app-b]", "network.subnets`"),
    ("two instances with app subnets in one zone", "instances = 1", "instances = 2", "compute.instances"),
    ("no instance", "instances = 1", "instances = 0", "compute.instances"),
    ("port 0", "app = 3030", "app = 0", "ports.app"),
    ("port above 65535", "database = 3306", "database = 70000", "ports.database"),
    (
        "ALB name over 32 characters",
        "name = \"sample-alb\"",
        "name = \"a-load-balancer-name-of-33-chars-\"",
        "alb.name",
    ),
    (
        "target group name with a bad character",
        "target_group_name = \"app-target-group\"",
        "target_group_name = \"app_target_group\"",
        "alb.target_group_name",
    ),
    ("stack name with capitals", "name = \"three-tier\"", "name = \"Three-Tier\"", "stack.name"),
    ("misspelt key", "nat_gateway_name", "nat_gateway_nmae", "network"),
    (
        "storage under RDS's minimum",
        "allocated_storage_gib = 20",
        "allocated_storage_gib = 5",
        "database.allocated_storage_gib",
    ),
    (
        "DB subnet group name with capitals",
        "subnet_group_name = \"db-subnet-group\"",
        "subnet_group_name = \"DB-Subnets\"",
        "database.subnet_group_name",
    ),
    (
        "MySQL version the tool does not support",
        "engine_version = \"8.4\"",
        "engine_version = \"5.7\"",
        "database.engine_version",
    ),
    (
        "the seed's previous-generation DB class",
        "instance_class = \"db.t3.micro\"",
        "instance_class = \"db.t2.micro\"",
        "database.instance_class",
    ),
    (
        "io1 storage under its minimum",
        "storage_type = \"gp2\"",
        "storage_type = \"io1\"",
        "database.allocated_storage_gib",
    ),
    (
        "an arm64 instance type for the x86_64 AMI",
        "instance_type = \"t3.micro\"",
        "instance_type = \"t4g.micro\"",
        "compute.instance_type",
    ),
    (
        "subnet outside the stack's zones",
        "cidr = \"10.0.0.192/26\"\navailability_zone = \"ap-northeast-1c\"",
        "cidr = \"10.0.0.192/26\"\navailability_zone = \"ap-northeast-1d\"",
        "network.subnets.db-b.availability_zone",
    ),
];

#[test]
fn every_bad_config_exits_2_naming_key_and_fix_without_calling_aws() {
    let workdir = tempdir("bad-configs");
    for (what, from, to, key) in BAD_CONFIGS {
        assert!(DEFAULT.contains(from), "{what}: the default config no longer contains {from:?}");
        let file = workdir.join(format!("{}.toml", what.replace(' ', "-")));
        std::fs::write(&file, DEFAULT.replacen(from, to, 1)).unwrap();
        let outcome = run_xtask(&["deploy", "--config", file.to_str().unwrap()]);
        assert_eq!(outcome.code, Some(2), "{what}: exit code\n{}", outcome.stderr);
        assert!(outcome.stderr.contains(&format!("`{key}")), "{what}: names {key}\n{}", outcome.stderr);
        assert!(outcome.stderr.contains("fix: "), "{what}: says the fix\n{}", outcome.stderr);
        assert_eq!(outcome.aws_connections, 0, "{what}: no AWS call");
    }
}

#[test]
fn a_stack_name_that_makes_the_alb_name_too_long_is_refused() {
    // 22 characters are a fine stack name, but "<stack>-sample-alb" has 33.
    let outcome = run_xtask(&["deploy", "--stack", "a-long-stack-name-abcd", "--config", "../config/default.toml"]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.stderr);
    assert!(outcome.stderr.contains("`alb.name`"), "{}", outcome.stderr);
    assert!(outcome.stderr.contains("a-long-stack-name-abcd-sample-alb"), "{}", outcome.stderr);
    assert_eq!(outcome.aws_connections, 0);
}

#[test]
fn a_missing_config_file_is_a_config_error() {
    let outcome = run_xtask(&["plan", "--config", "/nonexistent/three-tier.toml"]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.stderr);
    assert!(outcome.stderr.contains("cannot be read"), "{}", outcome.stderr);
    assert_eq!(outcome.aws_connections, 0);
}

#[test]
fn an_unknown_tier_is_refused() {
    let outcome = run_xtask(&["deploy", "storage"]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.stderr);
    assert!(outcome.stderr.contains("unknown tier \"storage\""), "{}", outcome.stderr);
    assert_eq!(outcome.aws_connections, 0);
}

#[test]
fn an_endpoint_override_is_an_emulator_whose_data_plane_verify_and_logs_use() {
    let running = emulator::Emulator::default().ensure_running().expect("the emulator starts");
    let stack = "cli-endpoint";
    let run = |args: &[&str]| {
        let output = on_emulator(&running, stack, Path::new("../config/default.toml"), args).output().unwrap();
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (output.status.code(), text(&output.stdout), text(&output.stderr))
    };
    let (code, _, stderr) = run(&["deploy"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains(&format!("(emulator at {})", running.endpoint())), "the target line says so: {stderr}");

    let started = std::time::Instant::now();
    let (code, stdout, stderr) = run(&["verify"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(started.elapsed() < Duration::from_secs(60), "verify took {:?}", started.elapsed());
    // The endpoint is the strict emulator's: its data plane serves verify's traffic.
    // The three paths, hop by hop, then the three checks of the goals.
    assert_eq!(stdout.matches("✓ passed").count(), 6, "{stdout}");
    for path in ["path internet → ALB → nginx: 17 hops open", "path nginx → MySQL: 9 hops open"] {
        assert!(stdout.contains(path), "{path}: {stdout}");
    }
    assert!(stdout.contains("the emulator's data plane served this traffic"), "{stdout}");
    assert!(!stdout.contains("needs real AWS") && !stdout.contains("FAILED"), "{stdout}");

    // A shell: the emulator runs no instance to open one on, and says what runs on AWS.
    let (code, stdout, stderr) = run(&["shell"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("aws ssm start-session --target i-") && stdout.contains("--region ap-northeast-1"),
        "{stdout}"
    );
    // Another instance is chosen by its key or id; one the stack lacks is refused, naming
    // those it has.
    let first = stdout.split("--target ").nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap().to_owned();
    for chosen in ["instance", first.as_str()] {
        let (code, chosen_out, stderr) = run(&["shell", "--instance", chosen]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(chosen_out.contains(&format!("--target {first} ")), "{chosen_out}");
    }
    let (code, _, stderr) = run(&["logs", "--instance", "instance-9"]);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("--instance instance-9: stack cli-endpoint has no instance of that key or id")
            && stderr.contains(&format!("fix: name one of instance ({first})")),
        "{stderr}"
    );
    // The logs: the same script as on AWS, run in the data plane's sandbox.
    let (code, stdout, stderr) = run(&["logs"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("== docker compose ps") && stdout.contains("0.0.0.0:3030->80/tcp"), "{stdout}");

    // The paths alone, for scripts: every hop of each open.
    let (code, stdout, stderr) = run(&["reach", "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let paths: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = paths.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["internet → ALB → nginx", "nginx → MySQL", "instance → internet"]);
    let hops = paths.as_array().unwrap().iter().flat_map(|p| p["hops"].as_array().unwrap());
    assert!(hops.clone().all(|hop| hop["open"] == true), "{paths:#}");
    assert!(hops.clone().any(|hop| hop["resource"].as_str().unwrap().starts_with("sg001 (sg-")), "{paths:#}");

    // Terraform's detailed exit code: 0 when nothing would change.
    let (code, _, stderr) = run(&["plan", "--detailed-exitcode"]);
    assert_eq!(code, Some(0), "{stderr}");

    let (code, _, stderr) = run(&["teardown", "--yes"]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn two_deploys_at_once_end_with_one_stack_and_one_clear_refusal() {
    let running = emulator::Emulator::default().ensure_running().expect("the emulator starts");
    let stack = "cli-twice";
    // Another stack in another region, e.g. Paris, with a config of its own.
    let paris = default_config_in("paris", "eu-west-3");
    let command = |args: &[&str]| on_emulator(&running, stack, Path::new("../config/default.toml"), args);
    let away = |args: &[&str]| on_emulator(&running, "cli-away", &paris, args).output().unwrap();
    // What a failed earlier run of this test left.
    assert!(command(&["teardown", "--yes"]).output().unwrap().status.success());
    assert!(away(&["teardown", "--yes"]).status.success());
    let piped = |mut command: Command| {
        command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        command.spawn().unwrap()
    };
    let first = piped(command(&["deploy"]));
    let second = piped(command(&["deploy"]));
    let outcomes = [first.wait_with_output().unwrap(), second.wait_with_output().unwrap()];
    let codes: Vec<Option<i32>> = outcomes.iter().map(|o| o.status.code()).collect();
    let stderr: Vec<String> = outcomes.iter().map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).collect();
    assert!(
        codes.contains(&Some(0)) && codes.contains(&Some(3)),
        "one deploys, one is refused: {codes:?}\n{stderr:#?}"
    );
    let deployed =
        String::from_utf8_lossy(&outcomes[codes.iter().position(|c| *c == Some(0)).unwrap()].stdout).into_owned();
    assert!(
        deployed.contains("this stack costs about $") && deployed.contains("`cargo xtask teardown` stops it"),
        "a deploy ends with what the stack costs: {deployed}"
    );
    let refusal = &stderr[codes.iter().position(|c| *c == Some(3)).unwrap()];
    assert!(
        refusal.contains(&format!("stack {stack} is locked by")) && refusal.contains("cargo xtask deploy"),
        "{refusal}"
    );

    // One stack, complete, with one of each: a deploy now changes nothing.
    let status = command(&["status"]).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert_eq!(status.matches("matches the config").count(), 4, "{status}");
    let (code, _, stderr) = {
        let output = command(&["plan", "--detailed-exitcode"]).output().unwrap();
        (output.status.code(), (), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    assert_eq!(code, Some(0), "nothing left to do: {stderr}");

    // `stacks --all-regions` finds it and another stack's network in another region, each
    // with its cost; `cost` itemizes the live stack.
    let deployed = away(&["deploy", "network"]);
    assert_eq!(deployed.status.code(), Some(0), "{}", String::from_utf8_lossy(&deployed.stderr));
    let listed = command(&["stacks", "--all-regions"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let row = |name: &str| listed.lines().find(|line| line.contains(name)).unwrap_or_default().to_owned();
    assert!(
        row(stack).starts_with("ap-northeast-1") && row(stack).contains("network, alb, compute, database"),
        "{listed}"
    );
    assert!(row("cli-away").starts_with("eu-west-3") && row("cli-away").contains("network "), "{listed}");
    assert!(row(stack).contains('$') && row("cli-away").contains('$'), "{listed}");
    let itemized = command(&["cost"]).output().unwrap();
    let itemized = String::from_utf8_lossy(&itemized.stdout).into_owned();
    for item in ["NAT gateway × 1", "public IPv4 × 3", "load balancer × 1", "EC2 t3.micro", "RDS mysql db.t3.micro"]
    {
        assert!(itemized.contains(item), "{item}: {itemized}");
    }

    let teardown = command(&["teardown", "--yes"]).output().unwrap();
    assert_eq!(teardown.status.code(), Some(0), "{}", String::from_utf8_lossy(&teardown.stderr));
    let teardown = away(&["teardown", "--yes"]);
    assert_eq!(teardown.status.code(), Some(0), "{}", String::from_utf8_lossy(&teardown.stderr));
}

/// Runs the xtask binary as a newcomer without any AWS account would: no credentials,
/// no profile, no endpoint, no instance role.
fn run_without_account(args: &[&str]) -> (Option<i32>, String, String) {
    let home = tempdir("no-account");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .args(["--config", "../config/default.toml"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code(), text(&output.stdout), text(&output.stderr))
}

#[test]
fn without_an_account_plan_shows_the_plan_for_an_account_without_the_stack() {
    let (code, _, stderr) = run_without_account(&["plan"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.starts_with("no AWS credentials were found"), "one line says what the plan assumes: {stderr}");
    for tier in ["network: 15 to create", "alb: 3 to create", "compute: 3 to create", "database: 2 to create"] {
        assert!(stderr.contains(tier), "{tier}: {stderr}");
    }
    assert!(stderr.contains("instance three-tier-app (t3.micro, (looked up at deploy)"), "{stderr}");
    assert!(stderr.contains("deploy: about 6m05s; long pole: VPC three-tier-vpc"), "{stderr}");
    assert!(stderr.contains("paths the config builds: internet → ALB → nginx open, nginx → MySQL open"), "{stderr}");
    assert!(stderr.contains("cost: about $") && stderr.contains("a month while it runs"), "{stderr}");

    let (code, stdout, stderr) = run_without_account(&["plan", "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let document: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(document["changes"], true);
    assert!(document["assumption"].as_str().unwrap().starts_with("no AWS credentials"));
    assert_eq!(document["plan"]["tiers"].as_array().unwrap().len(), 4);
    assert!(document["prediction"]["seconds"].as_f64().unwrap() > 360.0);
    assert!(document["monthly_cost"]["monthly"].as_f64().unwrap() > 50.0, "{document}");

    let (code, _, stderr) = run_without_account(&["plan", "--detailed-exitcode"]);
    assert_eq!(code, Some(2), "changes to make: {stderr}");

    // What it will cost and look like, offline too.
    let (code, stdout, stderr) = run_without_account(&["cost", "--plan"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("would cost about $") && stdout.contains("NAT gateway × 1"), "{stdout}");
    let (code, stdout, stderr) = run_without_account(&["diagram", "--plan", "--svg", "/dev/null"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("flowchart TB") && stdout.contains("10.0.0.64/26"), "{stdout}");

    // The paths the config builds, offline: the plan's names stand for the ids.
    let (code, stdout, stderr) = run_without_account(&["reach", "--plan"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.matches(" — open").count(), 3, "{stdout}");
    assert!(stdout.contains("sg001") && stdout.contains("allows tcp 3030 from alb-sg001"), "{stdout}");
    // Without --plan, reach reads AWS, and cannot without an account.
    let (code, _, stderr) = run_without_account(&["reach"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no AWS credentials were found"), "{stderr}");

    // deploy cannot do without one: a short error that says so and what to do, not the
    // SDK's dump of every provider it tried.
    let (code, _, stderr) = run_without_account(&["deploy"]);
    assert_eq!(code, Some(1), "{stderr}");
    let error: Vec<&str> = stderr.lines().skip_while(|line| !line.starts_with("error:")).collect();
    assert_eq!(error.len(), 2, "{stderr}");
    assert!(error[0].contains("no AWS credentials were found") && error[1].starts_with("  fix: "), "{stderr}");
    assert!(!stderr.contains("ProviderAttempt"), "{stderr}");
    insta::assert_snapshot!("error_no_credentials", error.join("\n"));
}

#[test]
fn an_expired_sso_session_is_one_error_that_says_to_log_in_again() {
    // A profile of an SSO session whose cached token has expired and cannot be refreshed.
    let home = tempdir("expired-sso");
    std::fs::create_dir_all(home.join(".aws/sso/cache")).unwrap();
    let profile = "[profile expired]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = Admin\n\n\
                   [sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-1\n\
                   sso_registration_scopes = sso:account:access\n";
    std::fs::write(home.join(".aws/config"), profile).unwrap();
    // The cache is named by the SHA-1 of the session's name, "corp".
    let token = r#"{"startUrl": "https://corp.awsapps.com/start", "region": "us-east-1", "accessToken": "expired", "expiresAt": "2026-01-01T00:00:00Z"}"#;
    std::fs::write(home.join(".aws/sso/cache/ee0bfd2552fbd840c02cc48b6e823320543c450f.json"), token).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["deploy", "--config", "../config/default.toml"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("AWS_PROFILE", "expired")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("WARN") && !stderr.contains("ProviderError"), "the SDK's internals stay out: {stderr}");
    let error: Vec<&str> = stderr.lines().skip_while(|line| !line.starts_with("error:")).collect();
    insta::assert_snapshot!("error_expired_sso", error.join("\n"));
}

struct Outcome {
    code: Option<i32>,
    stderr: String,
    aws_connections: usize,
}

/// Runs the xtask binary with AWS pointed at a local listener that counts connections.
fn run_xtask(args: &[&str]) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_REGION")
        .output()
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let aws_connections = std::iter::from_fn(|| listener.accept().ok()).count();
    Outcome {
        code: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        aws_connections,
    }
}

/// The xtask binary run against the emulator at `running`, for `stack` with `config`,
/// outside any AWS account or profile.
fn on_emulator(running: &emulator::Running, stack: &str, config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command
        .args(args)
        .args(["--stack", stack, "--config"])
        .arg(config)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .env("AWS_ENDPOINT_URL", running.endpoint())
        .env_remove("AWS_REGION")
        .env_remove("AWS_PROFILE");
    command
}

/// The default config moved to `region`, written to a file of the test's own.
fn default_config_in(test: &str, region: &str) -> std::path::PathBuf {
    let path = tempdir(test).join(format!("{region}.toml"));
    std::fs::write(&path, DEFAULT.replace("ap-northeast-1", region)).unwrap();
    path
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("three-tier-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn ctrl_c_stops_between_steps_releases_the_lock_and_the_next_deploy_finishes() {
    use std::io::{BufRead, BufReader};
    let running = emulator::Emulator::default().ensure_running().expect("the emulator starts");
    let (stack, region) = ("cli-interrupt", "ca-west-1");
    let config = default_config_in("interrupt", region);
    let command = |args: &[&str]| on_emulator(&running, stack, &config, args);
    // What a failed earlier run of this test left.
    running.set_clock(region, emulator::Clock::Rate(1.0)).unwrap();
    assert!(command(&["teardown", "--yes"]).output().unwrap().status.success());

    // AWS time at a crawl in this region: the database's creation lasts long enough to
    // interrupt the deploy while it waits, with other steps in flight.
    running.set_clock(region, emulator::Clock::Rate(0.02)).unwrap();
    let mut deploy =
        command(&["deploy"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(deploy.stderr.take().unwrap()).lines().map_while(Result::ok);
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let waiting = line.contains(&format!("{stack}-db becoming available"));
        seen.push(line);
        if waiting {
            break;
        }
    }
    assert!(Command::new("kill").args(["-INT", &deploy.id().to_string()]).status().unwrap().success());
    seen.extend(lines);
    let code = deploy.wait().unwrap().code();
    let stderr = seen.join("\n");
    running.set_clock(region, emulator::Clock::Rate(1.0)).unwrap();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("interrupted: starting nothing new"), "{stderr}");
    assert!(stderr.contains("steps done, the rest not started; nothing is half-made"), "{stderr}");
    assert!(stderr.contains(&format!("resume: cargo xtask deploy --stack {stack} --config")), "{stderr}");

    // The lock was released: the next deploy takes it at once and builds the rest.
    let listed = String::from_utf8_lossy(&command(&["stacks"]).output().unwrap().stdout).into_owned();
    let row = listed.lines().find(|line| line.contains(stack)).unwrap_or_default().to_owned();
    assert!(row.ends_with(" -"), "no lock: {listed}");
    let resumed = command(&["deploy"]).output().unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", String::from_utf8_lossy(&resumed.stderr));
    let status = String::from_utf8_lossy(&command(&["status"]).output().unwrap().stdout).into_owned();
    assert_eq!(status.matches("matches the config").count(), 4, "{status}");

    // A teardown whose every call AWS answers slowly, interrupted twice: the first Ctrl-C
    // lets the calls in flight finish, the second stops the process at once, leaving its
    // lock. The next teardown is refused, naming it; with --force-unlock it is taken over,
    // saying from whom, and the teardown completes.
    running.set_faults(&serde_json::json!({"region": region, "latency_ms": 3000})).unwrap();
    let mut teardown = command(&["teardown", "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(teardown.stderr.take().unwrap()).lines().map_while(Result::ok);
    let mut seen = Vec::new();
    let interrupt = |child: &std::process::Child| {
        assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    };
    // A step announced ("  - compute: ..."; the plan's lines name no tier): its call is
    // in flight.
    let announced = |line: &str| {
        let tiers = ["network", "alb", "compute", "database"];
        ["+", "~", "-"].iter().any(|sign| tiers.iter().any(|tier| line.starts_with(&format!("  {sign} {tier}: "))))
    };
    for line in lines.by_ref() {
        let started = announced(&line);
        seen.push(line);
        if started {
            break;
        }
    }
    interrupt(&teardown);
    for line in lines.by_ref() {
        let stopping = line.contains("interrupted: starting nothing new");
        seen.push(line);
        if stopping {
            break;
        }
    }
    interrupt(&teardown);
    seen.extend(lines);
    let code = teardown.wait().unwrap().code();
    running.set_faults(&serde_json::json!({ "region": region })).unwrap();
    let stderr = seen.join("\n");
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("stopped at once: what was in flight may be half-made"), "{stderr}");
    assert!(!stderr.contains("steps done, the rest not started"), "no orderly end: {stderr}");
    let refused = command(&["teardown", "--yes"]).output().unwrap();
    let refusal = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(3), "{refusal}");
    assert!(refusal.contains(&format!("stack {stack} is locked by")) && refusal.contains("teardown"), "{refusal}");
    let forced = command(&["teardown", "--yes", "--force-unlock"]).output().unwrap();
    let taken = String::from_utf8_lossy(&forced.stderr).into_owned();
    assert_eq!(forced.status.code(), Some(0), "{taken}");
    assert!(taken.contains(&format!("taking over the lock of stack {stack} from")), "{taken}");
    assert!(taken.contains("(--force-unlock)"), "{taken}");
    let status = String::from_utf8_lossy(&command(&["status"]).output().unwrap().stdout).into_owned();
    assert_eq!(status.matches("not deployed").count(), 4, "{status}");
}

#[test]
fn a_plan_with_a_conflict_deploy_would_refuse_on_shows_it_and_exits_1() {
    let running = emulator::Emulator::default().ensure_running().expect("the emulator starts");
    let deployed = default_config_in("conflict", "us-east-2");
    // The app subnet's CIDR changed: AWS cannot change a subnet's block in place.
    let moved = deployed.with_file_name("moved.toml");
    let config = std::fs::read_to_string(&deployed).unwrap();
    std::fs::write(&moved, config.replace("cidr = \"10.0.0.0/26\"", "cidr = \"10.0.2.0/26\"")).unwrap();
    let command = |config: &Path, args: &[&str]| on_emulator(&running, "cli-conflict", config, args).output().unwrap();
    let built = command(&deployed, &["deploy", "network"]);
    assert_eq!(built.status.code(), Some(0), "{}", String::from_utf8_lossy(&built.stderr));

    let planned = command(&moved, &["plan", "network"]);
    let stderr = String::from_utf8_lossy(&planned.stderr).into_owned();
    assert_eq!(planned.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("network:") && stderr.contains("error: "), "the plan, then the error: {stderr}");
    assert!(
        stderr.contains("has CIDR 10.0.0.0/26, but config says 10.0.2.0/26")
            && stderr.contains("cannot change")
            && stderr.contains("restore network.subnets."),
        "the conflict, its reason and its fix: {stderr}"
    );
    let detailed = command(&moved, &["plan", "network", "--detailed-exitcode"]);
    assert_eq!(detailed.status.code(), Some(1), "{}", String::from_utf8_lossy(&detailed.stderr));

    // deploy refuses the same plan before its first change: no EC2 request changes anything.
    let mark = running.request_mark().unwrap();
    let refused = command(&moved, &["deploy", "network"]);
    let stderr = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_ne!(refused.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("has CIDR 10.0.0.0/26, but config says 10.0.2.0/26"), "{stderr}");
    let changes: Vec<String> = running
        .requests_since(mark, "us-east-2")
        .unwrap()
        .into_iter()
        .filter(|r| r.is_mutating() && r.service == "ec2")
        .map(|r| r.action)
        .collect();
    assert_eq!(changes, Vec::<String>::new(), "{stderr}");

    let teardown = command(&deployed, &["teardown", "--yes"]);
    assert_eq!(teardown.status.code(), Some(0), "{}", String::from_utf8_lossy(&teardown.stderr));
}

#[test]
fn plain_moto_at_aws_endpoint_url_deploys_and_tears_down_the_whole_stack() {
    // The endpoint a new user points AWS_ENDPOINT_URL at: moto as published, without the
    // strict emulator's rules, clocks and data plane (it lacks some reads AWS answers).
    let plain = emulator::Emulator::default().private("cli-plain");
    let mode = emulator::Mode { strict: false, ..emulator::Mode::from_env() };
    let running = plain.ensure_running_as(&mode).expect("plain moto starts");
    let (stack, region) = ("cli-plain", "eu-west-1");
    let config = default_config_in("plain", region);
    let run = |args: &[&str]| {
        let output = on_emulator(&running, stack, &config, args).output().unwrap();
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (output.status.code(), text(&output.stdout), text(&output.stderr))
    };
    let (code, stdout, stderr) = run(&["deploy"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    // The limits and offerings plain moto cannot answer are notes, not refusals.
    assert!(stderr.contains("note:") || stdout.contains("note:"), "{stdout}{stderr}");

    // Judged by this test's own reads of moto: one of each billed resource.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let count = || {
        runtime.block_on(async {
            let target = three_tier_core::Target::Emulator { endpoint: running.endpoint() };
            let waits = three_tier_core::wait::WaitSettings::fast_poll();
            let progress = three_tier_core::progress::Progress::silent();
            let ctx = three_tier_core::AwsContext::connect(&target, region, waits, progress).await;
            let tagged = |tags: Vec<(Option<String>, Option<String>)>| {
                tags.iter().any(|(k, v)| k.as_deref() == Some("three-tier:stack") && v.as_deref() == Some(stack))
            };
            let vpcs = ctx.ec2.describe_vpcs().send().await.unwrap();
            let vpcs = vpcs
                .vpcs()
                .iter()
                .filter(|v| tagged(v.tags().iter().map(|t| (t.key.clone(), t.value.clone())).collect()))
                .count();
            let instances = ctx.ec2.describe_instances().send().await.unwrap();
            let instances = instances
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .filter(|i| i.state().and_then(|s| s.name()).is_some_and(|s| s.as_str() == "running"))
                .filter(|i| tagged(i.tags().iter().map(|t| (t.key.clone(), t.value.clone())).collect()))
                .count();
            let balancers = ctx.elbv2.describe_load_balancers().send().await.unwrap();
            let balancers = balancers
                .load_balancers()
                .iter()
                .filter(|b| b.load_balancer_name() == Some(&format!("{stack}-sample-alb")))
                .count();
            let databases = ctx.rds.describe_db_instances().send().await.unwrap();
            let databases = databases
                .db_instances()
                .iter()
                .filter(|d| d.db_instance_identifier() == Some(&format!("{stack}-db")))
                .count();
            [vpcs, instances, balancers, databases]
        })
    };
    assert_eq!(count(), [1, 1, 1, 1], "VPC, instance, load balancer, DB instance");

    let (code, stdout, stderr) = run(&["teardown", "--yes"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(count(), [0, 0, 0, 0], "torn down to nothing");
    let _ = plain.stop();
}
