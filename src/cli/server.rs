//! `carbyne server`: the receivers (statsd, carbon, web) started, reloaded
//! on SIGHUP and stopped in dependency order.

use super::*;

pub(super) fn run(arg: &ConfigArg) -> i32 {
    init_logging("info");
    let Some(cfg) = reported(load(arg), "carbyne") else {
        return EXIT_CONFIG;
    };
    let (statsd, carbon, web) = (
        cfg.server.statsd.clone(),
        cfg.server.carbon.clone(),
        cfg.server.web.clone(),
    );
    if statsd.is_none() && carbon.is_none() && web.is_none() {
        eprintln!(
            "carbyne: no receiver configured: add a [server.statsd], [server.carbon] or [server.web] section"
        );
        return EXIT_CONFIG;
    }
    let Some(rt) = runtime() else {
        return EXIT_FAILED;
    };
    let state_dir = cfg.state_dir.clone();
    let result = rt.block_on(run_server(arg.clone(), statsd, carbon, web, state_dir));
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("carbyne server: {e}");
            EXIT_FAILED
        }
    }
}

/// A receiver's task with its stop and reload channels.
struct Receiver<C> {
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    reload: tokio::sync::mpsc::Sender<C>,
}

impl<C> Receiver<C> {
    fn start<F, Fut>(run: F) -> Self
    where
        F: FnOnce(tokio::sync::oneshot::Receiver<()>, tokio::sync::mpsc::Receiver<C>) -> Fut,
        Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (reload, reloads) = tokio::sync::mpsc::channel(4);
        Receiver {
            task: tokio::spawn(run(stopped, reloads)),
            stop: Some(stop),
            reload,
        }
    }

    /// Asks it to stop and waits until it has.
    async fn finish(mut self) -> std::io::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
    }
}

/// Resolves when `stop` fires or its sender is gone.
async fn stopped(stop: tokio::sync::oneshot::Receiver<()>) {
    let _ = stop.await;
}

/// Resolves when the receiver's task ends (never without one).
async fn ended<C>(
    r: &mut Option<Receiver<C>>,
) -> Result<std::io::Result<()>, tokio::task::JoinError> {
    match r.as_mut() {
        Some(r) => (&mut r.task).await,
        None => std::future::pending().await,
    }
}

/// A render allocates its series afresh (tens of MB for a thousand files)
/// and frees them at the end; glibc gives freed memory at the top of its
/// heaps back to the kernel past 128 KiB, so the next render faults and
/// zeroes every page again (a fifth of a render's time). Up to 64 MiB per
/// heap stays for reuse instead; what the limits let requests hold is
/// unchanged.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of the allocator.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
    }
}

