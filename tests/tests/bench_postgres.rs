//! The bench on PostgreSQL, the database a province runs on: the
//! documented `gridsync-bench --postgres URL` runs every scenario to its end
//! (it used to panic calling the blocking client from async code). A test
//! binary of its own: run alongside the e2e suite, its load on the shared
//! PostgreSQL cluster held back the feed horizon of the e2e's PostgreSQL
//! tests and starved its timing-sensitive ones.

#[test]
#[ignore = "needs PostgreSQL: set GRIDSYNC_TEST_POSTGRES_URL and run with --include-ignored"]
fn bench_smoke_run_on_postgresql_prints_every_scenario() {
    let url =
        std::env::var("GRIDSYNC_TEST_POSTGRES_URL").expect("this test needs GRIDSYNC_TEST_POSTGRES_URL (see README)");
    let machine = gridsync_tests::bench_smoke::run(env!("CARGO_BIN_EXE_gridsync-bench"), &["--postgres", &url]);
    assert_eq!(machine["machine"]["database"], "postgresql");
}
