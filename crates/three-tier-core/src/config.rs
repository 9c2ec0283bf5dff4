//! The stack's configuration: `config/default.toml` and any file given with `--config`.
//!
//! Everything is checked before the first AWS call: a bad value stops the tool with one
//! message naming the key, the problem and the fix (see [`ConfigError`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Deserializer, Serialize};

use crate::naming::{Names, RESERVED_TAG_PREFIX};
use crate::roles::{SubnetKey, SubnetRole};

/// The whole configuration of one stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub stack: StackConfig,
    pub ports: Ports,
    pub network: NetworkConfig,
    pub alb: AlbConfig,
    pub compute: ComputeConfig,
    pub database: DatabaseConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackConfig {
    pub name: String,
    pub region: String,
    pub availability_zones: Vec<String>,
    /// The user's own tags, added to every resource.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ports {
    pub http: Port,
    pub app: Port,
    pub database: Port,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    #[serde(deserialize_with = "cidr")]
    pub vpc_cidr: Ipv4Net,
    pub nat_gateway_name: String,
    /// One NAT gateway for every app subnet (the seed's), or one in each zone with an app
    /// subnet, so a zone's failure leaves the others' way out.
    #[serde(default)]
    pub nat_gateways: NatGateways,
    pub subnets: Subnets,
    pub security_groups: SecurityGroupNames,
}

/// The stack's subnets by key (`[network.subnets.KEY]`): validated to hold at least one
/// subnet of each role, two in different zones for the ALB and the DB subnet group, and at
/// most one of a role in a zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Subnets(pub BTreeMap<SubnetKey, SubnetConfig>);

impl Subnets {
    pub fn iter(&self) -> impl Iterator<Item = (&SubnetKey, &SubnetConfig)> {
        self.0.iter()
    }

    /// The subnets of one role, in key order.
    pub fn of(&self, role: SubnetRole) -> impl Iterator<Item = (&SubnetKey, &SubnetConfig)> {
        self.0.iter().filter(move |(key, _)| key.role() == role)
    }

