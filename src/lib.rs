//! carbyne: one binary for a server's metrics.
//!
//! The data flow, and where each part lives:
//! collectors (`collectors/`) → [`scheduler`] → per-handler queues →
//! handlers (`handlers/`). See ARCHITECTURE.md.

pub mod buffer;
pub mod cli;
pub mod config;
pub mod hostname;
pub mod logs;
pub mod manpages;
pub mod migrate;
pub mod pages;
pub mod prometheus;
pub mod rates;
pub mod sample;
pub mod scheduler;
pub mod tail;

#[path = "../collectors/mod.rs"]
pub mod collectors;

#[path = "../handlers/mod.rs"]
pub mod handlers;

#[path = "../parsers/mod.rs"]
pub mod parsers;
pub mod server;
pub mod whisper;
