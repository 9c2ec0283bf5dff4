//! Every tier against the local emulator, which the harness starts when it is not
//! running. Each test works in a stack of its own, so tests run concurrently on one
//! emulator, and teardown is shown to touch only its own stack.

mod app;
mod aws_e2e;
mod crash;
mod dataplane;
mod errors;
mod graph;
mod network;
mod oracle;
mod regions;
mod stack;
mod strict;
mod support;
