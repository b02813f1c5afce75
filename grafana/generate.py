#!/usr/bin/env python3
"""Writes grafana/dashboards/*.json (run after editing; the JSON is what Grafana loads and
what the tests parse). Stable uids: platform-overview, platform-node."""
import json, os

DS = {"type": "prometheus", "uid": "platform-prometheus"}
HERE = os.path.dirname(os.path.abspath(__file__))


def panel(pid, title, exprs, x, y, unit="short", w=12, h=8, legend=None):
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": e, "legendFormat": lf}
            for i, (e, lf) in enumerate(exprs)
        ],
    }


def dashboard(uid, title, panels, multi):
    return {
        "uid": uid,
        "title": title,
        "tags": ["platform"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "instance",
                    "label": "validator",
                    "type": "query",
                    "datasource": DS,
                    "query": {"query": "label_values(platform_build_info, instance)", "refId": "instance"},
                    "definition": "label_values(platform_build_info, instance)",
                    "refresh": 2,
                    "multi": multi,
                    "includeAll": multi,
                    "current": {},
                }
            ]
        },
        "panels": [dict(p, id=i + 1) for i, p in enumerate(panels)],
    }


I = '{instance=~"$instance"}'


IN = '{instance=~"$instance",direction="in"}'


def grid(specs):
    out = []
    for n, s in enumerate(specs):
        out.append(panel(0, s[0], s[1], (n % 2) * 12, (n // 2) * 8, *s[2:]))
    return out


overview = grid([
    ("Evaluations/s by challenge and outcome",
     [(f"sum by (challenge, outcome) (rate(platform_engine_evaluations_total{I}[1m]))", "{{challenge}} {{outcome}}")], "ops"),
    ("Evaluation latency (p50, p99)",
     [(f"histogram_quantile(0.5, sum by (le, challenge) (rate(platform_engine_evaluation_duration_seconds_bucket{I}[5m])))", "p50 {{challenge}}"),
      (f"histogram_quantile(0.99, sum by (le, challenge) (rate(platform_engine_evaluation_duration_seconds_bucket{I}[5m])))", "p99 {{challenge}}")], "s"),
    ("Fuel consumed/s by challenge",
     [(f"sum by (challenge) (rate(platform_engine_fuel_consumed_total{I}[1m]))", "{{challenge}}")]),
    ("Queue depth per shard",
     [(f"platform_engine_queue_depth{I}", "{{instance}} shard {{shard}}")]),
    ("Evaluation work held: time to drain it (busy above settle / 2)",
     [(f"platform_engine_outstanding_drain_seconds{I}", "{{instance}}")], "s"),
    ("Ready pooled instances per shard",
     [(f"platform_engine_pool_ready_instances{I}", "{{instance}} shard {{shard}}")]),
    ("Miner submissions/s by result",
     [(f"sum by (result) (rate(platform_engine_ingress_submissions_total{I}[1m]))", "{{result}}")], "ops"),
    ("Consensus height and committed epoch",
     [(f"platform_consensus_height{I}", "height {{instance}}"),
      (f"platform_consensus_committed_epoch{I} - scalar(min(platform_consensus_epoch{I}))", "committed epoch − current {{instance}}")]),
    ("View changes/min",
     [(f"sum by (instance) (rate(platform_consensus_view_changes_total{I}[5m])) * 60", "{{instance}}")]),
    ("Commit latency after epoch end (p50, p99)",
     [(f"histogram_quantile(0.5, sum by (le) (rate(platform_consensus_commit_latency_seconds_bucket{I}[15m])))", "p50"),
      (f"histogram_quantile(0.99, sum by (le) (rate(platform_consensus_commit_latency_seconds_bucket{I}[15m])))", "p99")], "s"),
    ("Peers by role",
     [(f"sum by (instance, role) (platform_net_peers{I})", "{{instance}} {{role}}")]),
    ("Inbound messages/s by verdict",
     [("sum by (verdict) (rate(platform_net_messages_total" + IN + "[1m]))", "{{verdict}}")], "ops"),
    ("Weights submitted and chain errors (per hour)",
     [(f"sum by (result) (increase(platform_chain_weight_submissions_total{I}[1h]))", "{{result}}")]),
    ("Flagged reports (per hour)",
     [(f"sum by (instance) (increase(platform_consensus_flagged_reports_total{I}[1h]))", "{{instance}}")]),
    ("Resident memory",
     [(f"platform_process_resident_memory_bytes{I}", "{{instance}}")], "bytes"),
])

node = grid([
    ("CPU (cores)", [(f"rate(platform_process_cpu_seconds_total{I}[1m])", "cpu")]),
    ("Resident memory (now, peak)",
     [(f"platform_process_resident_memory_bytes{I}", "rss"), (f"platform_process_resident_memory_max_bytes{I}", "peak")], "bytes"),
    ("Threads and open files",
     [(f"platform_process_threads{I}", "threads"), (f"platform_process_open_fds{I}", "fds")]),
    ("Store files", [(f"platform_store_file_bytes{I}", "{{file}}")], "bytes"),
    ("Audit records/s and store errors/s",
     [(f"rate(platform_store_audit_records_total{I}[1m])", "audit records"), (f"rate(platform_store_errors_total{I}[5m])", "errors")], "ops"),
    ("Store write time (commit + fsync, writer thread)",
     [(f"histogram_quantile(0.5, sum by (le) (rate(platform_store_write_seconds_bucket{I}[5m])))", "p50"),
      (f"histogram_quantile(0.99, sum by (le) (rate(platform_store_write_seconds_bucket{I}[5m])))", "p99")], "s"),
    ("Rows deleted by retention/s (older than node.retain_epochs)",
     [(f"sum by (kind) (rate(platform_store_pruned_rows_total{I}[5m]))", "{{kind}}")], "ops"),
    ("Evaluations/s by outcome",
     [(f"sum by (outcome) (rate(platform_engine_evaluations_total{I}[1m]))", "{{outcome}}")], "ops"),
    ("Inline instantiations/s per shard (pool misses)",
     [(f"rate(platform_engine_inline_instantiations_total{I}[1m])", "shard {{shard}}")], "ops"),
    ("Engine rejections/s by reason",
     [(f"sum by (reason) (rate(platform_engine_submissions_rejected_total{I}[1m]))", "{{reason}}")], "ops"),
    ("Host calls/s by function",
     [(f"sum by (function) (rate(platform_engine_host_calls_total{I}[1m]))", "{{function}}")], "ops"),
    ("Module cache lookups (per hour)",
     [(f"sum by (result) (increase(platform_engine_module_cache_total{I}[1h]))", "{{result}}")]),
    ("Consensus view", [(f"platform_consensus_view{I}", "view")]),
    ("Decisions/min and batches published/min",
     [(f"rate(platform_consensus_decisions_total{I}[5m]) * 60", "decisions"),
      (f"rate(platform_consensus_batches_published_total{I}[5m]) * 60", "batches")]),
    ("Misbehaviour and refused registry changes (per hour)",
     [(f"increase(platform_consensus_misbehaviour_total{I}[1h])", "equivocations"),
      (f"sum by (reason) (increase(platform_consensus_registry_changes_refused_total{I}[1h]))", "registry {{reason}}")]),
    ("Net rejections/s by reason",
     [(f"sum by (reason) (rate(platform_net_rejected_total{I}[1m]))", "{{reason}}")], "ops"),
    ("Net bytes/s by topic and direction",
     [(f"sum by (topic, direction) (rate(platform_net_message_bytes_total{I}[1m]))", "{{topic}} {{direction}}")], "Bps"),
    ("Gossip duplicates/s and invalid/s by topic (dropped inside gossipsub)",
     [(f'sum by (topic) (rate(platform_net_gossip_received_total{{instance=~"$instance",copies="all"}}[1m]))'
       f' - sum by (topic) (rate(platform_net_gossip_received_total{{instance=~"$instance",copies="first"}}[1m]))',
       "{{topic}} duplicates"),
      (f"sum by (topic) (rate(platform_net_gossip_invalid_total{I}[1m]))", "{{topic}} invalid")], "ops"),
    ("Requests/s and DHT operations/s",
     [(f"sum by (kind, outcome) (rate(platform_net_requests_total{I}[1m]))", "rpc {{kind}} {{outcome}}"),
      (f"sum by (op, outcome) (rate(platform_net_dht_operations_total{I}[1m]))", "dht {{op}} {{outcome}}")], "ops"),
    ("Bans, dropped events, slow-peer drops (per hour)",
     [(f"increase(platform_net_bans_total{I}[1h])", "bans"),
      (f"increase(platform_net_events_dropped_total{I}[1h])", "events dropped"),
      (f"increase(platform_net_slow_peer_drops_total{I}[1h])", "slow peers")]),
    ("Chain block", [(f"platform_chain_block{I}", "block")]),
])

for name, d in [("overview", dashboard("platform-overview", "Platform — overview", overview, True)),
                ("node", dashboard("platform-node", "Platform — validator", node, False))]:
    with open(os.path.join(HERE, "dashboards", name + ".json"), "w") as f:
        json.dump(d, f, indent=2)
        f.write("\n")
