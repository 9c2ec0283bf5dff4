//! The fixed parts of the architecture: tiers and the roles resources play in them.
//!
//! Every resource is tagged with its role (`three-tier:role`), so a tier finds each of its
//! resources again even after a rename in config.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! role_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn from_tag(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|role| role.as_str() == text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

role_enum!(
    /// The four tiers, in deploy order.
    Tier {
        Network => "network",
        Alb => "alb",
        Compute => "compute",
        Database => "database",
    }
);

role_enum!(
    /// What a subnet hosts, which decides its route table: the ALB (public), the app
    /// instances (private, out through the NAT gateway), the database (isolated).
    SubnetRole {
        Alb => "alb",
        App => "app",
        Db => "db",
    }
);

role_enum!(
    /// The three route tables: public (ALB subnets), app (via the NAT), db (isolated).
    RouteTableRole {
        Public => "public",
        App => "app",
        Db => "db",
    }
);

role_enum!(
    /// The three chained security groups: internet → alb → app → db.
    SecurityGroupRole {
        Alb => "alb",
        App => "app",
        Db => "db",
    }
);

impl RouteTableRole {
    /// The subnets this table routes: those of one role.
    pub fn serves(self) -> SubnetRole {
        match self {
            RouteTableRole::Public => SubnetRole::Alb,
            RouteTableRole::App => SubnetRole::App,
            RouteTableRole::Db => SubnetRole::Db,
        }
    }
}

/// A subnet's key: its role, alone or followed by `-` and what tells it from the role's
/// other subnets (`alb-a`, `app`, `db-b`). It is the subnet's `[network.subnets.KEY]` in
/// config, its role tag (`subnet/KEY`) and its planned reference, so a subnet is found
/// again after a rename; config allows one subnet per role and zone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SubnetKey(String);

impl SubnetKey {
    pub fn parse(text: &str) -> Option<SubnetKey> {
        let suffix_ok = |suffix: &str| {
            (1..=16).contains(&suffix.len()) && suffix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        };
        SubnetRole::ALL
            .iter()
            .any(|role| match text.strip_prefix(role.as_str()) {
                Some("") => true,
                Some(rest) => rest.strip_prefix('-').is_some_and(suffix_ok),
                None => false,
            })
            .then(|| SubnetKey(text.to_owned()))
    }

    pub fn role(&self) -> SubnetRole {
        let prefix = self.0.split('-').next().unwrap_or_default();
        SubnetRole::from_tag(prefix).expect("a parsed key starts with its role")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Looked up by its text (`subnets.get("app-b")`): its order is its text's.
impl std::borrow::Borrow<str> for SubnetKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubnetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SubnetKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        SubnetKey::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "is not a subnet key: it must be the subnet's role or start with it{}key the subnet \
                 by its role, alb, app or db, alone or followed by `-` and up to 16 lowercase letters or \
                 digits, e.g. [network.subnets.app-b]",
                crate::config::FIX_SEPARATOR
            ))
        })
    }
}

/// A route table's key: its role, and for a zone's own app table (`network.nat_gateways =
/// "per-zone"`) the zone (`app/ap-northeast-1c`). It is the table's role tag
/// (`route-table/KEY`); the tables of one NAT gateway, the public and the db table have
/// no zone, so a stack's tables keep their tags when it turns per-zone NAT on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteTableKey {
    pub role: RouteTableRole,
    pub zone: Option<String>,
}

impl RouteTableKey {
    pub fn of(role: RouteTableRole) -> RouteTableKey {
        RouteTableKey { role, zone: None }
    }

    pub fn parse(text: &str) -> Option<RouteTableKey> {
        let (role, zone) = match text.split_once('/') {
            Some((role, zone)) if !zone.is_empty() => (role, Some(zone.to_owned())),
            Some(_) => return None,
            None => (text, None),
        };
        Some(RouteTableKey { role: RouteTableRole::from_tag(role)?, zone })
    }
}

impl fmt::Display for RouteTableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.zone {
            Some(zone) => write!(f, "{}/{zone}", self.role),
            None => write!(f, "{}", self.role),
        }
    }
}

impl Serialize for RouteTableKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RouteTableKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        RouteTableKey::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("\"{text}\" is not a route table key")))
    }
}