    pub fn get(&self, key: &str) -> Option<&SubnetConfig> {
        self.0.get(key)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut SubnetConfig> {
        self.0.get_mut(key)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NatGateways {
    #[default]
    One,
    PerZone,
}

/// A NAT gateway the config asks for: the public subnet it lives in, and the app subnets
/// whose route table sends 0.0.0.0/0 to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatPlacement<'a> {
    /// `None` for the gateway in the first ALB subnet (the only one with `"one"`), whose
    /// tags, Elastic IP and app route table keep the seed's names; else its zone, which
    /// suffixes theirs.
    pub zone: Option<&'a str>,
    pub subnet: &'a SubnetKey,
    pub serves: Vec<&'a SubnetKey>,
}

impl NetworkConfig {
    /// The public subnet the NAT gateway lives in: the first ALB subnet by key.
    pub fn nat_subnet(&self) -> (&SubnetKey, &SubnetConfig) {
        self.subnets.of(SubnetRole::Alb).next().expect("validated: an ALB subnet exists")
    }

    /// The NAT gateways: one in the first ALB subnet for every app subnet, or with
    /// `"per-zone"` one for each app subnet, in the ALB subnet of its zone.
    pub fn nat_placements(&self) -> Vec<NatPlacement<'_>> {
        let (first, _) = self.nat_subnet();
        let apps = self.subnets.of(SubnetRole::App);
        match self.nat_gateways {
            NatGateways::One => {
                vec![NatPlacement { zone: None, subnet: first, serves: apps.map(|(k, _)| k).collect() }]
            }
            NatGateways::PerZone => apps
                .map(|(key, app)| {
                    let zone = app.availability_zone.as_str();
                    let (public, _) = self
                        .subnets
                        .of(SubnetRole::Alb)
                        .find(|(_, s)| s.availability_zone == zone)
                        .expect("validated: each app subnet's zone has an ALB subnet");
                    NatPlacement { zone: (public != first).then_some(zone), subnet: public, serves: vec![key] }
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetConfig {
    pub name: String,
    #[serde(deserialize_with = "cidr")]
    pub cidr: Ipv4Net,
    pub availability_zone: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupNames {
    pub alb: String,
    pub app: String,
    pub db: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlbConfig {
    /// The seed's name; prefixed with the stack name for any stack but the default.
    pub name: String,
    pub target_group_name: String,
    pub health_check_path: String,
    pub health_check_matcher: String,
    #[serde(default)]
    pub rules: Vec<ListenerRuleConfig>,
}

/// A listener rule that forwards a path pattern to a target group of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerRuleConfig {
    pub priority: u32,
    pub path_pattern: String,
    pub target_group_name: String,
    pub port: Port,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputeConfig {
    pub instance_type: InstanceType,
    pub ami_parameter: String,
    #[serde(default)]
    pub ami_id: Option<String>,
    pub root_volume_gib: u32,
    /// How many app instances run, spread over the app subnets (the seed's one by default).
    #[serde(default = "one_instance")]
    pub instances: u32,
}

fn one_instance() -> u32 {
    1
}

/// The most app instances a config may ask for: a bound on a typo's bill.
pub const MAX_INSTANCES: u32 = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub subnet_group_name: String,
    pub engine: String,
    pub engine_version: String,
    pub instance_class: DbInstanceClass,
    pub storage_type: StorageType,
    pub allocated_storage_gib: u32,
    pub database_name: String,
    pub master_username: String,
    pub deletion_protection: bool,
    pub final_snapshot: bool,
    /// A synchronous standby in another zone of the DB subnet group, failed over to by RDS.
    #[serde(default)]
    pub multi_az: bool,
}

/// A TCP port, 1-65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Port(u16);

impl Port {
    pub fn new(port: u16) -> Option<Port> {
        (port != 0).then_some(Port(port))
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(deserializer)?;
        u16::try_from(value).ok().and_then(Port::new).ok_or_else(|| {
            serde::de::Error::custom(format!("{value} is not a TCP port{FIX_SEPARATOR}use a number from 1 to 65535"))
        })
    }
}

/// An EC2 instance type, `family.size` (`t3.micro`): parsed once, at the config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct InstanceType(String);

/// An RDS DB instance class, `db.family.size` (`db.t3.micro`): parsed once, at the config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct DbInstanceClass(String);

/// `family.size`, each part non-empty: the family, when `text` is one.
fn family_of(text: &str) -> Option<&str> {
    text.split_once('.').filter(|(family, size)| !family.is_empty() && !size.is_empty()).map(|(family, _)| family)
}

impl InstanceType {
    pub fn parse(text: &str) -> Option<InstanceType> {
        family_of(text).map(|_| InstanceType(text.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// `t3` of `t3.micro`.
    pub fn family(&self) -> &str {
        family_of(&self.0).expect("parsed as family.size")
    }
}

impl DbInstanceClass {
    pub fn parse(text: &str) -> Option<DbInstanceClass> {
        text.strip_prefix("db.").and_then(family_of).map(|_| DbInstanceClass(text.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// `t3` of `db.t3.micro`.
    pub fn family(&self) -> &str {
        self.0.strip_prefix("db.").and_then(family_of).expect("parsed as db.family.size")
    }
}

/// An RDS storage type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageType {
    Gp2,
    Gp3,
    Io1,
    Io2,
    Standard,
}

impl StorageType {
    pub const ALL: [StorageType; 5] =
        [StorageType::Gp2, StorageType::Gp3, StorageType::Io1, StorageType::Io2, StorageType::Standard];

    pub fn as_str(self) -> &'static str {
        match self {
            StorageType::Gp2 => "gp2",
            StorageType::Gp3 => "gp3",
            StorageType::Io1 => "io1",
            StorageType::Io2 => "io2",
            StorageType::Standard => "standard",
        }
    }

    /// The sizes RDS MySQL takes on it, in GiB.
    pub fn sizes(self) -> std::ops::RangeInclusive<u32> {
        match self {
            StorageType::Gp2 | StorageType::Gp3 => 20..=65_536,
            StorageType::Io1 | StorageType::Io2 => 100..=65_536,
            StorageType::Standard => 20..=3_072,
        }
    }
}

macro_rules! text_type {
    ($type:ty, $parse:expr, $problem:literal, $fix:literal) => {
        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $type {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $type {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!(concat!("\"{}\" ", $problem, "{}", $fix), text, FIX_SEPARATOR))
                })
            }
        }
    };
}

text_type!(InstanceType, InstanceType::parse, "is not an EC2 instance type", "use a type such as \"t3.micro\"");
text_type!(
    DbInstanceClass,
    DbInstanceClass::parse,
    "is not a DB instance class",
    "use a class such as \"db.t3.micro\""
);
text_type!(
    StorageType,
    |text: &str| StorageType::ALL.into_iter().find(|t| t.as_str() == text),
    "is not an RDS storage type",
    "use \"gp2\" (the seed's) or \"gp3\""
);

impl Serialize for StorageType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Splits the problem from the fix in the messages of this module's deserializers.
pub(crate) const FIX_SEPARATOR: &str = "; fix: ";

fn cidr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Ipv4Net, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "\"{text}\" is not an IPv4 CIDR block{FIX_SEPARATOR}write ADDRESS/PREFIX, e.g. \"10.0.0.0/16\""
        ))
    })
}

/// A configuration the tool refuses, with where, what and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config {}: `{key}` {problem}\n  fix: {fix}", file.display())]
pub struct ConfigError {
    pub file: PathBuf,
    /// The dotted path of the offending key, e.g. `network.subnets.app.cidr`.
    pub key: String,
    pub problem: String,
    pub fix: String,
}

impl Config {
    /// The configuration in `config/default.toml`, built into the tool so a newcomer
    /// needs no file at all.
    pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");
    pub const DEFAULT_PATH: &str = "config/default.toml";

    /// Reads and parses a config file; call [`Config::validate`] once overrides are applied.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
            file: path.to_owned(),
            key: "(file)".into(),
            problem: format!("cannot be read: {err}"),
            fix: format!("check the path given to --config, or copy {} to start one", Config::DEFAULT_PATH),
        })?;
        Config::parse(path, &text)
    }

