//! `cargo xtask verify`: the seed's two success criteria, checked on a deployed stack.
//!
//! First the paths they need, hop by hop, on what AWS holds (see [`crate::reach`]): a
//! closed path fails naming its hop, and the checks that need it are skipped. Then:
//!
//! 1. The ALB answers HTTP GET with the nginx default page.
//! 2. From inside the nginx container, a MySQL client reaches RDS and `SHOW DATABASES`
//!    lists the initial database; run through SSM Run Command, as the seed does by hand.
//!
//! The same checks run on AWS and on the strict emulator, whose data plane serves real
//! traffic (its servers stand for the ALB, nginx and MySQL, and its name map for DNS); an
//! emulator that serves none (plain moto, LocalStack's free tier) shows the control plane
//! only, and verify says which checks need real AWS.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum;
use serde::Serialize;
use three_tier_core::calls::declared;
use three_tier_core::outputs::{AlbOutputs, ComputeOutputs, DatabaseOutputs};
use three_tier_core::progress::Waiting;
use three_tier_core::{AwsContext, AwsResultExt, Config, Error, Result, Tier};

use crate::command::{Ran, run_script};
use crate::reach::{self, INSTANCE_TO_INTERNET, INTERNET_TO_NGINX, NGINX_TO_MYSQL, Path};
use crate::{Observations, StackOutputs, TIERS};

/// The page nginx serves by default.
pub const NGINX_WELCOME: &str = "Welcome to nginx!";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub outcome: Outcome,
    pub detail: String,
    /// A path check's hops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Path>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    Failed,
    /// Only real AWS can show this.
    NeedsRealAws,
    /// Not run: a path it needs is closed.
    Skipped,
}

/// Who serves the checks' traffic: the only difference between AWS and the emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Traffic {
    /// AWS: the ALB's name resolves through DNS; commands run on the instance.
    Aws,
    /// The strict emulator's data plane at this endpoint: its name map stands for DNS.
    Emulator { endpoint: String },
    /// An emulator that serves no traffic, and why: the data-plane checks need real AWS.
    None { why: String },
}

impl Traffic {
    /// Where `host`:`port` is, or why it cannot be reached yet.
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<SocketAddr> {
        let found = match self {
            Traffic::Emulator { endpoint } => emulator::resolve(endpoint, host, port),
            Traffic::Aws | Traffic::None { .. } => (host, port).to_socket_addrs()?.next(),
        };
        found.ok_or_else(|| std::io::Error::other(format!("{host} does not resolve (yet)")))
    }
}

/// How long verify keeps trying while targets become healthy and the container starts.
#[derive(Debug, Clone, Copy)]
pub struct VerifyLimits {
    /// The target becoming healthy. Right after a deploy the user data is still installing
    /// Docker (1-2 minutes); a target that failed its first two checks meanwhile then needs
    /// five passes 30 s apart: some 5 minutes in all, and a margin.
    pub health: Duration,
    pub http: Duration,
    pub command: Duration,
}

impl VerifyLimits {
    /// On an emulator whose clock runs AWS's durations at `time_scale`: the target's and
    /// the page's waits scaled (at least 30 s), the command's real (it runs for real).
    pub fn on_emulator(time_scale: f64) -> VerifyLimits {
        let scaled = |limit: Duration| limit.mul_f64(time_scale).max(Duration::from_secs(30));
        let default = VerifyLimits::default();
        VerifyLimits { health: scaled(default.health), http: scaled(default.http), command: Duration::from_secs(120) }
    }
}

impl Default for VerifyLimits {
    fn default() -> Self {
        VerifyLimits {
            health: Duration::from_secs(10 * 60),
            http: Duration::from_secs(10 * 60),
            command: Duration::from_secs(10 * 60),
        }
    }
}

/// The calls verify makes of its own (the tiers' reads, the paths' and the command's
/// declare theirs), as IAM names them.
pub const READS: &[&str] = &["elasticloadbalancing:DescribeTargetHealth"];

