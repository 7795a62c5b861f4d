//! carbon.conf keys carbyne handles on its own: which values mean what
//! carbyne does anyway, and why any other is not carried over.

/// Keys that carbyne does on its own, with the value that means the same,
/// and why any other value is not carried over. Keys not listed here and
/// not read are listed as unknown.
pub(super) fn fixed(key: &str, value: &str) -> Option<Option<&'static str>> {
    let v = value.to_ascii_lowercase();
    let is = |options: &[&str]| options.contains(&v.as_str());
    let falsy = is(&["false", "no", "off", "0"]);
    Some(match key {
        "DATABASE" => (!is(&["whisper"])).then_some("carbyne stores whisper files only"),
        "USER" => (!v.is_empty()).then_some("the package's services run as their own user"),
        "ENABLE_LOGROTATION" | "LOG_DIR" => {
            Some("carbyne logs to stderr (the journal, under systemd)")
        }
        "PID_DIR" => Some("systemd keeps track of the service; there is no pid file"),
        "LOG_UPDATES"
        | "LOG_CREATES"
        | "LOG_CACHE_HITS"
        | "LOG_CACHE_QUEUE_SORTS"
        | "LOG_LISTENER_CONN_SUCCESS"
        | "LOG_LISTENER_CONN_LOST"
        | "LOG_AGGREGATOR_MISSES" => {
            (!falsy).then_some("carbyne counts these in its own metrics instead of logging each")
        }
        "MIN_TIMESTAMP_RESOLUTION" => (!is(&["0", "1"]))
            .then_some("whisper keeps whole seconds; carbyne does not round timestamps further"),
        "MIN_TIMESTAMP_LAG" => (!is(&["0"])).then_some("carbyne writes points as they come"),
        "WHISPER_AUTOFLUSH" => (!falsy).then_some("carbyne leaves flushing to the kernel"),
        "WHISPER_LOCK_WRITES" => {
            (!falsy).then_some("carbyne does not take flock locks; each file has one writer thread")
        }
        "WHISPER_FADVISE_RANDOM" => (!falsy).then_some("carbyne gives no fadvise hints"),
        "USE_FLOW_CONTROL" => (falsy).then_some(
            "carbyne always makes senders wait while its cache or queues are full, never drops",
        ),
        "USE_INSECURE_UNPICKLER" => {
            (!falsy).then_some("carbyne's unpickler takes only what carbon's safe unpickler takes")
        }
        "PICKLE_RECEIVER_MAX_LENGTH" => {
            Some("carbyne bounds the pickle messages being decoded, together, by max_decode_bytes")
        }
        "MAX_UPDATES_PER_SECOND_ON_SHUTDOWN" => {
            Some("carbyne writes its whole cache at full speed when it stops")
        }
        "ENABLE_TAGS"
        | "TAG_UPDATE_INTERVAL"
        | "TAG_BATCH_SIZE"
        | "TAG_QUEUE_SIZE"
        | "GRAPHITE_URL"
        | "SKIP_TAGS_FOR_NONTAGGED" => {
            Some("carbyne's web server lists the tagged names it writes itself (no tagdb posts)")
        }
        "TAG_HASH_FILENAMES" => {
            (falsy).then_some("carbyne names tagged files by hash, as carbon's default")
        }
        "QUEUE_LOW_WATERMARK_PCT" | "TIME_TO_DEFER_SENDING" => {
            Some("carbyne's relay sends as fast as the destination takes")
        }
        "USE_RATIO_RESET" => {
            (!falsy).then_some("carbyne's relay does not reset connections by ratio")
        }
        // Read only with USE_RATIO_RESET (listed if on).
        "MIN_RESET_STAT_FLOW" | "MIN_RESET_RATIO" | "MIN_RESET_INTERVAL" => None,
        "DESTINATION_PROTOCOL" => {
            (!is(&["pickle"])).then_some("carbyne's relay speaks carbon's pickle protocol only")
        }
        "DESTINATION_TRANSPORT" => (!is(&["none"])).then_some("carbyne's relay sends without TLS"),
        "ENABLE_AMQP" => (!falsy).then_some("carbyne has no AMQP listener"),
        "ENABLE_MANHOLE" => (!falsy).then_some("carbyne has no manhole (debug shell)"),
        "CACHE_METRIC_NAMES_MAX" | "CACHE_METRIC_NAMES_TTL" => {
            Some("carbyne keeps each name's rule matches up to 64 MiB of them")
        }
        "TAG_RELAY_NORMALIZED" => {
            (!falsy).then_some("carbyne relays tagged names as they came (not normalized)")
        }
        "BIND_PATTERNS"
        | "RAVEN_DSN"
        | "DYNAMIC_ROUTER"
        | "DYNAMIC_ROUTER_MAX_RETRIES"
        | "DESTINATION_SSL_CA"
        | "DESTINATION_POOL_REPLICAS"
        | "TCP_KEEPALIVE"
        | "TCP_KEEPIDLE"
        | "TCP_KEEPINTVL"
        | "TCP_KEEPCNT"
        | "CERES_MAX_SLICE_GAP"
        | "CERES_NODE_CACHING_BEHAVIOR"
        | "CERES_SLICE_CACHING_BEHAVIOR"
        | "CERES_LOCK_WRITES"
        | "MANHOLE_INTERFACE"
        | "MANHOLE_PORT"
        | "MANHOLE_USER"
        | "MANHOLE_PUBLIC_KEY"
        | "MANHOLE_HOST_KEY_DIR"
        | "PROTOBUF_RECEIVER_INTERFACE"
        | "PROTOBUF_RECEIVER_PORT" => Some("carbyne has no such setting"),
        _ if key.starts_with("AMQP_") => Some("carbyne has no AMQP listener"),
        _ => return None,
    })
}
