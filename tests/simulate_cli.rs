//! The README's `quench simulate` example, run with the real `quench` binary: its output must
//! equal `examples/simulate.expected.jsonl`, and the README must show exactly that output, so
//! neither the example nor the documentation can drift from what quench does.
//!
//! After an intended change of behaviour, regenerate the expected file with
//! `QUENCH_BLESS=1 cargo test --test simulate_cli` and paste it into the README.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Run `quench simulate --config examples/quench.toml examples/simulate.jsonl` from the
/// workspace root, as the README does.
fn simulate() -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_quench"))
        .current_dir(root())
        .args([
            "simulate",
            "--config",
            "examples/quench.toml",
            "examples/simulate.jsonl",
        ])
        .env_remove("QUENCH_LOG")
        .output()
        .expect("the quench binary runs");
    assert!(
        output.status.success(),
        "quench simulate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "the example has no bad lines, so nothing on stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

#[test]
fn example_output_is_the_expected_file() {
    let actual = simulate();
    let expected_path = root().join("examples/simulate.expected.jsonl");
    if std::env::var_os("QUENCH_BLESS").is_some() {
        std::fs::write(&expected_path, &actual).expect("writing the expected file");
    }
    let expected = std::fs::read_to_string(&expected_path).expect("the expected file exists");
    let input = std::fs::read_to_string(root().join("examples/simulate.jsonl")).unwrap();
    assert_eq!(
        actual.lines().count(),
        input.lines().filter(|l| !l.trim().is_empty()).count(),
        "one answer line per input line"
    );
    for (n, (a, e)) in actual.lines().zip(expected.lines()).enumerate() {
        assert_eq!(
            a,
            e,
            "line {} differs (QUENCH_BLESS=1 regenerates the file after an intended change)",
            n + 1
        );
    }
    assert_eq!(actual, expected);
}

#[test]
fn readme_shows_the_exact_output() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let expected =
        std::fs::read_to_string(root().join("examples/simulate.expected.jsonl")).unwrap();
    let command =
        "cargo run --release -- simulate --config examples/quench.toml examples/simulate.jsonl";
    assert!(
        readme.contains(command),
        "the README shows the command `{command}`"
    );
    let block = format!("```json\n{expected}```\n");
    assert!(
        readme.contains(&block),
        "the README's output block must be examples/simulate.expected.jsonl, verbatim"
    );
    let input = std::fs::read_to_string(root().join("examples/simulate.jsonl")).unwrap();
    assert!(
        readme.contains(&format!("```json\n{input}```\n")),
        "the README shows examples/simulate.jsonl, verbatim"
    );
}

#[test]
fn every_input_line_of_the_example_is_documented_by_the_story() {
    // The example is a story; make sure it still tells it (a cheap guard against someone
    // editing the input without looking at the answers).
    let actual = simulate();
    let answers: Vec<serde_json::Value> = actual
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect();
    let get = |i: usize, key: &str| answers[i][key].clone();
    assert_eq!(get(0, "verdict"), "accept", "normal sending");
    assert_eq!(get(2, "verdict"), "accept");
    assert_eq!(
        get(3, "change"),
        "started",
        "the compromised account crosses its limit"
    );
    assert_eq!(
        get(4, "reply"),
        "550 5.1.8 Access denied, bad outbound sender",
        "refused afterwards"
    );
    assert_eq!(get(5, "unblock"), "denied", "a reader role may not unblock");
    assert_eq!(get(6, "unblock"), "ok", "an admin unblocks");
    assert_eq!(get(7, "verdict"), "accept", "sending again");
}
