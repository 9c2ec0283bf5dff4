//! `cargo xtask reach`: the stack's paths, hop by hop.

use crate::session::Session;

pub fn reach(session: &Session, plan: bool, json: bool) -> anyhow::Result<()> {
    let paths = if plan {
        stack::reach::paths(&stack::reach::desired::desired(&session.config))
    } else {
        let ctx = session.connect();
        session.runtime.block_on(stack::reach::deployed(&ctx, &session.config))?
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&paths)?);
    } else {
        let what = if plan { "the paths the config builds" } else { "the paths AWS holds" };
        println!("{}: {what}", session.describe_target());
        for path in &paths {
            print!("{}", path.render());
        }
    }
    let closed: Vec<&str> = paths.iter().filter(|p| !p.open()).map(|p| p.name).collect();
    if !closed.is_empty() {
        anyhow::bail!("closed: {}; each ✗ hop says what is missing and what repairs it", closed.join(", "));
    }
    Ok(())
}
