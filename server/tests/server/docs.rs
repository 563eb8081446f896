//! Docs that cannot drift silently: the tables in `docs/` that restate the
//! code (the limits with their flags and defaults, the phone API's routes,
//! its error codes) are read and checked against the code. Change a
//! default, add a route or an error code in the code only, and one of
//! these fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The rows of the Markdown table whose header row starts with `header`,
/// each as its cells (trimmed).
fn table(md: &str, header: &str) -> Vec<Vec<String>> {
    let mut lines = md.lines().skip_while(|l| !l.starts_with(header));
    assert!(lines.next().is_some(), "no table headed `{header}`");
    lines
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.trim().trim_matches('|').split(" | ").map(|c| c.trim().to_owned()).collect())
        .collect()
}

/// Every `--flag` in `text`.
fn flags_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("`--") {
        let start = i + at + 1;
        let end = start + 2 + b[start + 2..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'-').count();
        out.push(text[start..end].to_owned());
        i = end;
    }
    out
}

/// Every Rust source file under `dir`.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(sources(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push((p.clone(), std::fs::read_to_string(&p).unwrap()));
        }
    }
    out
}

/// The flags of `serve` that bound what a request or a phone may take,
/// and so belong in the limits table (the rest set where the server runs).
const NOT_LIMITS: &[&str] = &[
    "--listen",
    "--demo",
    "--workers",
    "--data-dir",
    "--database-url",
    "--log-json",
    "--map-tiles",
    "--map-attribution",
    "--help",
    "--version",
];

#[test]
fn the_limits_table_names_every_limit_flag_with_its_default() {
    let ops = read("docs/operations.md");
    let rows = table(&ops, "| limit | default | flag (env) |");
    let code: BTreeMap<String, Option<String>> = gridsync_server::cli::serve_flags().into_iter().collect();
    let mut documented = BTreeSet::new();
    let mut wrong = Vec::new();
    for row in &rows {
        let (default, flag_cell) = (&row[1], &row[2]);
        for flag in flags_in(flag_cell) {
            let Some(code_default) = code.get(&flag) else {
                wrong.push(format!("docs/operations.md names {flag}, which `serve` does not take"));
                continue;
            };
            if let Some(d) = code_default.as_deref().filter(|d| *d != "0") {
                let shown = default.replace(',', "");
                if !shown.split(|c: char| !c.is_ascii_digit()).any(|n| n == d) {
                    wrong.push(format!("{flag}: the code's default is {d}, docs/operations.md says `{default}`"));
                }
            }
            documented.insert(flag);
        }
    }
    for flag in code.keys().filter(|f| !NOT_LIMITS.contains(&f.as_str()) && !documented.contains(*f)) {
        wrong.push(format!("`serve {flag}` is missing from docs/operations.md's limits table"));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_endpoint_table_names_every_phone_route() {
    let protocol = read("docs/protocol.md");
    let rows = table(&protocol, "| method, path | body | answer |");
    let documented: BTreeSet<String> = rows
        .iter()
        .filter_map(|r| r[0].strip_prefix('`')?.split('`').next().map(|s| s.split('?').next().unwrap_or(s).to_owned()))
        .collect();
    let lib = read("server/src/lib.rs");
    let mut routes = BTreeSet::new();
    for part in lib.split(".route(\"").skip(1) {
        let path = &part[..part.find('"').unwrap()];
        let method = part.split("web::").nth(1).and_then(|m| m.split('(').next()).unwrap().to_uppercase();
        if path.starts_with("/v1/") || path == "/healthz" || path == "/metrics" {
            routes.insert(format!("{method} {path}"));
        }
    }
    assert!(routes.len() >= 10, "read the routes from lib.rs: {routes:?}");
    for r in &routes {
        assert!(documented.contains(r), "route `{r}` is missing from docs/protocol.md's endpoint table");
    }
    for d in documented.iter().filter(|d| d.contains(" /v1/") || d.ends_with("/healthz") || d.ends_with("/metrics")) {
        assert!(routes.contains(d), "docs/protocol.md lists `{d}`, which the server does not route");
    }
}

#[test]
fn the_error_table_names_every_code_the_phone_api_sends() {
    let protocol = read("docs/protocol.md");
    let errors = &protocol[protocol.find("## Errors").expect("an Errors section")..];
    let documented: BTreeSet<String> =
        table(errors, "| status | `error` |").iter().map(|r| r[1].trim_matches('`').to_owned()).collect();
    // The phone API's refusals: a status and then the code, as every
    // handler writes them (`error(StatusCode::…, "code", …)`).
    let mut sent = BTreeMap::new();
    for (path, text) in sources(&root().join("server/src")) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.components().any(|c| c.as_os_str() == "dashboard") || name.starts_with("reports") {
            continue; // the dashboard's pages and the reports API (its OpenAPI document) say theirs
        }
        for part in text.split("StatusCode::").skip(1) {
            let rest = part.trim_start_matches(|c: char| c.is_ascii_uppercase() || c == '_');
            let Some(rest) = rest.strip_prefix(',') else { continue };
            let Some(rest) = rest.trim_start().strip_prefix('"') else { continue };
            let code = &rest[..rest.find('"').unwrap()];
            if code.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                sent.insert(code.to_owned(), name.clone());
            }
        }
    }
    assert!(sent.len() >= 15, "read the codes from server/src: {sent:?}");
    let missing: Vec<String> = sent
        .iter()
        .filter(|(code, _)| !documented.contains(*code))
        .map(|(code, file)| format!("`{code}` (sent in {file}) is missing from docs/protocol.md's error table"))
        .collect();
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
