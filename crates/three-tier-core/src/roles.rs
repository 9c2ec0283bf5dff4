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
    /// The five subnets of SPEC.md.
    SubnetRole {
        AlbA => "alb-a",
        AlbB => "alb-b",
        App => "app",
        DbA => "db-a",
        DbB => "db-b",
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

impl SubnetRole {
    /// The subnets an internet-facing ALB spans; the NAT gateway lives in the first.
    pub const ALB: [SubnetRole; 2] = [SubnetRole::AlbA, SubnetRole::AlbB];
    /// The subnets of the DB subnet group.
    pub const DB: [SubnetRole; 2] = [SubnetRole::DbA, SubnetRole::DbB];
}

impl RouteTableRole {
    pub fn subnets(self) -> &'static [SubnetRole] {
        match self {
            RouteTableRole::Public => &SubnetRole::ALB,
            RouteTableRole::App => &[SubnetRole::App],
            RouteTableRole::Db => &SubnetRole::DB,
        }
    }
}