    pub fn default_config() -> Config {
        Config::parse(Path::new(Config::DEFAULT_PATH), Config::DEFAULT_TOML)
            .expect("config/default.toml is valid (tested)")
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let deserializer = toml::Deserializer::parse(text).map_err(|err| ConfigError {
            file: path.to_owned(),
            key: "(syntax)".into(),
            problem: format!("is not valid TOML: {}", err.message()),
            fix: format!("correct the TOML syntax near byte {:?}", err.span().unwrap_or_default()),
        })?;
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let key = err.path().to_string();
            let message = err.inner().message().to_owned();
            let (problem, fix) = if message.starts_with("unknown field") {
                (message, "remove or rename the key; config/default.toml lists every key".to_owned())
            } else if message.starts_with("missing field") {
                (message, "add the key; config/default.toml has its default value".to_owned())
            } else if let Some((problem, fix)) = message.split_once(FIX_SEPARATOR) {
                (problem.to_owned(), fix.to_owned())
            } else {
                (message, "set a value of the form config/default.toml shows".to_owned())
            };
            ConfigError { file: path.to_owned(), key, problem, fix }
        })
    }

    /// The subnet of each app instance, in the instances' order: the app subnets by key, in
    /// turn, so the instances spread evenly over their zones.
    pub fn instance_subnets(&self) -> Vec<(&SubnetKey, &SubnetConfig)> {
        let subnets: Vec<_> = self.network.subnets.of(SubnetRole::App).collect();
        (0..self.compute.instances as usize).map(|index| subnets[index % subnets.len()]).collect()
    }

    /// Names derived from the stack name and the seed's names.
    pub fn names(&self) -> Names<'_> {
        Names::new(&self.stack.name)
    }

    /// The AWS name of the ALB tier's app target group: the compute tier finds it by it
    /// to read its targets, so both tiers take it from here.
    pub fn app_target_group_name(&self) -> String {
        self.names().account_unique(&self.alb.target_group_name)
    }

    /// The ports the load balancer listens on: the HTTP listener's.
    pub fn listener_ports(&self) -> Vec<u16> {
        vec![self.ports.http.get()]
    }

    /// The ports of every target group, the app's first, each once: the instance serves
    /// nginx on each, so its group lets the ALB in on each and its compose file publishes
    /// each (a listener rule's target group on a port no one opened would answer 502).
    pub fn target_ports(&self) -> Vec<u16> {
        let mut ports = vec![self.ports.app.get()];
        for rule in &self.alb.rules {
            if !ports.contains(&rule.port.get()) {
                ports.push(rule.port.get());
            }
        }
        ports
    }

    /// Every rule that AWS or the architecture imposes and a TOML type cannot express.
    pub fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let fail = |key: &str, problem: String, fix: String| ConfigError {
            file: file.to_owned(),
            key: key.to_owned(),
            problem,
            fix,
        };
        self.validate_stack().map_err(|(key, problem, fix)| fail(&key, problem, fix))?;
        self.validate_network().map_err(|(key, problem, fix)| fail(&key, problem, fix))?;
        self.validate_names().map_err(|(key, problem, fix)| fail(&key, problem, fix))?;
        self.validate_alb().map_err(|(key, problem, fix)| fail(&key, problem, fix))?;
        self.validate_compute_and_database().map_err(|(key, problem, fix)| fail(&key, problem, fix))?;
        Ok(())
    }

    fn validate_stack(&self) -> Check {
        let stack = &self.stack;
        if !is_dns_label(&stack.name) || stack.name.len() > 24 {
            return Err(invalid(
                "stack.name",
                format!("\"{}\" is not a usable stack name", stack.name),
                "use 1-24 lowercase letters, digits and single hyphens, starting with a letter \
                 and not ending with a hyphen (it prefixes AWS names of 32 characters at most)",
            ));
        }
        if !is_region(&stack.region) {
            return Err(invalid(
                "stack.region",
                format!("\"{}\" is not an AWS region name", stack.region),
                "use a region code such as \"ap-northeast-1\"",
            ));
        }
        for (index, zone) in stack.availability_zones.iter().enumerate() {
            check_zone(&format!("stack.availability_zones[{index}]"), zone, &stack.region)?;
        }
        let zones: BTreeSet<_> = stack.availability_zones.iter().collect();
        if zones.len() < 2 {
            return Err(invalid(
                "stack.availability_zones",
                "names fewer than two distinct availability zones".into(),
                "list two zones of the region, e.g. [\"ap-northeast-1a\", \"ap-northeast-1c\"]: \
                 an ALB and a DB subnet group each need two",
            ));
        }
        for (key, value) in &stack.tags {
            if key == "Name" || key.starts_with(RESERVED_TAG_PREFIX) || key.starts_with("aws:") {
                return Err(invalid(
                    &format!("stack.tags.{key}"),
                    "is a tag key the tool sets itself or AWS reserves".into(),
                    "choose another key: `Name`, `three-tier:*` and `aws:*` are reserved",
                ));
            }
            if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
                return Err(invalid(
                    &format!("stack.tags.{key}"),
                    "is outside AWS's tag limits".into(),
                    "use a key of 1-128 and a value of at most 256 characters",
                ));
            }
        }
        Ok(())
    }

    fn validate_network(&self) -> Check {
        let network = &self.network;
        let region = &self.stack.region;
        check_cidr("network.vpc_cidr", network.vpc_cidr, 16)?;
        let mut seen: Vec<(String, Ipv4Net)> = Vec::new();
        for (key, subnet) in network.subnets.iter() {
            let base = format!("network.subnets.{key}");
            check_cidr(&format!("{base}.cidr"), subnet.cidr, 16)?;
            if !network.vpc_cidr.contains(&subnet.cidr) {
                return Err(invalid(
                    &format!("{base}.cidr"),
                    format!("{} lies outside the VPC's {}", subnet.cidr, network.vpc_cidr),
                    "choose a block inside network.vpc_cidr",
                ));
            }
            if let Some((other, _)) =
                seen.iter().find(|(_, cidr)| cidr.contains(&subnet.cidr) || subnet.cidr.contains(cidr))
            {
                return Err(invalid(
                    &format!("{base}.cidr"),
                    format!("{} overlaps {other}", subnet.cidr),
                    "give every subnet its own, non-overlapping block",
                ));
            }
            seen.push((format!("network.subnets.{key}.cidr"), subnet.cidr));
            check_zone(&format!("{base}.availability_zone"), &subnet.availability_zone, region)?;
            if !self.stack.availability_zones.contains(&subnet.availability_zone) {
                return Err(invalid(
                    &format!("{base}.availability_zone"),
                    format!("is {}, which is not one of stack.availability_zones", subnet.availability_zone),
                    "use one of stack.availability_zones, or add the zone to that list",
                ));
            }
            check_tag_value(&format!("{base}.name"), &subnet.name)?;
        }
        for (role, needs, what) in [
            (SubnetRole::Alb, 2, "an internet-facing ALB needs two, in different zones"),
            (SubnetRole::App, 1, "the app instance needs one"),
            (SubnetRole::Db, 2, "a DB subnet group needs two, in different zones"),
        ] {
            let mut zones: BTreeMap<&str, &SubnetKey> = BTreeMap::new();
            for (key, subnet) in network.subnets.of(role) {
                if let Some(other) = zones.insert(&subnet.availability_zone, key) {
                    return Err(invalid(
                        &format!("network.subnets.{key}.availability_zone"),
                        format!("is {}, the same zone as {other}", subnet.availability_zone),
                        &format!("put each {role} subnet in a zone of its own: {what}"),
                    ));
                }
            }
            if zones.len() < needs {
                return Err(invalid(
                    "network.subnets",
                    format!("has {} {role} subnet(s)", zones.len()),
                    &format!(
                        "add [network.subnets.{role}-b] (or another key starting with \"{role}\") in another zone: {what}"
                    ),
                ));
            }
        }
        check_tag_value("network.nat_gateway_name", &network.nat_gateway_name)?;
        if network.nat_gateways == NatGateways::PerZone {
            for (key, app) in network.subnets.of(SubnetRole::App) {
                let zone = &app.availability_zone;
                if !network.subnets.of(SubnetRole::Alb).any(|(_, s)| s.availability_zone == *zone) {
                    return Err(invalid(
                        "network.nat_gateways",
                        format!(
                            "is \"per-zone\", but app subnet {key} is in {zone}, where no ALB subnet is for \
                             its NAT gateway to live in"
                        ),
                        &format!(
                            "add an ALB subnet in {zone} (e.g. [network.subnets.alb-{}]), move {key} to a \
                             zone with one, or set nat_gateways = \"one\"",
                            zone.rsplit('-').next().unwrap_or("b")
                        ),
                    ));
                }
            }
        }
        let groups = &network.security_groups;
        let mut names = BTreeSet::new();
        for (key, name) in [("alb", &groups.alb), ("app", &groups.app), ("db", &groups.db)] {
            let key = format!("network.security_groups.{key}");
            if name.is_empty() || name.len() > 255 || name.starts_with("sg-") || !name.is_ascii() {
                return Err(invalid(
                    &key,
                    format!("\"{name}\" is not a valid security group name"),
                    "use 1-255 ASCII characters, not starting with \"sg-\"",
                ));
            }
            if !names.insert(name) {
                return Err(invalid(
                    &key,
                    format!("\"{name}\" is used for two security groups"),
                    "give each security group its own name",
                ));
            }
        }
        Ok(())
    }

    fn validate_names(&self) -> Check {
        let names = self.names();
        let alb = &self.alb;
        check_elb_name("alb.name", &names.account_unique(&alb.name))?;
        if names.account_unique(&alb.name).starts_with("internal-") {
            return Err(invalid(
                "alb.name",
                "starts with \"internal-\", which AWS reserves".into(),
                "choose another name",
            ));
        }
        check_elb_name("alb.target_group_name", &names.account_unique(&alb.target_group_name))?;
        let db_subnet_group = &self.database.subnet_group_name;
        if db_subnet_group.is_empty()
            || db_subnet_group.len() > 255
            || db_subnet_group.eq_ignore_ascii_case("default")
            || !db_subnet_group.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || " ._-".contains(c))
        {
            return Err(invalid(
                "database.subnet_group_name",
                format!("\"{db_subnet_group}\" is not a valid DB subnet group name"),
                "use 1-255 lowercase letters, digits, spaces, periods, underscores and hyphens (not \"default\"): RDS keeps the name in lowercase",
            ));
        }
        Ok(())
    }

    fn validate_alb(&self) -> Check {
        let alb = &self.alb;
        if !alb.health_check_path.starts_with('/') || alb.health_check_path.len() > 1024 {
            return Err(invalid(
                "alb.health_check_path",
                format!("\"{}\" is not an absolute path", alb.health_check_path),
                "use a path starting with \"/\", e.g. \"/\"",
            ));
        }
        if !is_http_matcher(&alb.health_check_matcher) {
            return Err(invalid(
                "alb.health_check_matcher",
                format!("\"{}\" is not an HTTP code matcher", alb.health_check_matcher),
                "use codes from 200 to 499, as \"200\", \"200,202\" or \"200-299\"",
            ));
        }
        let mut priorities = BTreeSet::new();
        let mut paths = BTreeSet::new();
        let mut groups = BTreeSet::from([alb.target_group_name.as_str()]);
        for (index, rule) in alb.rules.iter().enumerate() {
            let base = format!("alb.rules[{index}]");
            if !(1..=50_000).contains(&rule.priority) || !priorities.insert(rule.priority) {
                return Err(invalid(
                    &format!("{base}.priority"),
                    format!("{} is out of range or used twice", rule.priority),
                    "give each rule its own priority from 1 to 50000",
                ));
            }
            if rule.path_pattern.is_empty() || rule.path_pattern.len() > 128 || !rule.path_pattern.starts_with('/') {
                return Err(invalid(
                    &format!("{base}.path_pattern"),
                    format!("\"{}\" is not a path pattern", rule.path_pattern),
                    "use 1-128 characters starting with /, e.g. \"/api/*\"",
                ));
            }
            if !paths.insert(rule.path_pattern.as_str()) {
                return Err(invalid(
                    &format!("{base}.path_pattern"),
                    format!("\"{}\" is routed by an earlier rule already", rule.path_pattern),
                    "give each rule its own path pattern, or remove the duplicate rule",
                ));
            }
            let key = format!("{base}.target_group_name");
            check_elb_name(&key, &self.names().account_unique(&rule.target_group_name))?;
            if !groups.insert(rule.target_group_name.as_str()) {
                return Err(invalid(
                    &key,
                    format!("\"{}\" names a target group twice", rule.target_group_name),
                    "give each rule's target group its own name",
                ));
            }
        }
        Ok(())
    }

    fn validate_compute_and_database(&self) -> Check {
        let compute = &self.compute;
        let family = compute.instance_type.family();
        // The default AMI is Amazon Linux 2023 for x86_64: a Graviton (arm64) type cannot
        // boot it, and RunInstances would refuse it only after the network is built.
        if compute.ami_id.is_none() && is_graviton(family) && compute.ami_parameter.contains("x86_64") {
            return Err(invalid(
                "compute.instance_type",
                format!(
                    "\"{}\" is an arm64 (Graviton) type, and compute.ami_parameter names an x86_64 AMI",
                    compute.instance_type
                ),
                "use an x86_64 type such as \"t3.micro\", or the arm64 parameter (…-kernel-default-arm64) with it",
            ));
        }
        if let Some(ami) = &compute.ami_id
            && !(ami.starts_with("ami-") && ami[4..].chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(invalid(
                "compute.ami_id",
                format!("\"{ami}\" is not an AMI id"),
                "use an id like \"ami-0123456789abcdef0\", or remove the key to use the latest Amazon Linux 2023",
            ));
        }
        if !compute.ami_parameter.starts_with('/') {
            return Err(invalid(
                "compute.ami_parameter",
                format!("\"{}\" is not an SSM parameter path", compute.ami_parameter),
                "use the public parameter of SPEC.md",
            ));
        }
        if !(8..=16_384).contains(&compute.root_volume_gib) {
            return Err(invalid(
                "compute.root_volume_gib",
                format!("{} GiB cannot hold Amazon Linux 2023", compute.root_volume_gib),
                "use 8 to 16384 GiB",
            ));
        }
        if !(1..=MAX_INSTANCES).contains(&compute.instances) {
            return Err(invalid(
                "compute.instances",
                format!("is {}", compute.instances),
                &format!("run 1 to {MAX_INSTANCES} app instances"),
            ));
        }
        let app_subnets = self.network.subnets.of(SubnetRole::App).count();
        if compute.instances > 1 && app_subnets < 2 {
            return Err(invalid(
                "compute.instances",
                format!(
                    "is {}, but the app subnets are in one zone: a zone's failure would take them all",
                    compute.instances
                ),
                "add an app subnet in another zone, e.g. [network.subnets.app-b], or run one instance",
            ));
        }
        let database = &self.database;
        if database.engine != "mysql" {
            return Err(invalid(
                "database.engine",
                format!("\"{}\" is not supported", database.engine),
                "use \"mysql\": the stack and its checks are built for MySQL",
            ));
        }
        // The seed's db.t2.micro: previous generation, refused for current MySQL.
        if ["t2", "m1", "m2", "m3", "m4", "r3", "r4"].contains(&database.instance_class.family()) {
            return Err(invalid(
                "database.instance_class",
                format!(
                    "\"{}\" is a previous-generation class that RDS refuses for MySQL 8.4",
                    database.instance_class
                ),
                "use a current class such as \"db.t3.micro\" (SPEC.md)",
            ));
        }
        let bounds = database.storage_type.sizes();
        if !bounds.contains(&database.allocated_storage_gib) {
            return Err(invalid(
                "database.allocated_storage_gib",
                format!(
                    "{} GiB is outside what RDS MySQL takes for {} storage",
                    database.allocated_storage_gib, database.storage_type
                ),
                &format!("use {} to {} GiB", bounds.start(), bounds.end()),
            ));
        }
        for (key, value, max) in [
            ("database.database_name", &database.database_name, 64),
            ("database.master_username", &database.master_username, 16),
        ] {
            let mut chars = value.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                && value.len() <= max;
            if !valid {
                return Err(invalid(
                    key,
                    format!("\"{value}\" is not a valid MySQL name for RDS"),
                    &format!("use 1-{max} letters, digits and underscores, starting with a letter"),
                ));
            }
        }
        let engine_version = &database.engine_version;
        if engine_version.is_empty() || !engine_version.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(invalid(
                "database.engine_version",
                format!("\"{engine_version}\" is not a MySQL version"),
                "use a version such as \"8.4\"",
            ));
        }
        // The tool is built and checked for MySQL 8.4 (SPEC.md): 8.0 left RDS standard
        // support on 2026-07-31 and is billed for Extended Support; older ones are gone.
        if engine_version != "8.4" && !engine_version.starts_with("8.4.") {
            return Err(invalid(
                "database.engine_version",
                format!("MySQL {engine_version} is not supported"),
                "use \"8.4\" (RDS applies its minor versions) or a minor version such as \"8.4.7\"",
            ));
        }
        Ok(())
    }
}

