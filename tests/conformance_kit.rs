//! The conformance kit (`quench policy check`) through the real sandbox and the real binary:
//! it passes on both real policies (the embedded default and the strict-ratio example), and
//! fails on each misbehaving fixture mode with the check that names the fault.

use quench::conformance::{KitOptions, Outcome, Report, run};
use quench::sandbox::{PolicySource, SandboxLimits};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Generous deadlines: the tests run in parallel on small machines; a real loop is caught
/// whatever the deadline.
fn limits(deadline_ms: u64) -> SandboxLimits {
    SandboxLimits {
        deadline_ms,
        ..SandboxLimits::default()
    }
}

fn options(source: PolicySource, config: &str, cases: usize, deadline_ms: u64) -> KitOptions {
    KitOptions {
        config: config.into(),
        limits: limits(deadline_ms),
        cases,
        ..KitOptions::new(source)
    }
}

fn outcome(report: &Report, id: &str) -> Outcome {
    report
        .check(id)
        .unwrap_or_else(|| panic!("no check {id} in:\n{report}"))
        .finding
        .outcome
}

fn strict_ratio() -> PolicySource {
    PolicySource::File(env!("QUENCH_TEST_GUEST_STRICT_RATIO").into())
}

fn misbehaving() -> PolicySource {
    PolicySource::File(env!("QUENCH_TEST_GUEST_MISBEHAVING").into())
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("conformance-kit-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const STRICT_RATIO_CONFIG: &str = "accepted_domains = [\"contoso.com\"]\nexternal_per_hour = 50\nmax_external_ratio = 2.5\nunblock_limit = 3\nunblock_window_days = 14\n";

#[test]
fn the_default_policy_passes_every_check() {
    let report = run(&options(PolicySource::Embedded, "", 500, 1_000));
    assert!(report.passed(), "{report}");
    for check in &report.checks {
        assert_eq!(check.finding.outcome, Outcome::Pass, "{report}");
    }
    assert_eq!(report.state_format.as_deref(), Some("quench-default/2"));
    let unblock = &report.check("unblock-limit").unwrap().finding.reason;
    assert!(unblock.contains("3 unblocks per 30 days"), "{unblock}");
}

#[test]
fn the_default_policy_passes_with_a_real_config() {
    let config = "accepted_domains = [\"contoso.com\"]\nunblock_limit = { count = 2, window_days = 7 }\n\n[[outbound]]\nname = \"Default\"\nrecipient_limit_external_per_hour = 100\naction_when_threshold_reached = \"BlockUser\"\n";
    let report = run(&options(PolicySource::Embedded, config, 200, 1_000));
    assert!(report.passed(), "{report}");
    let unblock = &report.check("unblock-limit").unwrap().finding;
    assert_eq!(unblock.outcome, Outcome::Pass, "{report}");
    assert!(unblock.reason.contains("2 unblocks per 7 days"), "{report}");
}

#[test]
fn strict_ratio_passes_every_check() {
    for config in ["", STRICT_RATIO_CONFIG] {
        let report = run(&options(strict_ratio(), config, 500, 1_000));
        assert!(report.passed(), "{report}");
        for check in &report.checks {
            assert_eq!(check.finding.outcome, Outcome::Pass, "{report}");
        }
        assert_eq!(
            report.state_format.as_deref(),
            Some("quench-strict-ratio/1")
        );
    }
}

#[test]
fn the_well_behaved_fixture_passes_what_it_can_and_skips_the_unblock_limit() {
    let report = run(&options(misbehaving(), "", 100, 200));
    assert!(report.passed(), "{report}");
    assert_eq!(outcome(&report, "unblock-limit"), Outcome::Skip, "{report}");
    assert!(
        report
            .check("unblock-limit")
            .unwrap()
            .finding
            .reason
            .contains("never restricted"),
        "{report}"
    );
}

/// Each whole-policy fault of the fixture fails the kit, at the check that names it.
fn fails_at(mode: &str, check: &str, reason: &str) {
    let config = format!("mode = \"{mode}\"\n");
    let report = run(&options(misbehaving(), &config, 100, 200));
    assert!(!report.passed(), "mode {mode} passed:\n{report}");
    let finding = &report.check(check).unwrap().finding;
    assert_eq!(finding.outcome, Outcome::Fail, "mode {mode}:\n{report}");
    assert!(
        finding.reason.contains(reason),
        "mode {mode}: {check} fails for another reason than {reason:?}:\n{report}"
    );
    assert!(
        !finding.reason.contains('\n'),
        "reasons are one line: {finding:?}"
    );
    // The fault is contained: the component contract itself still checks out.
    assert_eq!(outcome(&report, "contract"), Outcome::Pass, "{report}");
}

#[test]
fn a_trapping_policy_fails_total() {
    fails_at("trap", "total", "wasm trap");
}

#[test]
fn a_looping_policy_fails_total_at_the_deadline() {
    fails_at("loop", "total", "deadline");
}

#[test]
fn a_memory_bomb_fails_total() {
    fails_at("grow", "total", "growing memory");
}

#[test]
fn an_oversize_state_fails_total() {
    fails_at("oversize", "total", "max_state_bytes");
}

#[test]
fn a_refusal_without_a_reply_fails_total() {
    fails_at("noreply", "total", "without an SMTP reply");
}

#[test]
fn garbage_state_fails_the_round_trip() {
    fails_at("garbage", "state-round-trip", "is refused");
}

#[test]
fn an_instance_counter_fails_determinism() {
    fails_at("nondeterministic", "deterministic", "differs");
}

#[test]
fn accepting_unknown_keys_fails_config_errors() {
    fails_at("lax-config", "config-errors", "this_key_does_not_exist_xyz");
}

#[test]
fn unblocks_for_readers_fail_the_unblock_limit() {
    fails_at(
        "unlimited-unblocks",
        "unblock-limit",
        "GlobalReader may only read",
    );
}

#[test]
fn calling_a_state_that_still_refuses_idle_fails_idle() {
    fails_at("eager-idle", "idle", "idle says the state can go");
}

#[test]
fn a_bounce_that_is_no_dsn_fails_bounce() {
    fails_at("bad-bounce", "bounce", "expected multipart/report");
}

#[test]
fn a_core_module_fails_the_contract_and_nothing_else_runs() {
    let dir = scratch("core");
    let core = dir.join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let report = run(&options(PolicySource::File(core), "", 10, 200));
    assert_eq!(outcome(&report, "contract"), Outcome::Fail, "{report}");
    assert!(
        report
            .check("contract")
            .unwrap()
            .finding
            .reason
            .contains("componentize"),
        "{report}"
    );
    assert!(
        report
            .checks
            .iter()
            .all(|c| c.finding.outcome == Outcome::Fail),
        "{report}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

fn quench(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_quench"))
        .args(args)
        .output()
        .expect("quench runs")
}

#[test]
fn the_binary_passes_the_default_and_fails_a_trapping_policy_with_a_nonzero_exit() {
    let dir = scratch("cli");
    let default = dir.join("default.wasm");
    assert!(
        quench(&[
            "policy".as_ref(),
            "default".as_ref(),
            "--out".as_ref(),
            default.as_ref()
        ])
        .status
        .success()
    );
    let config = dir.join("quench.toml");
    std::fs::write(&config, "[sandbox]\ndeadline_ms = 1000\n").unwrap();
    let out = quench(&[
        "policy".as_ref(),
        "check".as_ref(),
        default.as_ref(),
        "--config".as_ref(),
        config.as_ref(),
        "--cases".as_ref(),
        "200".as_ref(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("8 checks: 8 passed, 0 failed, 0 skipped"),
        "{stdout}"
    );
    assert!(stdout.contains("PASS  unblock-limit"), "{stdout}");

    let trap = dir.join("trap.toml");
    std::fs::write(
        &trap,
        "[policy]\nmode = \"trap\"\n\n[sandbox]\ndeadline_ms = 200\n",
    )
    .unwrap();
    let misbehaving = Path::new(env!("QUENCH_TEST_GUEST_MISBEHAVING"));
    let out = quench(&[
        "policy".as_ref(),
        "check".as_ref(),
        misbehaving.as_ref(),
        "--config".as_ref(),
        trap.as_ref(),
        "--cases".as_ref(),
        "20".as_ref(),
        "--json".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let total = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "total")
        .expect("the total check");
    assert_eq!(total["outcome"], "FAIL", "{report:#}");
    assert!(
        total["reason"].as_str().unwrap().contains("wasm trap"),
        "{report:#}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn componentize_turns_the_core_module_into_the_component_the_build_makes() {
    // The build leaves strict-ratio's core module in its nested target directory.
    let component = Path::new(env!("QUENCH_TEST_GUEST_STRICT_RATIO"));
    let core = component
        .parent()
        .unwrap()
        .join("policy-target/wasm32-unknown-unknown/release/quench_strict_ratio_policy.wasm");
    let dir = scratch("componentize");
    let out = dir.join("strict_ratio.wasm");
    let run = quench(&[
        "policy".as_ref(),
        "componentize".as_ref(),
        core.as_ref(),
        "--out".as_ref(),
        out.as_ref(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(component).unwrap()
    );

    // A component is refused with a pointer to `check`.
    let again = quench(&[
        "policy".as_ref(),
        "componentize".as_ref(),
        out.as_ref(),
        "--out".as_ref(),
        dir.join("twice.wasm").as_ref(),
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already a component"));
    std::fs::remove_dir_all(&dir).ok();
}
