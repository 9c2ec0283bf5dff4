//! What a stack costs a month while it runs, from the price table kept in the repository
//! (`crates/stack/prices.toml`: AWS's on-demand list prices, each with its source and date).
//! The forgotten NAT gateway of a tutorial is the costly failure this is here to show.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use three_tier_core::{Config, Tier, TierCrate};

use crate::Observations;
use alb::Alb;
use compute::Compute;
use database::Database;

/// AWS bills hourly resources by the hour; its calculators take a month as 730 hours.
pub const HOURS_PER_MONTH: f64 = 730.0;
/// Data through the NAT gateway a month, assumed: package updates and image pulls of one
/// instance. Heavier egress costs more, per GB.
pub const ASSUMED_NAT_GB_PER_MONTH: f64 = 10.0;
/// Load balancer capacity units used on average, assumed: a light load (an ALB is billed
/// by the hour plus the LCUs its busiest dimension uses).
pub const ASSUMED_ALB_LCU: f64 = 1.0;

/// What runs and is billed by the hour or by the GB-month.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Running {
    pub nat_gateways: u32,
    /// Public IPv4 addresses: Elastic IPs, and one per zone of an internet-facing load
    /// balancer. AWS bills each, in use or not.
    pub public_ipv4: u32,
    pub load_balancers: u32,
    /// Instance types, one entry per instance.
    pub instances: Vec<String>,
    pub volumes: Vec<Volume>,
    pub databases: Vec<DatabaseInstance>,
    /// Secrets Manager secrets: the database's master password, which RDS keeps in one
    /// (ManageMasterUserPassword). Billed per secret per month.
    pub secrets: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub volume_type: String,
    pub gib: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseInstance {
    pub class: String,
    pub engine: String,
    pub storage_type: String,
    pub gib: u32,
    /// A standby too: RDS bills a Multi-AZ instance and its storage at twice the rates.
    pub multi_az: bool,
}

impl Running {
    /// What the config's `tiers` run once deployed: read off the tiers' desired states.
    pub fn planned(config: &Config, tiers: &[Tier]) -> Running {
        let network_refs = network::refs(config, &Default::default());
        let mut running = Running::default();
        for tier in tiers {
            match tier {
                // Each NAT gateway of the network's desired state, with its Elastic IP.
                Tier::Network => {
                    let gateways = count(network::desired(config).nat_gateways.len());
                    running.nat_gateways += gateways;
                    running.public_ipv4 += gateways;
                }
                Tier::Alb => {
                    let desired = Alb::desired(config, &network_refs);
                    running.load_balancers += 1;
                    // Internet-facing: a public address in each of its subnets' zones.
                    running.public_ipv4 += count(desired.load_balancer.subnets.len());
                }
                Tier::Compute => {
                    let alb_refs = alb::refs(config, &Default::default());
                    let desired = Compute::desired(config, &(network_refs.clone(), alb_refs));
                    for instance in &desired.instances {
                        running.instances.push(instance.instance_type.to_string());
                        running.volumes.push(Volume {
                            volume_type: compute::ROOT_VOLUME_TYPE.as_str().to_owned(),
                            gib: instance.root_volume_gib,
                        });
                    }
                }
                Tier::Database => {
                    let desired = Database::desired(config, &network_refs).instance;
                    running.databases.push(DatabaseInstance {
                        class: desired.instance_class.to_string(),
                        engine: desired.engine,
                        storage_type: desired.storage_type.to_string(),
                        gib: desired.allocated_storage_gib,
                        multi_az: desired.multi_az,
                    });
                    // The master password, which RDS keeps in Secrets Manager.
                    running.secrets += 1;
                }
            }
        }
        running
    }