/// The paths, then both goals' checks, with their traffic served by `traffic`.
pub async fn verify(ctx: &AwsContext, config: &Config, traffic: &Traffic, limits: VerifyLimits) -> Result<Vec<Check>> {
    declared(READS, check_all(ctx, config, traffic, limits)).await
}

async fn check_all(ctx: &AwsContext, config: &Config, traffic: &Traffic, limits: VerifyLimits) -> Result<Vec<Check>> {
    let observed = Observations::read(ctx, config, TIERS).await?;
    let outputs = deployed(observed.outputs(config), config, &[Tier::Alb, Tier::Compute, Tier::Database])?;
    let StackOutputs { alb: Some(alb), compute: Some(compute), database: Some(database), .. } = &outputs else {
        unreachable!("deployed() checked these tiers")
    };
    let paths = reach::paths(&reach::observe::observe(ctx, config, &observed).await?);
    let mut checks: Vec<Check> = paths.iter().map(path_check).collect();
    // The user data installs Docker and starts nginx only with a way out.
    let closed = |names: &[&str]| {
        let closed: Vec<&str> = paths.iter().filter(|p| names.contains(&p.name) && !p.open()).map(|p| p.name).collect();
        (!closed.is_empty()).then(|| format!("the path {} is closed", closed.join(" and the path ")))
    };
    let web = "the ALB serves the nginx page";
    if let Some(why) = closed(&[INTERNET_TO_NGINX, INSTANCE_TO_INTERNET]) {
        checks.push(skipped(&health_check_name(compute), &why));
        checks.push(skipped(web, &why));
    } else {
        checks.push(target_health(ctx, alb, compute, limits.health).await?);
        if let Traffic::None { why } = traffic {
            let detail = format!("{why}: on AWS, GET {} must answer 200 with \"{NGINX_WELCOME}\"", alb.url());
            checks.push(Check { name: web.into(), outcome: Outcome::NeedsRealAws, detail, path: None });
        } else {
            checks.push(http_check(ctx, alb, traffic, limits.http).await);
        }
    }
    if let Some(why) = closed(&[NGINX_TO_MYSQL, INSTANCE_TO_INTERNET]) {
        checks.push(skipped(&database_check_name(config, compute), &why));
    } else {
        checks.push(database_check(ctx, config, compute, database, traffic, limits.command).await?);
    }
    Ok(checks)
}

/// A path as a check: failed at its first closed hop, with what repairs it.
fn path_check(path: &Path) -> Check {
    let (outcome, detail) = match path.first_closed() {
        None => (Outcome::Passed, format!("{} hops open", path.hops.len())),
        Some(hop) => (
            Outcome::Failed,
            format!(
                "closed at {}: {}{}",
                hop.resource,
                hop.detail,
                hop.repair.as_ref().map(|fix| format!("; fix: {fix}")).unwrap_or_default()
            ),
        ),
    };
    Check { name: format!("path {}", path.name), outcome, detail, path: Some(path.clone()) }
}

fn skipped(name: &str, why: &str) -> Check {
    Check { name: name.into(), outcome: Outcome::Skipped, detail: why.into(), path: None }
}

/// "the nginx container lists ...", or with more than one instance, "every nginx container".
fn database_check_name(config: &Config, compute: &ComputeOutputs) -> String {
    let which = if compute.instances.len() == 1 { "the nginx container" } else { "every nginx container" };
    format!("{which} lists the `{}` database", config.database.database_name)
}

/// The second goal alone: the nginx container lists the database. The instance's SSM
/// agent may not have registered yet (right after the instance starts): waited for.
pub async fn verify_database(
    ctx: &AwsContext,
    config: &Config,
    traffic: &Traffic,
    limits: VerifyLimits,
) -> Result<Check> {
    let outputs = deployed(crate::outputs(ctx, config).await?, config, &[Tier::Compute, Tier::Database])?;
    let (Some(compute), Some(database)) = (&outputs.compute, &outputs.database) else {
        unreachable!("deployed() checked these tiers")
    };
    database_check(ctx, config, compute, database, traffic, limits.command).await
}

