//! The instance's user data, rendered from `user-data.sh` with the seed's compose file.

/// The seed's `docker-compose.yml`: service nginx, image `nginx:latest`, ports
/// `"<app port>:80"`. With the default app port, 3030, it is the seed's file verbatim; the
/// target group and sg001 use the same port, so nginx must be published on it.
const COMPOSE_TEMPLATE: &str = include_str!("docker-compose.yml");

/// The Docker compose plugin release the instance installs, and the SHA-256 of its
/// `docker-compose-linux-x86_64` asset, which the script verifies before installing.
pub const COMPOSE_VERSION: &str = "v2.40.3";
pub const COMPOSE_SHA256: &str = "dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372";

/// Where the compose project lives on the instance.
pub const APP_DIR: &str = "/opt/three-tier/nginx";

const TEMPLATE: &str = include_str!("user-data.sh");

/// The compose file, publishing nginx's port 80 on each of `ports` (`ports.app`, then
/// each listener rule's target group port). With the app port alone, the seed's file.
pub fn compose_file(ports: &[u16]) -> String {
    let line =
        COMPOSE_TEMPLATE.lines().find(|l| l.contains("{{APP_PORT}}")).expect("the template publishes the app port");
    let lines: Vec<String> = ports.iter().map(|port| line.replace("{{APP_PORT}}", &port.to_string())).collect();
    COMPOSE_TEMPLATE.replace(line, &lines.join("\n"))
}

/// The script, ready for RunInstances (before base64 encoding), for nginx published on
/// each of `ports`. It holds no secret.
pub fn render(ports: &[u16]) -> String {
    TEMPLATE
        .replace("{{COMPOSE_VERSION}}", COMPOSE_VERSION)
        .replace("{{COMPOSE_SHA256}}", COMPOSE_SHA256)
        .replace("{{APP_DIR}}", APP_DIR)
        .replace("{{COMPOSE_FILE}}", &compose_file(ports))
}

/// What the compose file a user data script writes publishes: each `"host:container"`
/// port mapping of its services; nothing without a compose file.
pub fn published(script: &str) -> Vec<(u16, u16)> {
    let compose = compose_file_in(script).unwrap_or_default();
    compose
        .lines()
        .filter_map(|line| {
            let mapping = line.trim().strip_prefix("- ")?.trim().trim_matches(|c| c == '"' || c == '\'');
            let mapping = mapping.split('/').next()?;
            let mut parts = mapping.rsplit(':');
            let container = parts.next()?.parse().ok()?;
            let host = parts.next()?.parse().ok()?;
            Some((host, container))
        })
        .collect()
}

/// The compose file a rendered script writes: the lines of its here-document.
pub fn compose_file_in(script: &str) -> Option<String> {
    let start = script.find("<<'COMPOSE'\n")? + "<<'COMPOSE'\n".len();
    let end = start + script[start..].find("\nCOMPOSE\n")? + 1;
    Some(script[start..end].to_owned())
}
