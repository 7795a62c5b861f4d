//! The exposition on fixtures: each statsd type, the rules' keys, the
//! bounds.

use super::*;

const T0: i64 = 1_700_000_000_000;

fn page(ex: &mut Exporter, now_ms: i64) -> String {
    ex.render(now_ms)
}

/// The value of the line starting with `series ` on the page.
fn value(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{page}"))
        .parse()
        .expect("number")
}

#[test]
fn names_are_escaped_as_statsd_exporter_escapes_them() {
    for (raw, want) in [
        ("with.*.multiple", "with___multiple"),
        ("with---multiple-dashes", "with_multiple_dashes"),
        ("1foo", "_1foo"),
        ("é.x", "__x"),
        ("ok_name", "ok_name"),
        ("", ""),
    ] {
        assert_eq!(escape_name(raw), want, "{raw}");
    }
}

#[test]
fn counters_add_up_gauges_set_and_tags_are_labels() {
    let mut ex = Exporter::new(Mapper::default(), 1 << 20);
    ex.apply(Update::Counter("api.hits;region=eu;bad-tag=x", 3.0), T0);
    ex.apply(Update::Counter("api.hits;region=eu;bad-tag=x", 0.0), T0);
    ex.apply(Update::Counter("api.hits;region=us", 2.0), T0);
    ex.apply(Update::Gauge("queue.depth", 7.5), T0);
    let p = page(&mut ex, T0);
    assert!(p.contains("# TYPE api_hits counter\n"), "{p}");
    assert_eq!(value(&p, "api_hits{bad_tag=\"x\",region=\"eu\"}"), 3.0);
    ex.apply(
        Update::Counter("api.hits;region=eu;bad-tag=x", 4.0),
        T0 + 10_000,
    );
    ex.apply(Update::Counter("api.hits;region=us", -1.0), T0 + 10_000);
    ex.apply(Update::Gauge("queue.depth", 2.0), T0 + 10_000);
    let p = page(&mut ex, T0 + 10_000);
    assert_eq!(value(&p, "api_hits{bad_tag=\"x\",region=\"eu\"}"), 7.0);
    // A negative sum is dropped and counted; the series keeps its count.
    assert_eq!(value(&p, "api_hits{region=\"us\"}"), 2.0);
    assert_eq!(
        value(
            &p,
            "statsd_exporter_events_error_total{reason=\"illegal_negative_counter\"}"
        ),
        1.0
    );
    assert_eq!(value(&p, "queue_depth"), 2.0);
    assert_eq!(value(&p, "statsd_exporter_events_unmapped_total"), 7.0);
    assert_eq!(
        value(&p, "statsd_exporter_metrics_total{type=\"counter\"}"),
        2.0
    );
}

#[test]
fn timers_are_seconds_in_histograms_weighted_by_sample_rate() {
    let m = Mapper::parse(
        "mappings:\n- match: \"rpc.*\"\n  name: rpc_seconds\n  labels: {method: \"$1\"}\n  observer_type: histogram\n  buckets: [0.01, 0.1, 1]\n",
    )
    .expect("rules");
    let mut ex = Exporter::new(m, 1 << 20);
    // Two timings at sample rate 0.5: a count of 4.
    ex.apply(
        Update::Timer("rpc.get", &[5.0, 50.0], &[(0, 2.0), (1, 2.0)]),
        T0,
    );
    ex.apply(Update::Timer("rpc.get", &[2000.0], &[]), T0 + 10_000);
    let p = page(&mut ex, T0 + 10_000);
    let get = |s: &str| value(&p, &format!("rpc_seconds_{s}"));
    assert_eq!(get("bucket{method=\"get\",le=\"0.01\"}"), 2.0);
    assert_eq!(get("bucket{method=\"get\",le=\"0.1\"}"), 4.0);
    assert_eq!(get("bucket{method=\"get\",le=\"1\"}"), 4.0);
    assert_eq!(get("bucket{method=\"get\",le=\"+Inf\"}"), 5.0);
    assert_eq!(get("count{method=\"get\"}"), 5.0);
    assert!((get("sum{method=\"get\"}") - (0.005 * 2.0 + 0.05 * 2.0 + 2.0)).abs() < 1e-12);
}

