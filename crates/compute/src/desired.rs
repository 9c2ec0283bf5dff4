//! What the compute tier should look like, from the config and the outputs of the
//! network and ALB tiers.

use serde::Serialize;
use three_tier_core::naming::Tags;
use three_tier_core::outputs::{AlbOutputs, NetworkOutputs};
use three_tier_core::{Config, SecurityGroupRole, SubnetRole, Tier};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Desired {
    pub role: RoleSpec,
    pub instance_profile: InstanceProfileSpec,
    pub instance: InstanceSpec,
    pub registration: RegistrationSpec,
}

/// The instance's IAM role: Session Manager instead of SSH, so no port 22 anywhere.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleSpec {
    pub name: String,
    pub trust_policy: String,
    pub managed_policies: Vec<String>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceProfileSpec {
    pub name: String,
    pub role: String,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceSpec {
    pub name: String,
    pub image: ImageSource,
    pub instance_type: String,
    pub subnet_id: String,
    pub security_group_id: String,
    pub root_volume_gib: u32,
    pub user_data: String,
    pub tags: Tags,
}

/// Where the AMI comes from; a parameter is read when the instance is launched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageSource {
    SsmParameter(String),
    Id(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegistrationSpec {
    pub target_group_arn: String,
    pub port: u16,
}

/// Lets EC2 assume the role.
pub const TRUST_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

pub fn desired(config: &Config, network: &NetworkOutputs, alb: &AlbOutputs) -> Desired {
    let names = config.names();
    let stack = names.stack();
    let tags = |role: &str, name: &str| Tags::new(stack, Tier::Compute, role, name, &config.stack.tags);
    let compute = &config.compute;
    let (role_name, profile_name) = iam_names(config);
    let instance_name = names.unnamed("app");
    let partition = partition(&config.stack.region);
    Desired {
        role: RoleSpec {
            tags: tags("role", &role_name),
            name: role_name.clone(),
            trust_policy: TRUST_POLICY.into(),
            managed_policies: vec![format!("arn:{partition}:iam::aws:policy/AmazonSSMManagedInstanceCore")],
        },
        instance_profile: InstanceProfileSpec {
            tags: tags("instance-profile", &profile_name),
            name: profile_name,
            role: role_name,
        },
        instance: InstanceSpec {
            tags: tags("instance", &instance_name),
            name: instance_name,
            image: match &compute.ami_id {
                Some(id) => ImageSource::Id(id.clone()),
                None => ImageSource::SsmParameter(compute.ami_parameter.clone()),
            },
            instance_type: compute.instance_type.clone(),
            subnet_id: network.subnet(SubnetRole::App).to_owned(),
            security_group_id: network.security_group(SecurityGroupRole::App).to_owned(),
            root_volume_gib: compute.root_volume_gib,
            user_data: crate::user_data::render(),
        },
        registration: RegistrationSpec { target_group_arn: alb.app_target_group_arn.clone(), port: config.ports.app.get() },
    }
}

/// The names of the instance's IAM role and instance profile: IAM names are unique per
/// account, and these carry the stack's name.
pub fn iam_names(config: &Config) -> (String, String) {
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