/// Whether an EC2 instance family is AWS Graviton (arm64): a `g` right after the
/// generation digit, as in t4g, m7g, c6gn, r8g.
fn is_graviton(family: &str) -> bool {
    let after_digits = family.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let attributes = after_digits.trim_start_matches(|c: char| c.is_ascii_digit());
    after_digits.len() != attributes.len() && attributes.starts_with('g')
}

/// A failed check: key, problem, fix.
type Check = Result<(), (String, String, String)>;

fn invalid(key: &str, problem: String, fix: &str) -> (String, String, String) {
    (key.to_owned(), problem, fix.to_owned())
}

/// AWS accepts VPCs and subnets from /16 to /28, with no host bits set.
fn check_cidr(key: &str, cidr: Ipv4Net, largest_prefix: u8) -> Check {
    if cidr.trunc() != cidr {
        return Err(invalid(
            key,
            format!("{cidr} has host bits set"),
            &format!("use the network address, {}", cidr.trunc()),
        ));
    }
    if !(largest_prefix..=28).contains(&cidr.prefix_len()) {
        return Err(invalid(
            key,
            format!("{cidr} is a /{} block", cidr.prefix_len()),
            "AWS accepts /16 to /28 blocks; use a prefix in that range",
        ));
    }
    Ok(())
}

