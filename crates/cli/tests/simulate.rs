//! `sportello simulate`: a supervisor's staffing what-if, as a table and as JSON.

use std::process::Command;

fn staffing_example() -> String {
    format!(
        "{}/../../config/staffing.example.toml",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn simulates_the_example_week_as_table_and_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_sportello"))
        .args(["simulate", "--staffing", &staffing_example()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("front_office") && table.contains("Erlang C"),
        "{table}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_sportello"))
        .args(["simulate", "--json", "--staffing", &staffing_example()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    let text = v.to_string();
    assert!(
        text.contains("front_office") && text.contains("back_office"),
        "{text}"
    );
    // The same seed gives the same figures.
    let again = Command::new(env!("CARGO_BIN_EXE_sportello"))
        .args(["simulate", "--json", "--staffing", &staffing_example()])
        .output()
        .unwrap();
    assert_eq!(out.stdout, again.stdout);
}

#[test]
fn a_broken_staffing_file_is_named() {
    let dir = std::env::temp_dir().join(format!("sportello-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.toml");
    std::fs::write(&f, "days = [\"someday\"]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sportello"))
        .args(["simulate", "--staffing", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
