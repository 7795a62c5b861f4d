//! stdout: prints every sample as a Graphite plaintext line. This is what
//! `agent --dry-run` uses in place of the configured handlers.

use super::{Delivery, DeliveryError};
use serde::{Deserialize, Serialize};
use std::io::Write;

/// `[handlers.NAME]` with `type = "stdout"` has no options of its own.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StdoutConfig {}

pub async fn run(mut d: Delivery, _cfg: StdoutConfig) -> Result<(), DeliveryError> {
    let mut buf = String::new();
    // Once the reader has gone (`carbyne agent --once --dry-run | head`),
    // what is left is dropped quietly: nobody reads it and nothing retries.
    let mut reader_gone = false;
    loop {
        let batch = d.queue.take(4096);
        if batch.is_empty() {
            if d.deadline().is_some() {
                return Ok(());
            }
            d.wait_for_work().await;
            continue;
        }
        if reader_gone {
            d.queue
                .stats
                .dropped
                .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
            d.settle();
            continue;
        }
        buf.clear();
        for s in &batch {
            s.write_plaintext(&mut buf);
        }
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_all(buf.as_bytes()).and_then(|_| out.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                reader_gone = true;
                continue;
            }
            d.failed(&format!("stdout: {e}"));
            return Err(DeliveryError(format!("{}: stdout: {e}", d.name)));
        }
        d.sent(batch.len());
        d.settle();
    }
}