/// The stack's outputs, refused with the first of `tiers` that is not deployed.
fn deployed(outputs: StackOutputs, config: &Config, tiers: &[Tier]) -> Result<StackOutputs> {
    match outputs.missing(tiers) {
        Some(tier) => Err(Error::NotDeployed { tier, stack: config.stack.name.clone() }),
        None => Ok(outputs),
    }
}

/// Waits for every instance to be a healthy target: right after a deploy each is
/// `initial`, and `unhealthy` while its user data is still starting nginx.
async fn target_health(ctx: &AwsContext, alb: &AlbOutputs, compute: &ComputeOutputs, limit: Duration) -> Result<Check> {
    let name = health_check_name(compute);
    let started = Instant::now();
    let mut waiting: Option<Waiting> = None;
    loop {
        let answer = ctx
            .elbv2
            .describe_target_health()
            .target_group_arn(&alb.app_target_group_arn)
            .send()
            .await
            .aws("DescribeTargetHealth")?;
        let health_of = |instance: &str| {
            answer
                .target_health_descriptions()
                .iter()
                .find(|d| d.target().and_then(|t| t.id()) == Some(instance))
                .and_then(|d| d.target_health())
        };
        // The first instance (by key) not healthy yet, with its health.
        let mut lagging = None;
        for instance in compute.instances.values().map(|i| i.id.as_str()) {
            let Some(health) = health_of(instance) else {
                let detail =
                    format!("{instance} is not registered in the app target group: run `cargo xtask deploy compute`");
                return Ok(Check { name, outcome: Outcome::Failed, detail, path: None });
            };
            let state = health.state().cloned().unwrap_or(TargetHealthStateEnum::Initial);
            if state != TargetHealthStateEnum::Healthy && lagging.is_none() {
                lagging = Some((instance, health, state));
            }
        }
        let Some((instance, health, state)) = lagging else {
            if let Some(waiting) = waiting.take() {
                waiting.done("healthy");
            }
            let ids: Vec<&str> = compute.instances.values().map(|i| i.id.as_str()).collect();
            let detail = match ids.as_slice() {
                [one] => format!("{one} is healthy in the app target group"),
                all => format!("{} are healthy in the app target group", all.join(", ")),
            };
            return Ok(Check { name, outcome: Outcome::Passed, detail, path: None });
        };
        let reason = health.reason().map(|r| r.as_str().to_owned()).unwrap_or_default();
        if started.elapsed() >= limit {
            if let Some(waiting) = waiting.take() {
                waiting.done("gave up");
            }
            let detail = format!(
                "{instance} is still {} in the app target group after {}s ({reason}: {}); nginx answers on the app port \
                 once the user data has installed Docker and started it: read /var/log/cloud-init-output.log and \
                 `docker compose ps` on the instance (`aws ssm start-session --target {instance}`)",
                state.as_str(),
                limit.as_secs(),
                health.description().unwrap_or("no description"),
            );
            return Ok(Check { name, outcome: Outcome::Failed, detail, path: None });
        }
        waiting.get_or_insert_with(|| {
            ctx.progress
                .waiting(format!("{instance} becoming a healthy target (now {}, {reason})", state.as_str()), limit)
        });
        tokio::time::sleep(ctx.waits.poll_interval).await;
    }
}

/// "the instance is a healthy target", or with more than one, "every instance is".
fn health_check_name(compute: &ComputeOutputs) -> String {
    match compute.instances.len() {
        1 => "the instance is a healthy target".to_owned(),
        _ => "every instance is a healthy target".to_owned(),
    }
}