    /// What runs of what a command observed: its NAT gateways and Elastic IPs, its load
    /// balancers and their public addresses, its instances that run and their root
    /// volumes, its DB instances and their secrets.
    pub fn observed(observed: &Observations) -> Running {
        let mut running = Running::default();
        if let Some(network) = &observed.network {
            running.nat_gateways += count(network.nat_gateways.len());
            running.public_ipv4 += count(network.nat_addresses.len());
        }
        if let Some(alb) = &observed.alb {
            for balancer in &alb.load_balancers {
                running.load_balancers += 1;
                if balancer.scheme == "internet-facing" {
                    running.public_ipv4 += count(balancer.subnets.len());
                }
            }
        }
        if let Some(compute) = &observed.compute {
            for instance in &compute.instances {
                // A stopped instance bills its volume only.
                if instance.state != aws_sdk_ec2::types::InstanceStateName::Stopped {
                    running.instances.push(instance.instance_type.clone());
                }
                if let Some(root) = &instance.root_volume {
                    running.volumes.push(Volume { volume_type: root.volume_type.clone(), gib: root.gib });
                }
            }
        }
        if let Some(instance) = observed.database.as_ref().and_then(|d| d.instance.as_ref()) {
            running.databases.push(DatabaseInstance {
                class: instance.instance_class.clone(),
                engine: instance.engine.clone(),
                storage_type: instance.storage_type.clone(),
                gib: instance.allocated_storage_gib,
                multi_az: instance.multi_az,
            });
            running.secrets += u32::from(instance.master_secret_arn.is_some());
        }
        running
    }

    /// Adds what `other` runs.
    pub fn add(&mut self, other: Running) {
        self.nat_gateways += other.nat_gateways;
        self.public_ipv4 += other.public_ipv4;
        self.load_balancers += other.load_balancers;
        self.instances.extend(other.instances);
        self.volumes.extend(other.volumes);
        self.databases.extend(other.databases);
        self.secrets += other.secrets;
    }

    pub fn is_empty(&self) -> bool {
        *self == Running::default()
    }
}

/// A count of things, as the bill counts them.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The monthly cost of what runs in a region, item by item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub region: String,
    pub items: Vec<Item>,
    /// The sum of the items with a price, in USD a month.
    pub monthly: f64,
    /// The date of the oldest price used.
    pub prices_of: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub what: String,
    /// How the amount is made: count × price, and what is assumed.
    pub how: String,
    /// USD a month; none when the table has no price for it in the region.
    pub monthly: Option<f64>,
}

impl Estimate {
    /// Whether every item has a price: else the total is a lower bound.
    pub fn is_complete(&self) -> bool {
        self.items.iter().all(|item| item.monthly.is_some())
    }

    /// "about $58.10", or "at least $40.00" when an item has no price.
    pub fn amount(&self) -> String {
        let words = if self.is_complete() { "about" } else { "at least" };
        format!("{words} ${:.2}", self.monthly)
    }

    /// A table of the items, then the total and what it assumes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for item in &self.items {
            let amount = item.monthly.map_or("no price".to_owned(), |m| format!("${m:.2}"));
            let _ = writeln!(out, "  {:<26} {amount:>10}   {}", item.what, item.how);
        }
        let _ = writeln!(
            out,
            "  {:<26} {:>10}   a month while it runs, {}",
            "total",
            format!("${:.2}", self.monthly),
            if self.is_complete() { "before tax" } else { "at least: an item has no price" }
        );
        let _ = writeln!(
            out,
            "  on-demand list prices in {} as of {} (crates/stack/prices.toml); {HOURS_PER_MONTH} hours a month, \
             no free tier, data transfer out not counted",
            self.region, self.prices_of
        );
        out
    }
}

