//! What the compute tier should look like, from the config and what it refers to of the
//! network and ALB tiers.

use aws_sdk_ec2::types::VolumeType;
use serde::Serialize;
use three_tier_core::config::InstanceType;
use three_tier_core::naming::{REGION_TAG, Tags};
use three_tier_core::outputs::{AlbRefs, NetworkRefs};
use three_tier_core::{Config, Ref, SecurityGroupRole, Tier};

/// The root volume's type: gp3, the current general-purpose SSD (and the cheaper).
pub const ROOT_VOLUME_TYPE: VolumeType = VolumeType::Gp3;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Desired {
    pub role: RoleSpec,
    /// Lets the instance read the database's master secret, and no other.
    pub secret_policy: SecretPolicySpec,
    pub instance_profile: InstanceProfileSpec,
    /// The app instances, by key in order (`instance`, `instance-2`, ...).
    pub instances: Vec<InstanceSpec>,
    /// In the app target group, then in each listener rule's.
    pub registrations: Vec<RegistrationSpec>,
}

/// The instance's IAM role: Session Manager instead of SSH, so no port 22 anywhere.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleSpec {
    pub name: String,
    pub trust_policy: String,
    pub managed_policies: Vec<String>,
    pub tags: Tags,
}

/// An inline policy of the role: `secretsmanager:GetSecretValue` on the one secret RDS
/// made for the stack's DB instance, told by the tag RDS puts on it. The instance's ARN is
/// known before the database exists, so compute need not wait for the database tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecretPolicySpec {
    pub name: String,
    pub partition: String,
    pub region: String,
    pub db_instance_identifier: String,
}

impl SecretPolicySpec {
    /// The policy document, for the account the role lives in.
    pub fn document(&self, account: &str) -> String {
        let SecretPolicySpec { partition, region, db_instance_identifier, .. } = self;
        let db_arn = format!("arn:{partition}:rds:{region}:{account}:db:{db_instance_identifier}");
        let secrets = format!("arn:{partition}:secretsmanager:{region}:{account}:secret:rds!db-*");
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "ReadTheStacksDatabaseMasterSecret",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": secrets,
                "Condition": {"StringEquals": {"secretsmanager:ResourceTag/aws:rds:primaryDBInstanceArn": db_arn}}
            }]
        })
        .to_string()
    }

    /// Whether a policy document (as IAM returns it, URL-encoded) grants this database.
    pub fn matches(&self, document: &str) -> bool {
        let decoded = percent_encoding::percent_decode_str(document).decode_utf8_lossy();
        let wanted = format!(":rds:{}:", self.region);
        decoded.contains(&wanted) && decoded.contains(&format!(":db:{}\"", self.db_instance_identifier))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceProfileSpec {
    pub name: String,
    pub role: String,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceSpec {
    /// Its role tag and planned reference ([`instance_key`]).
    pub key: String,
    pub name: String,
    pub image: ImageSource,
    pub instance_type: InstanceType,
    pub subnet: Ref,
    pub security_group: Ref,
    pub root_volume_gib: u32,
    pub user_data: String,
    pub tags: Tags,
}

/// Where the AMI comes from; a parameter is read when a plan launches an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageSource {
    SsmParameter(String),
    Id(String),
}

/// The AMI a launch uses, read before the plan is shown: its id, and what the root volume
/// must be to hold its snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    pub id: String,
    pub source: ImageSource,
    pub root_device: String,
    pub snapshot_gib: u32,
}