async fn http_check(ctx: &AwsContext, alb: &AlbOutputs, traffic: &Traffic, limit: Duration) -> Check {
    let name = "the ALB serves the nginx page".to_owned();
    let url = alb.url();
    let started = Instant::now();
    let waiting = ctx.progress.waiting(format!("GET {url} answering with the nginx page"), limit);
    let mut last = String::new();
    while started.elapsed() < limit {
        let (traffic, host, port) = (traffic.clone(), alb.dns_name.clone(), alb.listener_port);
        let answer = tokio::task::spawn_blocking(move || http_get(traffic.resolve(&host, port)?, &host)).await;
        match answer {
            Ok(Ok((200, body))) if body.contains(NGINX_WELCOME) => {
                waiting.done("200, nginx page");
                return Check {
                    name,
                    outcome: Outcome::Passed,
                    detail: format!("GET {url} → 200 \"{NGINX_WELCOME}\""),
                    path: None,
                };
            }
            Ok(Ok((status, _))) => last = format!("answered {status}"),
            Ok(Err(err)) => last = err.to_string(),
            Err(err) => last = err.to_string(),
        }
        tokio::time::sleep(ctx.waits.poll_interval.max(Duration::from_millis(200))).await;
    }
    waiting.done("gave up");
    Check {
        name,
        outcome: Outcome::Failed,
        detail: format!(
            "GET {url} did not return the nginx page within {}s (last: {last}); the target's health and the instance's \
             /var/log/cloud-init-output.log (`cargo xtask logs`) say why",
            limit.as_secs()
        ),
        path: None,
    }
}

/// A plain HTTP/1.1 GET of `/` from `address`, for `host`: the status code and the body.
fn http_get(address: SocketAddr, host: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: three-tier-verify\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, response.into_owned()))
}

/// The script SSM runs on the instance. It holds no secret: the instance reads the
/// password from the RDS-managed secret with its own role, and hands it to the client in
/// the environment, never on a command line.
pub fn database_check_script(config: &Config, database: &DatabaseOutputs) -> String {
    let region = &config.stack.region;
    let user = &config.database.master_username;
    let DatabaseOutputs { endpoint_address, port, master_secret_arn, .. } = database;
    let compose = format!("{}/docker-compose.yml", compute::user_data::APP_DIR);
    format!(
        r#"set -euo pipefail
MYSQL_PWD="$(aws secretsmanager get-secret-value --region '{region}' --secret-id '{master_secret_arn}' --query SecretString --output text | python3 -c 'import json, sys; print(json.load(sys.stdin)["password"])')"
export MYSQL_PWD
curl --fail --silent --show-error --retry 5 --output /tmp/rds-global-bundle.pem https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem
# Right after a deploy the user data may still be installing Docker and starting the container.
container=""
for _ in $(seq 60); do
  container="$(docker compose -f '{compose}' ps -q nginx 2>/dev/null || true)"
  [ -n "$container" ] && break
  sleep 5
done
[ -n "$container" ] || {{ echo "no nginx container after 5 minutes: see /var/log/cloud-init-output.log" >&2; exit 1; }}
docker cp /tmp/rds-global-bundle.pem "$container:/tmp/rds-global-bundle.pem"
docker exec "$container" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-mysql-client > /dev/null'
# Debian's client is MariaDB's: `mariadb`, and `mysql` only where its compatibility links are installed.
# shellcheck disable=SC2016
docker exec -e MYSQL_PWD "$container" sh -c 'exec "$(command -v mariadb || command -v mysql)" "$@"' client --ssl-ca=/tmp/rds-global-bundle.pem --ssl-verify-server-cert -h '{endpoint_address}' -P {port} -u '{user}' -e 'SHOW DATABASES'
"#
    )
}

/// The second goal on every instance, at once: each instance's nginx container lists the
/// database (from each zone the instances run in).
async fn database_check(
    ctx: &AwsContext,
    config: &Config,
    compute: &ComputeOutputs,
    database: &DatabaseOutputs,
    traffic: &Traffic,
    limit: Duration,
) -> Result<Check> {
    let name = database_check_name(config, compute);
    let script = database_check_script(config, database);
    let runs = compute
        .instances
        .values()
        .map(|instance| Box::pin(database_check_on(ctx, config, &instance.id, script.clone(), traffic, limit)) as _)
        .collect();
    let outcomes: Vec<(Outcome, String)> = ctx.all(runs).await?;
    let (outcome, detail) = match outcomes.as_slice() {
        [(outcome, detail)] => (*outcome, detail.clone()),
        several => {
            let worst = [Outcome::Failed, Outcome::NeedsRealAws, Outcome::Passed]
                .into_iter()
                .find(|worst| several.iter().any(|(outcome, _)| outcome == worst))
                .unwrap_or(Outcome::Passed);
            let ids = compute.instances.values().map(|i| i.id.as_str());
            let lines: Vec<String> = ids.zip(several).map(|(id, (_, detail))| format!("{id}: {detail}")).collect();
            (worst, lines.join("; "))
        }
    };
    Ok(Check { name, outcome, detail, path: None })
}

