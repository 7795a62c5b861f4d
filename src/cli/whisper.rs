//! `carbyne whisper TOOL`: Graphite's whisper scripts, their arguments and
//! output, with metric names standing for their files.

use super::*;

#[derive(Debug, Args)]
pub struct WhisperArgs {
    /// Where a metric name given in place of a file is looked up (the
    /// carbon receiver's storage_dir).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/var/lib/carbyne/whisper"
    )]
    pub storage_dir: PathBuf,
    #[command(subcommand)]
    pub command: WhisperCommand,
}

/// A time as Graphite takes it: Unix seconds, `now`, or an offset such as `-1h`.
fn attime(s: &str) -> Result<i64, String> {
    crate::whisper::tools::attime(s, crate::whisper::unix_now())
}

/// `carbyne whisper TOOL`: Graphite's `whisper-TOOL.py` scripts. Where a
/// tool reads one file, a metric name (`servers.web1.loadavg.01`, tagged
/// names too) stands for its file under --storage-dir.
#[derive(Debug, Subcommand)]
pub enum WhisperCommand {
    /// Create a whisper file (whisper-create.py).
    Create {
        path: PathBuf,
        /// Retentions, e.g. 60:1440 or 10s:6h 1m:7d.
        #[arg(required = true)]
        retentions: Vec<String>,
        #[arg(long = "xFilesFactor", default_value_t = 0.5)]
        x_files_factor: f64,
        #[arg(long = "aggregationMethod", default_value = "average")]
        aggregation_method: String,
        #[arg(long)]
        overwrite: bool,
        /// Create the file sparse.
        #[arg(long)]
        sparse: bool,
        /// Reserve the file's space with fallocate.
        #[arg(long)]
        fallocate: bool,
    },
    /// Print a file's header (whisper-info.py).
    Info {
        #[arg(long)]
        json: bool,
        path: PathBuf,
        /// Print only this field.
        field: Option<String>,
    },
    /// Print a series (whisper-fetch.py).
    Fetch {
        /// The start: Unix seconds, `now` or an offset such as `-1h`,
        /// `-10min`, `-7d` (default: 24 hours ago).
        #[arg(long = "from", allow_hyphen_values = true, value_parser = attime)]
        from: Option<i64>,
        /// The end, as --from (default: now).
        #[arg(long, allow_hyphen_values = true, value_parser = attime)]
        until: Option<i64>,
        #[arg(long)]
        json: bool,
        /// Human-readable times (UTC).
        #[arg(long)]
        pretty: bool,
        #[arg(long, value_enum)]
        drop: Option<crate::whisper::tools::Drop>,
        path: PathBuf,
    },
    /// Write points, `timestamp:value` or `N:value` for now (whisper-update.py);
    /// with none, one per line from standard input.
    Update { path: PathBuf, points: Vec<String> },
    /// Print every stored point (whisper-dump.py).
    Dump {
        #[arg(long)]
        pretty: bool,
        /// Only `timestamp:value` lines, as whisper-update reads them.
        #[arg(long, short = 'r')]
        raw: bool,
        path: PathBuf,
    },
    /// Fill one file's gaps from another (whisper-fill.py).
    Fill {
        /// Lock the files while writing.
        #[arg(long)]
        lock: bool,
        src: PathBuf,
        dst: PathBuf,
    },
    /// Change a file's archives, keeping its data (whisper-resize.py).
    Resize {
        path: PathBuf,
        #[arg(required = true)]
        retentions: Vec<String>,
        #[arg(long = "xFilesFactor")]
        x_files_factor: Option<f64>,
        #[arg(long = "aggregationMethod")]
        aggregation_method: Option<String>,
        /// Accepted as whisper-resize.py accepts it.
        #[arg(long)]
        force: bool,
        /// Write the new file here and leave the old one alone.
        #[arg(long)]
        newfile: Option<PathBuf>,
        /// Delete the .bak file afterwards.
        #[arg(long)]
        nobackup: bool,
        /// Aggregate the old points to fit the new archives.
        #[arg(long)]
        aggregate: bool,
    },
    /// Copy one file's points into another with the same archives (whisper-merge.py).
    Merge {
        #[arg(long = "from", allow_hyphen_values = true, value_parser = attime)]
        from: Option<i64>,
        #[arg(long, allow_hyphen_values = true, value_parser = attime)]
        until: Option<i64>,
        from_path: PathBuf,
        to_path: PathBuf,
    },
    /// Compare two files with the same archives (whisper-diff.py).
    Diff {
        #[arg(long)]
        summary: bool,
        #[arg(long)]
        ignore_empty: bool,
        #[arg(long)]
        columns: bool,
        #[arg(long)]
        no_headers: bool,
        #[arg(long, allow_hyphen_values = true, value_parser = attime)]
        until: Option<i64>,
        #[arg(long)]
        json: bool,
        path_a: PathBuf,
        path_b: PathBuf,
    },
    /// Change the aggregation method (whisper-set-aggregation-method.py).
    SetAggregationMethod {
        path: PathBuf,
        method: String,
        #[arg(value_name = "xFilesFactor")]
        x_files_factor: Option<f64>,
    },
    /// Change the xFilesFactor (whisper-set-xfilesfactor.py).
    SetXfilesfactor {
        path: PathBuf,
        #[arg(value_name = "xFilesFactor")]
        x_files_factor: f64,
    },
}