/// Runs the receivers until SIGTERM or SIGINT (or one fails), reading the
/// configuration again on SIGHUP. They stop in dependency order: statsd
/// first, its last flush going into a carbon receiver that still listens,
/// then carbon, which writes everything it holds.
async fn run_server(
    arg: ConfigArg,
    statsd: Option<crate::server::statsd::StatsdServerConfig>,
    carbon: Option<crate::server::carbon::CarbonServerConfig>,
    web: Option<crate::server::web::WebServerConfig>,
    state_dir: std::path::PathBuf,
) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    if let Some(w) = &web {
        keep_freed_memory();
        // The files it keeps open, left out of the carbon receiver's budget.
        let kept = crate::server::web::open_files::capacity(w.keep_open_files);
        crate::server::reserve_open_files(kept as u64);
    }
    // Installed before the receivers start: SIGHUP's default would end the process.
    let mut hup = signal(SignalKind::hangup()).ok();
    if hup.is_none() {
        log::warn!("cannot install the SIGHUP handler; reloading needs a restart");
    }
    if let (Some(s), Some(c)) = (&statsd, &carbon) {
        if let Some(w) = crate::server::statsd_overwrites(s, c) {
            log::warn!("{w}");
        }
    }
    // The web server reads the whisper files the carbon receiver writes,
    // and the points its cache still holds.
    let storage_dir = carbon.as_ref().map_or_else(
        || crate::server::carbon::CarbonServerConfig::default().storage_dir,
        |c| c.storage_dir.clone(),
    );
    let (publish, published) = tokio::sync::oneshot::channel();
    let mut carbon = carbon.map(|c| {
        Receiver::start(move |stop, reloads| {
            crate::server::carbon::run(c, stopped(stop), reloads, Some(publish))
        })
    });
    let shared = match carbon {
        Some(_) => published.await.ok(),
        None => None,
    };
    let web_running = web.clone();
    let mut web = web.map(|c| {
        Receiver::start(move |stop, _reloads: tokio::sync::mpsc::Receiver<()>| {
            crate::server::web::run(c, storage_dir, state_dir, shared, stopped(stop))
        })
    });
    let mut statsd = statsd.map(|c| {
        Receiver::start(move |stop, reloads| crate::server::statsd::run(c, stopped(stop), reloads))
    });
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut failed: Option<std::io::Error> = None;
    loop {
        let hup_next = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut stop => break,
            Some(()) = hup_next => reload_server(&arg, statsd.as_ref(), carbon.as_ref(), web_running.as_ref()).await,
            r = ended(&mut statsd) => {
                statsd = None;
                failed = Some(ended_early("statsd", r));
                break;
            }
            r = ended(&mut carbon) => {
                carbon = None;
                failed = Some(ended_early("carbon", r));
                break;
            }
            r = ended(&mut web) => {
                web = None;
                failed = Some(ended_early("web", r));
                break;
            }
        }
    }
    let mut result = Ok(());
    if let Some(r) = web {
        result = r.finish().await;
    }
    if let Some(r) = statsd {
        result = result.and(r.finish().await);
    }
    if let Some(r) = carbon {
        result = result.and(r.finish().await);
    }
    match failed {
        Some(e) => Err(e),
        None => result,
    }
}

/// The error of a receiver that ended before it was asked to.
fn ended_early(
    what: &str,
    r: Result<std::io::Result<()>, tokio::task::JoinError>,
) -> std::io::Error {
    match r {
        Ok(Err(e)) => e,
        Ok(Ok(())) => std::io::Error::other(format!("the {what} receiver ended")),
        Err(e) => std::io::Error::other(format!("the {what} receiver failed: {e}")),
    }
}

/// SIGHUP: reads the configuration again and hands each running receiver
/// its new section; a configuration that does not load is logged (file,
/// line, key) and the running one stays.
async fn reload_server(
    arg: &ConfigArg,
    statsd: Option<&Receiver<crate::server::statsd::StatsdServerConfig>>,
    carbon: Option<&Receiver<crate::server::carbon::CarbonServerConfig>>,
    web: Option<&crate::server::web::WebServerConfig>,
) {
    log::info!("SIGHUP: reading the configuration again");
    let a = arg.clone();
    let loaded = tokio::task::spawn_blocking(move || load(&a)).await;
    let cfg = match loaded {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return log::error!("configuration not reloaded, the running one stays: {e}"),
        Err(e) => return log::error!("configuration not reloaded: {e}"),
    };
    match (statsd, cfg.server.statsd) {
        (Some(r), Some(c)) => {
            let _ = r.reload.send(c).await;
        }
        (None, None) => {}
        _ => log::warn!("a [server.statsd] added or removed takes effect on restart"),
    }
    match (carbon, cfg.server.carbon) {
        (Some(r), Some(c)) => {
            let _ = r.reload.send(c).await;
        }
        (None, None) => {}
        _ => log::warn!("a [server.carbon] added or removed takes effect on restart"),
    }
    match (web, cfg.server.web) {
        (Some(old), Some(new)) => {
            let changed = crate::server::changed_keys(old, &new);
            if !changed.is_empty() {
                log::warn!("web: {changed:?} changed; that takes effect on restart");
            }
        }
        (None, None) => {}
        _ => log::warn!("a [server.web] added or removed takes effect on restart"),
    }
}
