//! Debian packages the tests and the emulator's data plane need, installed when missing.

use anyhow::Context as _;
use xshell::{Shell, cmd};

/// Installs the Debian packages of the (command, package) pairs whose command is missing.
pub fn ensure_debian_packages(sh: &Shell, needed: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing = missing(needed);
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    eprintln!("installing {list} (Debian packages, once)");
    let install = || -> anyhow::Result<()> {
        cmd!(sh, "apt-get update -qq").run()?;
        cmd!(sh, "apt-get install -y -qq {missing...}").env("DEBIAN_FRONTEND", "noninteractive").run()?;
        Ok(())
    };
    install()
        .with_context(|| format!("installing {list} failed: install it yourself (Debian: `apt-get install {list}`)"))
}

/// The emulator's data plane (nginx, MariaDB): installed on first use of `--emulator`. A
/// machine where that fails keeps the control plane, with a note saying how to install it.
pub fn ensure_data_plane(sh: &Shell) {
    if let Err(err) = ensure_debian_packages(sh, &emulator::DATA_PLANE_PACKAGES) {
        eprintln!(
            "note: the emulator's data plane stays off, so verify cannot show the seed's two goals ({err:#}); \
             then `cargo xtask emulator stop` so that the next command starts it with them"
        );
    }
}

/// The packages of `needed` whose command is on neither PATH nor the system's sbin folders
/// (where Debian puts `mariadbd`, and which a user's PATH may lack).
fn missing<'a>(needed: &[(&str, &'a str)]) -> Vec<&'a str> {
    let path = std::env::var("PATH").unwrap_or_default();
    let folders: Vec<&str> = path.split(':').chain(["/usr/sbin", "/sbin"]).collect();
    let mut missing: Vec<&str> = needed
        .iter()
        .filter(|(command, _)| !folders.iter().any(|folder| std::path::Path::new(folder).join(command).is_file()))
        .map(|(_, package)| *package)
        .collect();
    missing.dedup();
    missing
}
