//! The bench command keeps working: a smoke run with small sizes.

/// An operator running `gridsync-bench --smoke` gets one JSON line for every
/// scenario, and the evening and backlog syncs stay within their request
/// budgets (one request per phone; at most three for a month's backlog).
#[test]
fn bench_smoke_run_prints_every_scenario() {
    smoke(&[]);
}

/// The same on PostgreSQL, the database a province runs on: the documented
/// `gridsync-bench --postgres URL` runs every scenario to its end (it used
/// to panic calling the blocking client from async code).
#[test]
#[ignore = "needs PostgreSQL: set GRIDSYNC_TEST_POSTGRES_URL and run with --include-ignored"]
fn bench_smoke_run_on_postgresql_prints_every_scenario() {
    let url =
        std::env::var("GRIDSYNC_TEST_POSTGRES_URL").expect("this test needs GRIDSYNC_TEST_POSTGRES_URL (see README)");
    let machine = smoke(&["--postgres", &url]);
    assert_eq!(machine["machine"]["database"], "postgresql");
}

/// Run the smoke bench with `extra` arguments, check every scenario's line,
/// and return the machine line.
fn smoke(extra: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gridsync-bench"))
        .arg("--smoke")
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
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
        "merge_throughput",
        "attack",
        "client_create",
        "client_update",
        "client_list",
        "client_open",
    ] {
        get(s);
    }
    assert_eq!(get("evening")["max_requests_per_device"], 1);
    assert!(get("backlog_30_days")["requests"].as_u64().unwrap() <= 3);
    assert_eq!(get("weak_link_backlog")["outbox_left"], 0);
    assert_eq!(get("merge_throughput")["failed_syncs"], 0);
    for s in ["evening", "backlog_30_days", "supervisor_pull"] {
        let v = get(s);
        assert!(v["bytes_up"].as_u64().unwrap() + v["bytes_down"].as_u64().unwrap() > 0, "{s}: bytes measured");
    }
    get("machine")
}