/// The database check on one instance: its outcome and what it found.
async fn database_check_on(
    ctx: &AwsContext,
    config: &Config,
    instance: &str,
    script: String,
    traffic: &Traffic,
    limit: Duration,
) -> Result<(Outcome, String)> {
    let comment = "three-tier verify: SHOW DATABASES from the nginx container";
    let ran = match run_script(ctx, instance, comment, script, limit).await? {
        Ok(ran) => ran,
        Err(command_id) => {
            let detail = format!(
                "command {command_id} did not finish within {}s; is the SSM agent online? (`aws ssm describe-instance-information`)",
                limit.as_secs()
            );
            return Ok((Outcome::Failed, detail));
        }
    };
    let Ran { command_id, status, output, errors } = ran;
    let listed = output.lines().any(|line| line.trim() == config.database.database_name);
    Ok(match (status.as_str(), listed, traffic) {
        ("Success", true, _) => {
            let databases: Vec<&str> =
                output.lines().map(str::trim).filter(|l| !l.is_empty() && *l != "Database").collect();
            (
                Outcome::Passed,
                format!("SHOW DATABASES lists {} ({})", config.database.database_name, databases.join(", ")),
            )
        }
        ("Success", false, Traffic::None { why }) => (
            Outcome::NeedsRealAws,
            format!(
                "{why}: the emulator accepted command {command_id} ({status}) but runs nothing: the SHOW DATABASES output needs real AWS"
            ),
        ),
        _ => (Outcome::Failed, format!("command {command_id} ended {status}; output: {output} {errors}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> DatabaseOutputs {
        DatabaseOutputs {
            endpoint_address: "three-tier-db.abcdefghij.ap-northeast-1.rds.amazonaws.com".into(),
            port: 3306,
            instance_arn: "arn:aws:rds:ap-northeast-1:123456789012:db:three-tier-db".into(),
            master_secret_arn: "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:rds!db-1234-AbCdEf".into(),
            zone: Some("ap-northeast-1a".into()),
            multi_az: None,
        }
    }

    #[test]
    fn the_database_check_mirrors_the_seed_without_a_secret_on_any_command_line() {
        let script = database_check_script(&Config::default_config(), &database());
        insta::assert_snapshot!("database_check_script", script);
        assert!(script.contains("apt-get install -y -qq default-mysql-client"), "the seed's client, in the container");
        assert!(script.contains("--ssl-ca=/tmp/rds-global-bundle.pem --ssl-verify-server-cert"), "TLS, verified");
        assert!(script.contains("docker exec -e MYSQL_PWD \"$container\" sh -c"), "the password in the environment");
        assert!(script.contains("command -v mariadb || command -v mysql"), "whichever client the image installed");
        assert!(!script.contains("-p'") && !script.contains("--password"), "no password on a command line");
    }

    #[test]
    fn the_scripts_run_on_the_instance_pass_shellcheck() {
        let scripts =
            [("verify", database_check_script(&Config::default_config(), &database())), ("logs", crate::logs_script())];
        for (what, script) in scripts {
            let path = std::env::temp_dir().join(format!("three-tier-{what}-{}.sh", std::process::id()));
            std::fs::write(&path, format!("#!/bin/bash\n{script}")).unwrap();
            let output = std::process::Command::new("shellcheck").arg(&path).output().unwrap_or_else(|err| {
                panic!("shellcheck is needed ({err}): `cargo xtask ci` installs it, or `apt-get install shellcheck`")
            });
            assert!(output.status.success(), "{what}: {}", String::from_utf8_lossy(&output.stdout));
        }
    }
}
