//! What every stack command starts from: the validated config, and where to send requests.

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use three_tier_core::interrupt::Interrupt;
use three_tier_core::progress::Progress;
use three_tier_core::wait::WaitSettings;
use three_tier_core::{AwsContext, Config, ConfigError, Durations, Target, Tier};

use crate::StackArgs;

pub struct Session {
    pub config: Config,
    pub tiers: Vec<Tier>,
    pub target: Target,
    pub runtime: tokio::runtime::Runtime,
    pub started: Instant,
    /// Take the stack's lock even from another run (`--force-unlock`).
    pub force_unlock: bool,
    /// Raised by Ctrl-C once [`Session::stop_on_ctrl_c`] watches for it.
    pub interrupt: Interrupt,
}

impl Session {
    /// Loads and validates the config before anything talks to AWS.
    pub fn open(args: &StackArgs) -> anyhow::Result<Session> {
        let config = load_config(&args.config, args.stack.as_deref(), std::env::var("AWS_REGION").ok())?;
        // Named tiers are handled in dependency order, whatever order they were named in.
        let tiers: Vec<Tier> =
            stack::TIERS.iter().copied().filter(|tier| args.tiers.is_empty() || args.tiers.contains(tier)).collect();
        let target = if args.emulator {
            crate::packages::ensure_data_plane(&xshell::Shell::new()?);
            let running = emulator::Emulator::default().ensure_running().context("starting the emulator")?;
            Target::Emulator { endpoint: running.endpoint() }
        } else if let Some(endpoint) = endpoint_override() {
            Target::Emulator { endpoint }
        } else {
            Target::Aws
        };
        let runtime = tokio::runtime::Runtime::new()?;
        Ok(Session {
            config,
            tiers,
            target,
            runtime,
            started: Instant::now(),
            force_unlock: args.force_unlock,
            interrupt: Interrupt::default(),
        })
    }

    pub fn connect(&self) -> AwsContext {
        self.connect_in(&self.config.stack.region)
    }

    /// A context for another region than the config's (`stacks --all-regions`).
    pub fn connect_in(&self, region: &str) -> AwsContext {
        let waits = match self.target {
            // The emulator answers in milliseconds: poll it often.
            Target::Emulator { .. } => WaitSettings::fast_poll(),
            Target::Aws => WaitSettings::default(),
        };
        let mut ctx = self.runtime.block_on(AwsContext::connect(&self.target, region, waits, Progress::stderr()));
        ctx.interrupt = self.interrupt.clone();
        if let Target::Emulator { .. } = self.target {
            // The strict emulator's clock runs AWS's durations at its time scale.
            ctx.durations = Durations::aws().scaled(emulator_time_scale());
        }
        ctx
    }

    /// From now on, the first Ctrl-C asks the run to stop between steps (the calls in flight
    /// finish, and the lock is released); a second one stops the process at once.
    pub fn stop_on_ctrl_c(&self) {
        let interrupt = self.interrupt.clone();
        self.runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupt.raise();
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!(
                        "stopped at once: what was in flight may be half-made; run the command again to finish it"
                    );
                    std::process::exit(130);
                }
            }
        });
    }

    /// Who serves verify's traffic: AWS, the strict emulator's data plane, or nobody.
    pub fn traffic(&self) -> stack::Traffic {
        let Target::Emulator { endpoint } = &self.target else {
            return stack::Traffic::Aws;
        };
        match emulator::data_plane(endpoint) {
            Some(plane) if plane.enabled => stack::Traffic::Emulator { endpoint: endpoint.clone() },
            Some(plane) => {
                let missing = plane.missing.join(" ");
                stack::Traffic::None {
                    why: format!(
                        "the emulator's data plane is off: install {missing} (Debian: `apt-get install {missing}`), then `cargo xtask emulator stop`"
                    ),
                }
            }
            None => stack::Traffic::None { why: format!("the emulator at {endpoint} serves no traffic") },
        }
    }

    /// On the emulator's data plane, the local URL at which a browser shows what the ALB
    /// serves (its name map stands for AWS's DNS).
    pub fn local_url(&self, alb: &three_tier_core::outputs::AlbOutputs) -> Option<String> {
        let stack::Traffic::Emulator { endpoint } = self.traffic() else {
            return None;
        };
        let address = emulator::resolve(&endpoint, &alb.dns_name, alb.listener_port)?;
        Some(match address.port() {
            80 => format!("http://{}/", address.ip()),
            port => format!("http://{}:{port}/", address.ip()),
        })
    }

    /// How long verify waits: AWS's times, or the emulator's scaled ones.
    pub fn verify_limits(&self) -> stack::VerifyLimits {
        match self.target {
            Target::Aws => stack::VerifyLimits::default(),
            Target::Emulator { .. } => stack::VerifyLimits::on_emulator(emulator_time_scale()),
        }
    }

    pub fn describe_target(&self) -> String {
        let stack = &self.config.stack;
        match &self.target {
            Target::Aws => format!("stack {} in {} (AWS)", stack.name, stack.region),
            Target::Emulator { endpoint } => {
                format!("stack {} in {} (emulator at {endpoint})", stack.name, stack.region)
            }
        }
    }
}

fn emulator_time_scale() -> f64 {
    emulator::Mode::from_env().time_scale.parse().unwrap_or(1.0)
}

/// `AWS_ENDPOINT_URL` when it names something other than AWS itself (moto, LocalStack):
/// an emulator, polled often, with data-plane checks that need real AWS. An endpoint of
/// AWS's own (`*.amazonaws.com`) is AWS.
fn endpoint_override() -> Option<String> {
    let url = std::env::var("AWS_ENDPOINT_URL").ok().filter(|url| !url.trim().is_empty())?;
    let host = url.split("://").last().unwrap_or_default().split(['/', ':']).next().unwrap_or_default();
    let aws = host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn");
    (!aws).then_some(url)
}

/// The config file, or the built-in default when the default path is absent (running
/// outside the repository), with `--stack` and `AWS_REGION` applied, then validated.
pub fn load_config(path: &Path, stack: Option<&str>, region: Option<String>) -> Result<Config, ConfigError> {
    let mut config = if path == Path::new(Config::DEFAULT_PATH) && !path.exists() {
        Config::default_config()
    } else {
        Config::load(path)?
    };
    if let Some(stack) = stack {
        config.stack.name = stack.to_owned();
    }
    let overridden = region.filter(|r| !r.is_empty() && *r != config.stack.region);
    if let Some(region) = &overridden {
        config.stack.region = region.clone();
    }
    config.validate(path).map_err(|mut err| {
        if let Some(region) = &overridden {
            err.fix.push_str(&format!(
                " (the region is {region} because AWS_REGION is set; unset it to use stack.region)"
            ));
        }
        err
    })?;
    Ok(config)
}
