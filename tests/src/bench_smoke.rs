//! The bench command's smoke run as a test: `gridsync-bench --smoke` prints
//! one JSON line for every scenario, and the evening and backlog syncs stay
//! within their request budgets (one request per phone; at most three for
//! a month's backlog). Shared by the SQLite run (in the e2e binary) and the
//! PostgreSQL one (a binary of its own, so its load does not overlap the
//! e2e suite's timing-sensitive tests and PostgreSQL feeds).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// Run the smoke bench `bin` with `extra` arguments, check every
/// scenario's line, and return the machine line. Panics with what is
/// missing.
pub fn run(bin: &str, extra: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(bin).arg("--smoke").args(extra).env("RUST_LOG", "warn").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let get = |name: &str| {
        lines.iter().find(|v| v["scenario"] == name).unwrap_or_else(|| panic!("no {name} line in {lines:?}")).clone()
    };
    for s in [
        "evening",
        "backlog_30_days",
        "supervisor_pull",
        "weak_link_backlog",
        "attachments",
        "merge_throughput",
        "attack",
        "hostile_mix",
        "client_create",
        "client_update",
        "client_list",
        "client_open",
        "signatures",
    ] {
        get(s);
    }
    assert_eq!(get("evening")["max_requests_per_device"], 1);
    let mix = get("hostile_mix");
    assert_eq!(mix["honest_failed"], 0, "{mix}");
    assert!(mix["statuses"]["relay 429"].as_u64().unwrap_or(0) > 0, "the relay budget refused nothing: {mix}");
    assert!(get("backlog_30_days")["requests"].as_u64().unwrap() <= 3);
    assert_eq!(get("weak_link_backlog")["outbox_left"], 0);
    assert_eq!(get("merge_throughput")["failed_syncs"], 0);
    if get("machine")["machine"]["database"] == "postgresql" {
        let two = get("merge_throughput_two_nodes");
        assert_eq!((two["server_nodes"].as_u64(), two["failed_syncs"].as_u64()), (Some(2), Some(0)), "{two}");
        assert!(two["changes"].as_u64().unwrap() > 0, "{two}");
    }
    let a = get("attachments");
    assert!(
        a["records_on_server_s"].as_f64().unwrap() < a["photos_on_server_s"].as_f64().unwrap(),
        "records go before photos: {a}"
    );
    assert!(get("signatures")["changes"].as_u64().unwrap() > 0);
    for s in ["evening", "backlog_30_days", "supervisor_pull"] {
        let v = get(s);
        assert!(v["bytes_up"].as_u64().unwrap() + v["bytes_down"].as_u64().unwrap() > 0, "{s}: bytes measured");
    }
    get("machine")
}