fn check_zone(key: &str, zone: &str, region: &str) -> Check {
    let suffix = zone.strip_prefix(region);
    let valid = suffix.is_some_and(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase()));
    if !valid {
        return Err(invalid(
            key,
            format!("\"{zone}\" is not an availability zone of {region}"),
            &format!("use a zone of the region, e.g. \"{region}a\""),
        ));
    }
    Ok(())
}

fn check_tag_value(key: &str, value: &str) -> Check {
    if value.is_empty() || value.chars().count() > 256 {
        return Err(invalid(key, "is empty or over 256 characters".into(), "use a name of 1-256 characters"));
    }
    Ok(())
}

/// Load balancer and target group names: at most 32 letters, digits and hyphens, not
/// starting or ending with a hyphen.
fn check_elb_name(key: &str, name: &str) -> Check {
    let valid = !name.is_empty()
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid {
        return Err(invalid(
            key,
            format!("gives the AWS name \"{name}\", which is not a valid load balancer or target group name"),
            "use at most 32 letters, digits and hyphens in all (other stacks than \"three-tier\" \
             add \"<stack>-\" in front), not starting or ending with a hyphen",
        ));
    }
    Ok(())
}

fn is_dns_label(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

fn is_http_matcher(matcher: &str) -> bool {
    let code = |s: &str| s.parse::<u16>().is_ok_and(|c| (200..=499).contains(&c));
    matcher.split(',').all(|part| match part.split_once('-') {
        Some((low, high)) => code(low) && code(high) && low <= high,
        None => code(part),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_is_valid_and_holds_the_seed_values() {
        let config = Config::default_config();
        config.validate(Path::new(Config::DEFAULT_PATH)).unwrap();
        assert_eq!(config.stack.name, "three-tier");
        assert_eq!(config.stack.region, "ap-northeast-1");
        assert_eq!(config.network.vpc_cidr.to_string(), "10.0.0.0/16");
        let subnets: Vec<_> = config
            .network
            .subnets
            .iter()
            .map(|(key, s)| (key.as_str(), s.name.as_str(), s.cidr.to_string(), s.availability_zone.as_str()))
            .collect();
        assert_eq!(
            subnets,
            [
                ("alb-a", "alb-subnet", "10.0.0.64/26".into(), "ap-northeast-1a"),
                ("alb-b", "alb-subnet2", "10.0.1.0/26".into(), "ap-northeast-1c"),
                ("app", "app-subnet", "10.0.0.0/26".into(), "ap-northeast-1a"),
                ("db-a", "db-subnet", "10.0.0.128/26".into(), "ap-northeast-1a"),
                ("db-b", "db-subnet2", "10.0.0.192/26".into(), "ap-northeast-1c"),
            ]
        );
        assert_eq!([config.ports.http.get(), config.ports.app.get(), config.ports.database.get()], [80, 3030, 3306]);
        assert_eq!(config.alb.name, "sample-alb");
        assert_eq!(config.alb.target_group_name, "app-target-group");
        assert_eq!(config.compute.instance_type, "t3.micro");
        assert_eq!(config.database.engine_version, "8.4");
        assert_eq!(config.database.instance_class, "db.t3.micro");
        assert_eq!(config.database.allocated_storage_gib, 20);
        assert_eq!(config.database.database_name, "sample");
        assert_eq!(config.database.master_username, "admin");
        assert!(!config.database.deletion_protection && !config.database.final_snapshot);
    }

    #[test]
    fn the_built_in_default_is_the_file_in_config() {
        let on_disk = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/default.toml"));
        assert_eq!(on_disk.unwrap(), Config::DEFAULT_TOML);
    }

    #[test]
    fn other_stacks_prefix_account_unique_names() {
        let mut config = Config::default_config();
        assert_eq!(config.names().account_unique("sample-alb"), "sample-alb");
        config.stack.name = "staging".into();
        assert_eq!(config.names().account_unique("sample-alb"), "staging-sample-alb");
        assert_eq!(config.names().unnamed("vpc"), "staging-vpc");
    }

    #[test]
    fn a_listener_rule_for_api_paths_is_accepted() {
        let text = Config::DEFAULT_TOML.replace(
            "# [[alb.rules]]\n# priority = 10\n# path_pattern = \"/api/*\"\n# target_group_name = \"api-target-group\"\n# port = 8080",
            "[[alb.rules]]\npriority = 10\npath_pattern = \"/api/*\"\ntarget_group_name = \"api-target-group\"\nport = 8080",
        );
        let config = Config::parse(Path::new("x.toml"), &text).unwrap();
        config.validate(Path::new("x.toml")).unwrap();
        assert_eq!(config.alb.rules.len(), 1);
        assert_eq!(config.alb.rules[0].port.get(), 8080);
    }

    /// A config's subnets, with `extra` TOML appended to the default.
    fn with_subnets(extra: &str) -> Result<Config, ConfigError> {
        let path = Path::new("x.toml");
        let config = Config::parse(path, &format!("{}\n{extra}", Config::DEFAULT_TOML))?;
        config.validate(path).map(|()| config)
    }

    fn subnet_toml(key: &str, cidr: &str, zone: &str) -> String {
        format!("[network.subnets.{key}]\nname = \"{key}\"\ncidr = \"{cidr}\"\navailability_zone = \"{zone}\"\n")
    }

    #[test]
    fn subnets_are_keyed_by_role_and_at_most_one_of_a_role_per_zone() {
        let config = with_subnets(&subnet_toml("app-b", "10.0.1.64/26", "ap-northeast-1c")).unwrap();
        let apps: Vec<(&str, &str)> = config
            .network
            .subnets
            .of(SubnetRole::App)
            .map(|(key, s)| (key.as_str(), s.availability_zone.as_str()))
            .collect();
        assert_eq!(apps, [("app", "ap-northeast-1a"), ("app-b", "ap-northeast-1c")]);
        assert_eq!(config.instance_subnets().iter().map(|(key, _)| key.as_str()).collect::<Vec<_>>(), ["app"]);
        let mut three = config.clone();
        three.compute.instances = 3;
        three.validate(Path::new("x.toml")).unwrap();
        let spread: Vec<&str> = three.instance_subnets().iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(spread, ["app", "app-b", "app"]);
        let mut two_in_one_zone = Config::default_config();
        two_in_one_zone.compute.instances = 2;
        let err = two_in_one_zone.validate(Path::new("x.toml")).unwrap_err();
        assert_eq!(err.key, "compute.instances");
        assert!(err.problem.contains("one zone") && err.fix.contains("[network.subnets.app-b]"), "{err}");
        assert_eq!(config.network.nat_subnet().0.as_str(), "alb-a");

        let err = with_subnets(&subnet_toml("app-b", "10.0.1.64/26", "ap-northeast-1a")).unwrap_err();
        assert_eq!(err.key, "network.subnets.app-b.availability_zone");
        assert!(err.problem.contains("same zone as app") && err.fix.contains("a zone of its own"), "{err}");

        for key in ["web", "app_b", "apps", "app-", "alb-A", "db-a-very-long-suffix-x"] {
            let err = with_subnets(&subnet_toml(key, "10.0.1.64/26", "ap-northeast-1c")).unwrap_err();
            assert_eq!(err.key, format!("network.subnets.{key}"));
            assert!(err.problem.starts_with("is not a subnet key") && err.fix.contains("alb, app or db"), "{err}");
        }
    }

    #[test]
    fn per_zone_nat_gateways_live_in_each_app_zones_alb_subnet() {
        let two_zones = with_subnets(&subnet_toml("app-b", "10.0.1.64/26", "ap-northeast-1c")).unwrap();
        let placed = |config: &Config| -> Vec<(Option<String>, String, Vec<String>)> {
            let placements = config.network.nat_placements();
            let text = |keys: Vec<&SubnetKey>| keys.iter().map(|k| k.to_string()).collect();
            placements.into_iter().map(|p| (p.zone.map(str::to_owned), p.subnet.to_string(), text(p.serves))).collect()
        };
        assert_eq!(placed(&two_zones), [(None, "alb-a".into(), vec!["app".into(), "app-b".into()])]);
        let mut per_zone = two_zones.clone();
        per_zone.network.nat_gateways = NatGateways::PerZone;
        per_zone.validate(Path::new("x.toml")).unwrap();
        assert_eq!(
            placed(&per_zone),
            [
                (None, "alb-a".into(), vec!["app".into()]),
                (Some("ap-northeast-1c".into()), "alb-b".into(), vec!["app-b".into()]),
            ]
        );
        // An app subnet in a zone without an ALB subnet has nowhere for its gateway.
        let mut stranded = per_zone.clone();
        stranded.stack.availability_zones.push("ap-northeast-1d".into());
        stranded.network.subnets.get_mut("app-b").unwrap().availability_zone = "ap-northeast-1d".into();
        let err = stranded.validate(Path::new("x.toml")).unwrap_err();
        assert_eq!(err.key, "network.nat_gateways");
        assert!(err.problem.contains("app-b is in ap-northeast-1d") && err.fix.contains("alb-1d"), "{err}");
        let text = Config::DEFAULT_TOML.replace("nat_gateways = \"one\"", "nat_gateways = \"per-zone\"");
        let parsed = Config::parse(Path::new("x.toml"), &text).unwrap();
        assert_eq!(parsed.network.nat_gateways, NatGateways::PerZone);
        let err = Config::parse(Path::new("x.toml"), &text.replace("per-zone", "two")).unwrap_err();
        assert_eq!(err.key, "network.nat_gateways");
    }

    #[test]
    fn every_role_needs_its_subnets() {
        let mut config = Config::default_config();
        config.network.subnets.0.retain(|key, _| key.as_str() != "alb-b");
        let err = config.validate(Path::new("x.toml")).unwrap_err();
        assert_eq!((err.key.as_str(), err.problem.as_str()), ("network.subnets", "has 1 alb subnet(s)"));
        assert!(err.fix.contains("[network.subnets.alb-b]") && err.fix.contains("two, in different zones"), "{err}");
        let mut config = Config::default_config();
        config.network.subnets.0.retain(|key, _| key.role() != SubnetRole::App);
        let err = config.validate(Path::new("x.toml")).unwrap_err();
        assert_eq!(err.problem, "has 0 app subnet(s)");
    }

    #[test]
    fn two_rules_for_one_path_are_refused() {
        let rule = |priority: u32, group: &str| {
            format!(
                "[[alb.rules]]\npriority = {priority}\npath_pattern = \"/api/*\"\ntarget_group_name = \"{group}\"\nport = 8080\n"
            )
        };
        let text = format!("{}\n{}{}", Config::DEFAULT_TOML, rule(10, "api-a"), rule(20, "api-b"));
        let config = Config::parse(Path::new("x.toml"), &text).unwrap();
        let err = config.validate(Path::new("x.toml")).unwrap_err().to_string();
        assert!(err.contains("`alb.rules[1].path_pattern`") && err.contains("routed by an earlier rule"), "{err}");
    }

    #[test]
    fn sizes_and_storage_are_parsed_into_types_at_the_config() {
        let config = Config::default_config();
        assert_eq!((config.compute.instance_type.family(), config.database.instance_class.family()), ("t3", "t3"));
        assert_eq!(config.database.storage_type, StorageType::Gp2);
        for (from, to, key, problem) in [
            (
                "instance_type = \"t3.micro\"",
                "instance_type = \"t3\"",
                "compute.instance_type",
                "is not an EC2 instance type",
            ),
            (
                "instance_class = \"db.t3.micro\"",
                "instance_class = \"t3.micro\"",
                "database.instance_class",
                "is not a DB instance class",
            ),
            ("storage_type = \"gp2\"", "storage_type = \"gp9\"", "database.storage_type", "is not an RDS storage type"),
        ] {
            let err = Config::parse(Path::new("x.toml"), &Config::DEFAULT_TOML.replacen(from, to, 1)).unwrap_err();
            assert_eq!(err.key, key);
            assert!(err.problem.ends_with(problem) && err.fix.starts_with("use "), "{err}");
        }
    }

    #[test]
    fn graviton_families_are_told_from_x86_ones() {
        for arm in ["t4g", "m7g", "c6gn", "r8g", "m6gd"] {
            assert!(is_graviton(arm), "{arm}");
        }
        for x86 in ["t3", "t3a", "m5", "c6i", "m7i", "r5n", "g5", "g4dn"] {
            assert!(!is_graviton(x86), "{x86}");
        }
    }
}
