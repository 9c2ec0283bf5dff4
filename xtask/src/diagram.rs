//! `cargo xtask diagram`: the stack's picture as Mermaid text on stdout, and as an SVG.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::session::Session;

/// Draws the deployed stack, or with `plan` the config's stack without calling AWS.
pub fn diagram(session: &Session, plan: bool, svg: Option<PathBuf>) -> anyhow::Result<()> {
    let config = &session.config;
    let drawing = if plan {
        stack::diagram(config, None)
    } else {
        let ctx = session.connect();
        session.runtime.block_on(stack::diagram_deployed(&ctx, config))?
    };
    print!("{}", drawing.mermaid());
    let path = svg.unwrap_or_else(|| PathBuf::from(format!("{}.svg", config.stack.name)));
    std::fs::write(&path, drawing.svg()).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