#[test]
fn summaries_are_within_one_percent_over_their_window() {
    let mut ex = Exporter::new(Mapper::default(), 1 << 20);
    let values: Vec<f64> = (1..=1000).map(|i| f64::from(i) * 1.7).collect();
    ex.apply(Update::Timer("db.query", &values, &[]), T0);
    let p = page(&mut ex, T0 + 1000);
    assert!(p.contains("# TYPE db_query summary\n"), "{p}");
    for (q, exact) in [("0.5", 0.850), ("0.9", 1.530), ("0.99", 1.683)] {
        let v = value(&p, &format!("db_query{{quantile=\"{q}\"}}"));
        assert!(
            (v - exact).abs() / exact < 0.011,
            "q{q}: {v} against {exact}"
        );
    }
    assert_eq!(value(&p, "db_query_count"), 1000.0);
    // Ten minutes on, the window is empty; the count and sum stay.
    let p = page(&mut ex, T0 + 601_000);
    assert_eq!(
        p.lines()
            .find(|l| l.starts_with("db_query{quantile=\"0.5\"}")),
        Some("db_query{quantile=\"0.5\"} NaN")
    );
    assert_eq!(value(&p, "db_query_count"), 1000.0);
}

#[test]
fn rules_type_drop_label_and_conflict() {
    let m = Mapper::parse(
        r#"
mappings:
- match: "web.*.hits"
  match_metric_type: counter
  name: web_hits
  labels: {site: "$1", region: "rule"}
- match: "web.*.hits"
  match_metric_type: gauge
  name: web_hits
- match: "keep.*"
  honor_labels: true
  name: kept
  labels: {region: "rule"}
- match: "junk.*"
  action: drop
  name: junk
"#,
    )
    .expect("rules");
    let mut ex = Exporter::new(m, 1 << 20);
    ex.apply(Update::Counter("web.a.hits;region=eu", 1.0), T0);
    ex.apply(Update::Gauge("web.a.hits", 5.0), T0);
    ex.apply(Update::Gauge("keep.x;region=eu", 1.0), T0);
    ex.apply(Update::Counter("junk.x", 1.0), T0);
    let p = page(&mut ex, T0);
    // The rule's label wins over the tag, unless honor_labels.
    assert_eq!(value(&p, "web_hits{region=\"rule\",site=\"a\"}"), 1.0);
    assert_eq!(value(&p, "kept{region=\"eu\"}"), 1.0);
    assert_eq!(
        value(&p, "statsd_exporter_events_conflict_total{type=\"gauge\"}"),
        1.0
    );
    assert_eq!(
        value(&p, "statsd_exporter_events_actions_total{action=\"drop\"}"),
        1.0
    );
    assert_eq!(value(&p, "statsd_exporter_loaded_mappings"), 4.0);
    assert!(!p.contains("junk"), "{p}");
    // A counter named like a summary's _count is refused too.
    ex.apply(Update::Timer("lat", &[1.0], &[]), T0);
    ex.apply(Update::Counter("lat_count", 1.0), T0);
    let p = page(&mut ex, T0);
    assert!(!p.contains("# TYPE lat_count"), "{p}");
    assert!(p.contains("lat{quantile=\"0.5\"} 0.001\n"), "{p}");
    assert_eq!(
        value(
            &p,
            "statsd_exporter_events_conflict_total{type=\"counter\"}"
        ),
        1.0
    );
}

#[test]
fn ttl_expires_idle_series_and_max_bytes_bounds_new_ones() {
    let m = Mapper::parse("defaults:\n  ttl: 30s\nmappings: []\n").expect("rules");
    let mut ex = Exporter::new(m, 64 << 10);
    ex.apply(Update::Gauge("a", 1.0), T0);
    ex.apply(Update::Gauge("b", 1.0), T0 + 20_000);
    ex.expire(T0 + 31_000);
    let p = page(&mut ex, T0 + 31_000);
    assert!(!p.contains("\na 1\n") && p.contains("\nb 1\n"), "{p}");
    let mut n = 0;
    while ex.counts.full == 0 && n < 10_000 {
        ex.apply(Update::Gauge(&format!("g{n};k=v"), 1.0), T0 + 31_000);
        n += 1;
    }
    assert!(ex.counts.full == 1 && n > 50, "{n} series");
    assert!(ex.bytes() <= 64 << 10);
    // Expiring frees room for new series.
    ex.expire(T0 + 100_000);
    assert_eq!((ex.len(), ex.bytes()), (0, 0));
    ex.apply(Update::Gauge("c", 1.0), T0 + 100_000);
    assert_eq!(ex.len(), 1);
}

