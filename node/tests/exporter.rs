//! The `/metrics` endpoint over a real socket: the Prometheus text format, explicit
//! histogram buckets, build info, and 404/405 for anything else.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use platform_node::exporter::Exporter;

fn get(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn metrics_are_served_in_the_prometheus_text_format() {
    let exporter = Exporter::install("127.0.0.1:0".parse().unwrap()).unwrap();
    metrics::counter!(platform_engine::metrics::EVALUATIONS, "challenge" => "1", "outcome" => "scored")
        .increment(3);
    metrics::histogram!(platform_engine::metrics::EVALUATION_DURATION, "challenge" => "1")
        .record(0.000_02);
    let resp = get(exporter.addr(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(resp.contains("text/plain; version=0.0.4"));
    assert!(resp.contains("platform_build_info{version=\""), "{resp}");
    assert!(
        resp.contains("platform_engine_evaluations_total{challenge=\"1\",outcome=\"scored\"} 3"),
        "{resp}"
    );
    assert!(
        resp.contains("platform_engine_evaluation_duration_seconds_bucket{challenge=\"1\",le=\""),
        "histograms have buckets, not quantiles: {resp}"
    );
    assert!(!resp.contains("quantile="), "{resp}");

    assert!(get(exporter.addr(), "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(get(exporter.addr(), "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    assert!(get(exporter.addr(), "\u{0}\u{1}garbage\r\n\r\n").starts_with("HTTP/1.1 405"));
    // Still serving after garbage.
    assert!(get(exporter.addr(), "GET /metrics HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200"));
    assert!(exporter.render().contains("platform_build_info"));
}
