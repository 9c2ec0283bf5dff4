//! Names and tags: how a stack's resources are called and found again.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::roles::Tier;

/// The stack whose resources carry the seed's names verbatim.
pub const DEFAULT_STACK: &str = "three-tier";
/// Tag keys with this prefix are the tool's own; the user may not set them.
pub const RESERVED_TAG_PREFIX: &str = "three-tier:";
pub const STACK_TAG: &str = "three-tier:stack";
pub const TIER_TAG: &str = "three-tier:tier";
pub const ROLE_TAG: &str = "three-tier:role";
pub const NAME_TAG: &str = "Name";
/// On IAM resources only: IAM is account-wide while a stack is regional, so the same stack
/// name in two regions owns two roles, each marked with its region.
pub const REGION_TAG: &str = "three-tier:region";

/// Names of one stack's resources.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    stack: &'a str,
}

impl<'a> Names<'a> {
    pub fn new(stack: &'a str) -> Self {
        Names { stack }
    }

    pub fn stack(&self) -> &'a str {
        self.stack
    }

    /// A name AWS requires unique per account and region: the seed's name for the default
    /// stack, `<stack>-<name>` for any other, so two stacks can share an account.
    pub fn account_unique(&self, seed_name: &str) -> String {
        if self.stack == DEFAULT_STACK { seed_name.to_owned() } else { format!("{}-{seed_name}", self.stack) }
    }

    /// The name of a resource the seed leaves unnamed: `<stack>-<role>`.
    pub fn unnamed(&self, role: &str) -> String {
        format!("{}-{role}", self.stack)
    }

    /// The RDS instance's identifier. The compute tier grants its role the instance's
    /// secret by it before the database exists, so both tiers take it from here.
    pub fn db_instance(&self) -> String {
        self.unnamed("db")
    }
}

/// Whether tags mark a resource as the stack's (and the tier's, when given).
pub fn belongs_to(tags: &BTreeMap<String, String>, stack: &str, tier: Option<Tier>) -> bool {
    tags.get(STACK_TAG).map(String::as_str) == Some(stack)
        && tier.is_none_or(|tier| tags.get(TIER_TAG).map(String::as_str) == Some(tier.as_str()))
}

/// What a read by name found, kept when its tags mark it as the stack's; a name that
/// another holds goes into `foreign`. Every tier decides ownership in its observe, so
/// plans and teardowns see only what is the stack's.
pub fn ours<T>(
    found: Option<T>,
    tags: impl Fn(&T) -> &BTreeMap<String, String>,
    stack: &str,
    name: &str,
    foreign: &mut Vec<String>,
) -> Option<T> {
    match found {
        Some(found) if belongs_to(tags(&found), stack, None) => Some(found),
        Some(_) => {
            foreign.push(name.to_owned());
            None
        }
        None => None,
    }
}

/// A resource's `Name` tag, or its id when it has none.
pub fn name_or_id(tags: &BTreeMap<String, String>, id: &str) -> String {
    tags.get(NAME_TAG).cloned().unwrap_or_else(|| id.to_owned())
}

/// The tags that make a resource part of a stack, plus the user's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Tags {
    pub pairs: BTreeMap<String, String>,
}

impl Tags {
    pub fn new(stack: &str, tier: Tier, role: &str, name: &str, user_tags: &BTreeMap<String, String>) -> Tags {
        let mut pairs = user_tags.clone();
        pairs.insert(NAME_TAG.into(), name.into());
        pairs.insert(STACK_TAG.into(), stack.into());
        pairs.insert(TIER_TAG.into(), tier.as_str().into());
        pairs.insert(ROLE_TAG.into(), role.into());
        Tags { pairs }
    }

    /// The tags of `self` that `present` lacks or holds with another value: what a
    /// resource needs re-tagged with, so the stack finds it again.
    pub fn missing_from(&self, present: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        self.pairs
            .iter()
            .filter(|(key, value)| present.get(*key) != Some(*value))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }

    /// The step `make` gives for the tags of `self` that `present` lacks, if any: every
    /// tier re-tags what lost its tags this way.
    pub fn retag<S>(
        &self,
        present: &BTreeMap<String, String>,
        make: impl FnOnce(BTreeMap<String, String>) -> S,
    ) -> Option<S> {
        let missing = self.missing_from(present);
        (!missing.is_empty()).then(|| make(missing))
    }

    /// The `Name` tag.
    pub fn name(&self) -> &str {
        self.pairs.get(NAME_TAG).map(String::as_str).unwrap_or_default()
    }
}