impl Image {
    /// An AMI not looked up, for a plan made without an account: deploy reads it.
    pub fn to_look_up(source: ImageSource) -> Image {
        Image { id: "(looked up at deploy)".into(), source, root_device: "/dev/xvda".into(), snapshot_gib: 0 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegistrationSpec {
    pub target_group: Ref,
    /// The target group's AWS name.
    pub group_name: String,
    pub port: u16,
}

/// Lets EC2 assume the role.
pub const TRUST_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

pub fn desired(config: &Config, network: &NetworkRefs, alb: &AlbRefs) -> Desired {
    let names = config.names();
    let stack = names.stack();
    let tags = |role: &str, name: &str| Tags::new(stack, Tier::Compute, role, name, &config.stack.tags);
    let iam_tags = |role: &str, name: &str| {
        let mut tags = tags(role, name);
        tags.pairs.insert(REGION_TAG.into(), config.stack.region.clone());
        tags
    };
    let compute = &config.compute;
    let (role_name, profile_name) = iam_names(config);
    let partition = partition(&config.stack.region);
    Desired {
        role: RoleSpec {
            tags: iam_tags("role", &role_name),
            name: role_name.clone(),
            trust_policy: TRUST_POLICY.into(),
            managed_policies: vec![format!("arn:{partition}:iam::aws:policy/AmazonSSMManagedInstanceCore")],
        },
        secret_policy: SecretPolicySpec {
            name: "read-database-secret".into(),
            partition: partition.into(),
            region: config.stack.region.clone(),
            db_instance_identifier: names.db_instance(),
        },
        instance_profile: InstanceProfileSpec {
            tags: iam_tags("instance-profile", &profile_name),
            name: profile_name,
            role: role_name,
        },
        instances: config
            .instance_subnets()
            .into_iter()
            .enumerate()
            .map(|(index, (subnet, _))| {
                let (key, name) = (instance_key(index), instance_name(config, index));
                InstanceSpec {
                    tags: tags(&key, &name),
                    key,
                    name,
                    image: image_source(config),
                    instance_type: compute.instance_type.clone(),
                    subnet: network.subnets[subnet].clone(),
                    security_group: network.security_group(SecurityGroupRole::App).clone(),
                    root_volume_gib: compute.root_volume_gib,
                    user_data: crate::user_data::render(&config.target_ports()),
                }
            })
            .collect(),
        registrations: std::iter::once(RegistrationSpec {
            target_group: alb.app_target_group.clone(),
            group_name: config.app_target_group_name(),
            port: config.ports.app.get(),
        })
        .chain(config.alb.rules.iter().zip(&alb.rule_target_groups).map(|(rule, group)| RegistrationSpec {
            target_group: group.clone(),
            group_name: names.account_unique(&rule.target_group_name),
            port: rule.port.get(),
        }))
        .collect(),
    }
}

/// The key of the app instance at `index`: `instance` for the first (the seed's one, as
/// stacks tagged it before there could be more), `instance-N` for the Nth.
pub fn instance_key(index: usize) -> String {
    match index {
        0 => "instance".to_owned(),
        _ => format!("instance-{}", index + 1),
    }
}

/// The tag that marks an instance for replacement, its value why: the new instance takes
/// its key, and it is drained and terminated once that one is a healthy target.
pub const RETIRING_TAG: &str = "three-tier:retiring";

/// Whether a role tag is a key [`instance_key`] gives: `instance` or `instance-N`, N ≥ 2.
pub(crate) fn is_instance_key(role: &str) -> bool {
    role == "instance"
        || role
            .strip_prefix("instance-")
            .is_some_and(|n| !n.starts_with('0') && n.parse::<usize>().is_ok_and(|n| n >= 2))
}

/// Its Name tag: `<stack>-app`, then `<stack>-app-N`.
fn instance_name(config: &Config, index: usize) -> String {
    match index {
        0 => config.names().unnamed("app"),
        _ => config.names().unnamed(&format!("app-{}", index + 1)),
    }
}

/// Where the instance's AMI comes from: an id in the config, else the public parameter.
pub fn image_source(config: &Config) -> ImageSource {
    match &config.compute.ami_id {
        Some(id) => ImageSource::Id(id.clone()),
        None => ImageSource::SsmParameter(config.compute.ami_parameter.clone()),
    }
}

/// The names of the instance's IAM role and instance profile. IAM names are unique per
/// account while a stack is regional: they carry the stack's name and its region, so the
/// same stack name in two regions holds two roles (`<stack>-app-role-<region>`).
pub fn iam_names(config: &Config) -> (String, String) {
    let names = config.names();
    let region = &config.stack.region;
    (names.unnamed(&format!("app-role-{region}")), names.unnamed(&format!("app-profile-{region}")))
}

/// The names stacks deployed before the region was in them used (`<stack>-app-role`): a
/// deploy moves the instance off them, and removes them once no instance uses them.
pub fn legacy_iam_names(config: &Config) -> (String, String) {
    let names = config.names();
    (names.unnamed("app-role"), names.unnamed("app-profile"))
}

/// The ARN partition of a region: AWS managed policies live in it.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}
