//! The bench command keeps working: a smoke run with small sizes.

/// An operator running `gridsync-bench --smoke` gets one JSON line for every
/// scenario, and the evening and backlog syncs stay within their request
/// budgets (one request per phone; at most three for a month's backlog).
#[test]
fn bench_smoke_run_prints_every_scenario() {
    let machine = gridsync_tests::bench_smoke::run(env!("CARGO_BIN_EXE_gridsync-bench"), &[]);
    assert_eq!(machine["machine"]["database"], "sqlite");
}
