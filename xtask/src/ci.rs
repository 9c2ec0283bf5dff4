//! `cargo xtask ci`: every test, as CI runs them.

use anyhow::Context as _;
use emulator::Emulator;
use xshell::{Shell, cmd};

pub fn run(sh: &Shell) -> anyhow::Result<()> {
    let emulator = Emulator::default();
    let already_running = emulator.status().is_some();
    emulator.ensure_running().context("starting the emulator")?;
    // Snapshots are compared, never written: review changes locally with `cargo insta review`.
    let result = cmd!(sh, "cargo test --workspace --locked").env("INSTA_UPDATE", "no").run();
    if !already_running {
        emulator.stop()?;
    }
    result.context("tests failed")
}