#[test]
fn each_timing_keeps_its_own_sample_rate() {
    let m = Mapper::parse(
        "mappings:\n- match: \"h.*\"\n  name: h\n  observer_type: histogram\n  buckets: [0.01]\n",
    )
    .expect("rules");
    let mut ex = Exporter::new(m, 1 << 20);
    // 1 ms at rate 1 and 1000 ms at rate 0.01, in one flush.
    ex.apply(Update::Timer("h.x", &[1.0, 1000.0], &[(1, 100.0)]), T0);
    let p = page(&mut ex, T0);
    assert_eq!(value(&p, "h_bucket{le=\"0.01\"}"), 1.0);
    assert_eq!(value(&p, "h_bucket{le=\"+Inf\"}"), 101.0);
    assert!((value(&p, "h_sum") - 100.001).abs() < 1e-9, "{p}");
    // A sample rate of 0 (weight inf) counts 1, as statsd_exporter reads it.
    ex.apply(Update::Timer("h.x", &[1.0], &[(0, f64::INFINITY)]), T0);
    assert_eq!(value(&page(&mut ex, T0), "h_count"), 102.0);
}

#[test]
fn values_that_are_not_finite_are_dropped_and_counted() {
    let mut ex = Exporter::new(Mapper::default(), 1 << 20);
    ex.apply(Update::Timer("t", &[f64::INFINITY, 5.0, f64::NAN], &[]), T0);
    ex.apply(Update::Timer("u", &[f64::INFINITY], &[]), T0);
    ex.apply(Update::Counter("c", f64::INFINITY), T0);
    ex.apply(Update::Counter("c", 2.0), T0);
    let p = page(&mut ex, T0);
    assert_eq!(value(&p, "t_count"), 1.0);
    assert_eq!(value(&p, "c"), 2.0);
    assert!(!p.contains("\nu_count"), "{p}");
    assert_eq!(
        value(
            &p,
            "statsd_exporter_events_error_total{reason=\"illegal_value\"}"
        ),
        4.0
    );
    // A scale that overflows is the same.
    let m =
        Mapper::parse("mappings:\n- match: \"s.*\"\n  name: s\n  scale: 1e300\n").expect("rules");
    let mut ex = Exporter::new(m, 1 << 20);
    ex.apply(Update::Timer("s.x", &[1e12], &[]), T0);
    assert!(!page(&mut ex, T0).contains("\ns_count"));
}

#[test]
fn the_servers_own_names_are_its_own_and_text_families_may_neighbour() {
    let mut ex = Exporter::new(Mapper::default(), 1 << 20);
    ex.apply(Update::Gauge("statsd_exporter_loaded_mappings", 42.0), T0);
    ex.apply(Update::Counter("foo_total", 1.0), T0);
    ex.apply(Update::Gauge("foo", 2.0), T0);
    let p = page(&mut ex, T0);
    assert_eq!(value(&p, "statsd_exporter_loaded_mappings"), 0.0);
    assert_eq!(
        value(&p, "statsd_exporter_events_conflict_total{type=\"gauge\"}"),
        1.0
    );
    // Two families in the text format (statsd_exporter serves both).
    assert_eq!((value(&p, "foo_total"), value(&p, "foo")), (1.0, 2.0));
    assert_eq!(
        value(&p, "statsd_exporter_events_error_total{reason=\"refused\"}"),
        0.0
    );
}

#[test]
fn a_ttl_under_a_millisecond_is_not_for_ever() {
    let m = Mapper::parse("defaults:\n  ttl: 500us\nmappings: []\n").expect("rules");
    let mut ex = Exporter::new(m, 1 << 20);
    ex.apply(Update::Gauge("g", 1.0), T0);
    ex.expire(T0 + 1);
    assert!(ex.is_empty());
}