/// The file `path` names: itself when it exists or looks like a path, else
/// the file of the metric it names under `storage_dir` (as the carbon
/// receiver places it, tagged names under `_tagged/`).
fn metric_file(path: &std::path::Path, storage_dir: &std::path::Path) -> PathBuf {
    let s = path.to_string_lossy();
    if path.exists() || s.contains('/') || s.ends_with(".wsp") {
        return path.to_path_buf();
    }
    match crate::server::carbon::names::normalize(&s) {
        Ok(name) => crate::server::carbon::names::path(storage_dir, &name),
        Err(_) => path.to_path_buf(),
    }
}

pub(super) fn run(args: &WhisperArgs) -> i32 {
    use crate::whisper::{tools, Allocation};
    let file = |p: &PathBuf| metric_file(p, &args.storage_dir);
    let res = match &args.command {
        WhisperCommand::Create {
            path,
            retentions,
            x_files_factor,
            aggregation_method,
            overwrite,
            sparse,
            fallocate,
        } => {
            let alloc = if *fallocate {
                Allocation::Fallocate
            } else if *sparse {
                Allocation::Sparse
            } else {
                Allocation::Zeroed
            };
            tools::create(
                path,
                retentions,
                *x_files_factor,
                aggregation_method,
                *overwrite,
                alloc,
            )
        }
        WhisperCommand::Info { json, path, field } => {
            tools::info(&file(path), *json, field.as_deref())
        }
        WhisperCommand::Fetch {
            from,
            until,
            json,
            pretty,
            drop,
            path,
        } => {
            let now = crate::whisper::unix_now();
            tools::fetch(
                &file(path),
                from.unwrap_or(now - 86_400),
                until.unwrap_or(now),
                *json,
                *pretty,
                *drop,
            )
        }
        WhisperCommand::Update { path, points } => {
            let points = if points.is_empty() {
                use std::io::BufRead;
                std::io::stdin()
                    .lock()
                    .lines()
                    .map_while(Result::ok)
                    .filter(|l| !l.trim().is_empty())
                    .collect()
            } else {
                points.clone()
            };
            tools::update(path, &points)
        }
        WhisperCommand::Dump { pretty, raw, path } => tools::dump(&file(path), *pretty, *raw),
        WhisperCommand::Fill { lock, src, dst } => tools::fill(src, dst, *lock),
        WhisperCommand::Resize {
            path,
            retentions,
            x_files_factor,
            aggregation_method,
            force: _,
            newfile,
            nobackup,
            aggregate,
        } => {
            let o = tools::ResizeOptions {
                x_files_factor: *x_files_factor,
                aggregation_method: aggregation_method.clone(),
                newfile: newfile.clone(),
                nobackup: *nobackup,
                aggregate: *aggregate,
            };
            tools::resize(path, retentions, &o)
        }
        WhisperCommand::Merge {
            from,
            until,
            from_path,
            to_path,
        } => tools::merge(from_path, to_path, *from, *until),
        WhisperCommand::Diff {
            summary,
            ignore_empty,
            columns,
            no_headers,
            until,
            json,
            path_a,
            path_b,
        } => {
            let o = tools::DiffOptions {
                summary: *summary,
                ignore_empty: *ignore_empty,
                columns: *columns,
                no_headers: *no_headers,
                json: *json,
                until: *until,
            };
            tools::diff(path_a, path_b, o)
        }
        WhisperCommand::SetAggregationMethod {
            path,
            method,
            x_files_factor,
        } => tools::set_aggregation_method(path, method, *x_files_factor),
        WhisperCommand::SetXfilesfactor {
            path,
            x_files_factor,
        } => tools::set_xfilesfactor(path, *x_files_factor),
    };
    match res {
        Ok(out) => {
            print_quietly(&out);
            0
        }
        Err(crate::whisper::WhisperError::InvalidTimeInterval(m))
            if m == "No data in selected timerange" =>
        {
            eprintln!("{m}");
            1
        }
        Err(e) => {
            eprintln!("[ERROR] {e}");
            1
        }
    }
}
