//! `cargo xtask ci`: formatting, lints and every test, as CI runs them.

use anyhow::Context as _;
use emulator::Emulator;
use xshell::{Shell, cmd};

use crate::packages::ensure_debian_packages;

pub fn run(sh: &Shell) -> anyhow::Result<()> {
    // The house rules first: they take seconds and name the line to fix.
    cmd!(sh, "cargo fmt --all -- --check").run().context("code is not formatted: run `cargo fmt --all`")?;
    cmd!(sh, "cargo clippy --workspace --all-targets --locked -- -D warnings")
        .run()
        .context("clippy found problems: the output above names them")?;
    // The user-data test checks the rendered script with shellcheck; the emulator's data
    // plane runs nginx and MariaDB.
    ensure_debian_packages(sh, &[("shellcheck", "shellcheck")])?;
    ensure_debian_packages(sh, &emulator::DATA_PLANE_PACKAGES)?;
    let emulator = Emulator::default();
    let already_running = emulator.status().is_some();
    emulator.ensure_running().context("starting the emulator")?;
    // Snapshots are compared, never written: review changes locally with `cargo insta review`.
    let result = cmd!(sh, "cargo test --workspace --locked").env("INSTA_UPDATE", "no").run();
    if !already_running {
        emulator.stop()?;
    }
    result.context("tests failed: the output above names them; after an intended snapshot change, run `cargo test` and `cargo insta review`")
}
