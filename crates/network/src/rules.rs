//! Security group rules, in the one form both the plan and the observed state use.

use std::fmt;

use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, PrefixListId, UserIdGroupPair};
use serde::Serialize;
use three_tier_core::{Created, Ref, Result};

/// One inbound rule: a protocol, a port range and one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngressRule {
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Cidr(String),
    Ipv6Cidr(String),
    /// Another security group: traffic from whatever that group is attached to.
    Group(Ref),
    PrefixList(String),
}

impl IngressRule {
    pub fn tcp(port: u16, source: Source) -> IngressRule {
        IngressRule { protocol: "tcp".into(), from_port: port.into(), to_port: port.into(), source }
    }

    /// The rule as AWS takes it, with planned group ids resolved.
    pub fn to_permission(&self, created: &Created, description: Option<&str>) -> Result<IpPermission> {
        let permission =
            IpPermission::builder().ip_protocol(&self.protocol).from_port(self.from_port).to_port(self.to_port);
        let permission = match &self.source {
            Source::Cidr(cidr) => permission
                .ip_ranges(IpRange::builder().cidr_ip(cidr).set_description(description.map(Into::into)).build()),
            Source::Ipv6Cidr(cidr) => permission
                .ipv6_ranges(Ipv6Range::builder().cidr_ipv6(cidr).set_description(description.map(Into::into)).build()),
            Source::Group(group) => permission.user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id(created.resolve(group)?)
                    .set_description(description.map(Into::into))
                    .build(),
            ),
            Source::PrefixList(id) => permission.prefix_list_ids(PrefixListId::builder().prefix_list_id(id).build()),
        };
        Ok(permission.build())
    }
}

impl fmt::Display for IngressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ports = if self.from_port == self.to_port {
            self.from_port.to_string()
        } else {
            format!("{}-{}", self.from_port, self.to_port)
        };
        let source = match &self.source {
            Source::Cidr(cidr) | Source::Ipv6Cidr(cidr) => cidr.clone(),
            Source::Group(group) => format!("group {group}"),
            Source::PrefixList(id) => format!("prefix list {id}"),
        };
        write!(f, "{} {ports} from {source}", self.protocol)
    }
}