/// The monthly cost of `running` in `region`.
pub fn estimate(region: &str, running: &Running) -> Estimate {
    let prices = PRICES.region.get(region);
    let mut items = Vec::new();
    // One line of the bill: how it is priced and what it comes to, or, where the table has
    // no price for it in the region, which price is missing.
    let mut item = |what: String, priced: Option<(String, f64)>, lacking: &str| {
        let (how, monthly) = match priced {
            Some((how, monthly)) => (how, Some(monthly)),
            None => (format!("no price for {lacking} in {region} in the table"), None),
        };
        items.push(Item { what, how, monthly });
    };
    let hourly = |rate: f64| rate * HOURS_PER_MONTH;

    if running.nat_gateways > 0 {
        let n = f64::from(running.nat_gateways);
        let priced = prices.map(|p| {
            let how = format!(
                "${}/h, and ${}/GB for {ASSUMED_NAT_GB_PER_MONTH} GB a month (assumed)",
                p.nat_gateway_hour, p.nat_gateway_gb
            );
            (how, n * (hourly(p.nat_gateway_hour) + ASSUMED_NAT_GB_PER_MONTH * p.nat_gateway_gb))
        });
        item(format!("NAT gateway × {}", running.nat_gateways), priced, "NAT gateways");
    }
    if running.public_ipv4 > 0 {
        let nat_addresses =
            if running.nat_gateways > 1 { "the NAT gateways' Elastic IPs" } else { "the NAT's Elastic IP" };
        let priced = prices.map(|p| {
            let how = format!("${}/h each: {nat_addresses}, one per zone of the ALB", p.public_ipv4_hour);
            (how, f64::from(running.public_ipv4) * hourly(p.public_ipv4_hour))
        });
        item(format!("public IPv4 × {}", running.public_ipv4), priced, "public IPv4 addresses");
    }
    if running.load_balancers > 0 {
        let priced = prices.map(|p| {
            let how = format!("${}/h, and ${}/LCU-h for {ASSUMED_ALB_LCU} LCU (assumed)", p.alb_hour, p.alb_lcu_hour);
            (how, f64::from(running.load_balancers) * hourly(p.alb_hour + ASSUMED_ALB_LCU * p.alb_lcu_hour))
        });
        item(format!("load balancer × {}", running.load_balancers), priced, "load balancers");
    }
    for instance_type in &running.instances {
        let priced = prices.and_then(|p| p.ec2_hour.get(instance_type));
        let priced = priced.map(|rate| (format!("${rate}/h, Linux"), hourly(*rate)));
        item(format!("EC2 {instance_type}"), priced, instance_type);
    }
    for volume in &running.volumes {
        let priced = prices.and_then(|p| p.ebs_gb_month.get(&volume.volume_type));
        let priced = priced.map(|rate| (format!("${rate}/GiB-month"), f64::from(volume.gib) * rate));
        let what = format!("EBS {} {} GiB", volume.volume_type, volume.gib);
        item(what, priced, &format!("EBS {}", volume.volume_type));
    }
    for database in &running.databases {
        let priced = prices.filter(|_| database.engine == "mysql").and_then(|p| p.rds_mysql_hour.get(&database.class));
        let (deployment, copies) = if database.multi_az { (", Multi-AZ: × 2", 2.0) } else { (", single-AZ", 1.0) };
        let priced = priced.map(|rate| (format!("${rate}/h{deployment}"), copies * hourly(*rate)));
        let what = format!("RDS {} {}", database.engine, database.class);
        item(what.clone(), priced, &what);
        let priced = prices.and_then(|p| p.rds_storage_gb_month.get(&database.storage_type));
        let priced = priced.map(|rate| {
            let how = format!("${rate}/GiB-month{}", if database.multi_az { ", Multi-AZ: × 2" } else { "" });
            (how, copies * f64::from(database.gib) * rate)
        });
        let what = format!("RDS storage {} {} GiB", database.storage_type, database.gib);
        item(what, priced, &format!("RDS {} storage", database.storage_type));
    }
    if running.secrets > 0 {
        let priced = prices.map(|p| {
            let how = format!("${}/secret-month: the database's password, kept by RDS", p.secret_month);
            (how, f64::from(running.secrets) * p.secret_month)
        });
        item(format!("Secrets Manager secret × {}", running.secrets), priced, "Secrets Manager secrets");
    }

    let monthly = items.iter().filter_map(|item| item.monthly).sum();
    let sources = prices.map(|p| p.sources.as_slice()).unwrap_or_default();
    let prices_of = sources.iter().filter_map(|id| PRICES.source.get(id)).map(|s| s.date.clone()).min();
    Estimate { region: region.to_owned(), items, monthly, prices_of: prices_of.unwrap_or_else(|| "-".into()) }
}

/// The price table, as `prices.toml` holds it.
#[derive(Debug, Deserialize)]
struct PriceTable {
    source: BTreeMap<String, Source>,
    region: BTreeMap<String, RegionPrices>,
}

/// Where a price came from (its `url` and `note` are for people), and its date.
#[derive(Debug, Deserialize)]
struct Source {
    date: String,
}

#[derive(Debug, Deserialize)]
struct RegionPrices {
    nat_gateway_hour: f64,
    nat_gateway_gb: f64,
    public_ipv4_hour: f64,
    alb_hour: f64,
    alb_lcu_hour: f64,
    /// Secrets Manager, per secret a month.
    secret_month: f64,
    /// EBS by volume type; the table holds gp3, the type of the instance's root volume.
    #[serde(default)]
    ebs_gb_month: BTreeMap<String, f64>,
    rds_storage_gb_month: BTreeMap<String, f64>,
    #[serde(default)]
    ec2_hour: BTreeMap<String, f64>,
    #[serde(default)]
    rds_mysql_hour: BTreeMap<String, f64>,
    sources: Vec<String>,
}

static PRICES: LazyLock<PriceTable> = LazyLock::new(|| {
    toml::from_str(include_str!("../prices.toml")).expect("crates/stack/prices.toml is checked by its tests")
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_the_hourly_prices_and_rds_storage_of_every_region_with_a_dated_source() {
        for (region, prices) in &PRICES.region {
            assert!(
                prices.nat_gateway_hour > 0.0
                    && prices.alb_hour > 0.0
                    && prices.public_ipv4_hour > 0.0
                    && prices.secret_month > 0.0,
                "{region}"
            );
            assert!(["gp2", "gp3", "standard", "io1"].iter().all(|t| prices.rds_storage_gb_month.contains_key(*t)));
            assert!(prices.ec2_hour.contains_key("t3.micro") && prices.rds_mysql_hour.contains_key("db.t3.micro"));
            for source in &prices.sources {
                let date = &PRICES.source[source].date;
                assert!(date.len() == 10 && date.starts_with("20"), "{region}: {source} is dated ({date})");
            }
        }
        assert!(PRICES.region.len() >= 30, "every commercial region: {}", PRICES.region.len());
    }

    #[test]
    fn the_default_stack_costs() {
        let config = Config::default_config();
        let estimate = estimate(&config.stack.region, &Running::planned(&config, crate::TIERS));
        assert!(estimate.is_complete(), "{}", estimate.render());
        insta::assert_snapshot!("cost_default_stack", estimate.render());
    }

    #[test]
    fn another_region_instance_type_and_storage_cost_their_own_prices() {
        let mut config = Config::default_config();
        config.stack.region = "eu-central-1".into();
        config.compute.instance_type = three_tier_core::config::InstanceType::parse("t4g.small").unwrap();
        config.compute.root_volume_gib = 30;
        config.database.instance_class = three_tier_core::config::DbInstanceClass::parse("db.t4g.micro").unwrap();
        config.database.storage_type = three_tier_core::config::StorageType::Gp3;
        config.database.allocated_storage_gib = 50;
        let estimate = estimate(&config.stack.region, &Running::planned(&config, crate::TIERS));
        assert!(estimate.is_complete(), "{}", estimate.render());
        insta::assert_snapshot!("cost_frankfurt_t4g_gp3", estimate.render());
    }

    #[test]
    fn multi_az_doubles_the_database_and_its_storage_and_nothing_else() {
        let single = Config::default_config();
        let mut multi = single.clone();
        multi.database.multi_az = true;
        let [single, multi] = [single, multi].map(|c| estimate(&c.stack.region, &Running::planned(&c, crate::TIERS)));
        for (one, two) in single.items.iter().zip(&multi.items) {
            let twice = one.what.starts_with("RDS ");
            let expected = one.monthly.map(|m| if twice { 2.0 * m } else { m });
            assert_eq!((two.what.as_str(), two.monthly), (one.what.as_str(), expected));
            assert_eq!(two.how.contains("Multi-AZ: × 2"), twice, "{}", two.how);
        }
    }

    #[test]
    fn a_price_the_table_lacks_is_named_and_the_total_is_a_lower_bound() {
        let mut config = Config::default_config();
        config.compute.instance_type = three_tier_core::config::InstanceType::parse("x2iedn.32xlarge").unwrap();
        let estimate = estimate(&config.stack.region, &Running::planned(&config, crate::TIERS));
        assert!(!estimate.is_complete());
        assert!(estimate.amount().starts_with("at least $"), "{}", estimate.amount());
        assert!(estimate.render().contains("no price for x2iedn.32xlarge in ap-northeast-1"), "{}", estimate.render());
    }
}
