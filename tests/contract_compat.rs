//! The host keeps loading policies built against the previous contract, `quench:policy@0.1.0`
//! (`wit/compat/v0.1.0`), through the real sandbox: the fixture `tests/guests/v0_1` (the
//! default policy exported as 0.1.0) loads, decides, restricts, unblocks, describes and renders
//! bounces; a relay reaches it as a user and its restriction stays keyed as a relay; the
//! conformance kit passes it and names its version; a component exporting a version the host
//! does not know is refused, naming the versions it does.

use crate::common::{MONDAY_10AM, cache_dir};
use quench::conformance::{KitOptions, Outcome, run};
use quench::sandbox::{Allocation, ContractVersion, PolicySource, Sandbox};
use quench::service::Service;
use quench::{
    Action, BounceRequest, Entity, EntityKind, RestrictionChange, Role, Submission, UnblockError,
};
use quench_store::MemoryStore;
use std::process::Command;
use std::sync::Arc;

const CONFIG: &str = r#"
accepted_domains = ["contoso.com"]
[[outbound]]
name = "Default"
recipient_limit_external_per_hour = 2
action_when_threshold_reached = "BlockUser"
[[connectors]]
id = "scanner-relay"
client_addresses = ["192.0.2.10"]
recipient_limit_external_per_hour = 2
action_when_threshold_reached = "BlockUser"
"#;

fn v0_1_component() -> PolicySource {
    PolicySource::File(env!("QUENCH_TEST_GUEST_V0_1").into())
}

fn load(source: PolicySource) -> anyhow::Result<Sandbox> {
    Sandbox::builder()
        .source(source)
        .config(CONFIG)
        .allocation(Allocation::OnDemand)
        .cache_dir(cache_dir())
        .build()
}

fn v0_1_policy() -> Sandbox {
    load(v0_1_component()).expect("the 0.1.0 component loads")
}

/// Three external recipients at once: over the limit of 2, so the entity is restricted.
fn over_the_limit(entity: Entity) -> Submission {
    Submission {
        entity,
        sender: "app@contoso.com".into(),
        recipients: vec![
            "bob@fabrikam.com".into(),
            "carol@fabrikam.com".into(),
            "dave@fabrikam.com".into(),
        ],
        message_id: Some("Q-1".into()),
    }
}

#[test]
fn a_0_1_component_loads_decides_restricts_unblocks_describes_and_bounces() {
    let policy = v0_1_policy();
    assert_eq!(policy.contract_version(), ContractVersion::V0_1);
    // The fixture wraps the current default policy, so it writes the current state format.
    assert_eq!(policy.state_format(), "quench-default/2");
    assert_eq!(policy.connectors().len(), 1);
    assert_eq!(policy.connectors()[0].id, "scanner-relay");
    assert_eq!(policy.connectors()[0].client_addresses, ["192.0.2.10"]);

    let alice = Entity::user("alice@contoso.com");
    let one = Submission {
        recipients: vec!["bob@fabrikam.com".into()],
        ..over_the_limit(alice.clone())
    };
    let decision = policy.evaluate(&[], &one, MONDAY_10AM).expect("decides");
    assert_eq!(decision.verdict.action, Action::Accept);
    assert_eq!(decision.change, RestrictionChange::None);

    let decision = policy
        .evaluate(&[], &over_the_limit(alice.clone()), MONDAY_10AM)
        .expect("decides");
    assert_eq!(decision.verdict.action, Action::Reject);
    assert_eq!(
        decision.verdict.reply.as_ref().unwrap().line(),
        "550 5.1.8 Access denied, bad outbound sender"
    );
    assert_eq!(decision.change, RestrictionChange::Started);
    let restriction = decision.restriction.clone().expect("a restriction record");
    assert_eq!(restriction.entity, alice);
    assert_eq!(
        restriction.evidence.limit,
        "recipient_limit_external_per_hour"
    );
    assert_eq!(restriction.evidence.threshold, 2);
    assert!(
        decision.alerts.iter().all(|a| a.entity == alice),
        "{:?}",
        decision.alerts
    );
    let state = decision.state;

    let described = policy
        .describe(&state, &alice, MONDAY_10AM + 60)
        .expect("no fault")
        .expect("readable state")
        .expect("still restricted");
    assert_eq!(described.entity, alice);
    assert_eq!(described.evidence, restriction.evidence);

    let request = |role| quench::UnblockRequest {
        entity: alice.clone(),
        role,
        admin: "ops".into(),
        reason: "password reset".into(),
        grace: quench::UnblockGrace::RestOfDay,
    };
    let refused = policy
        .unblock(&state, &request(Role::GlobalReader), MONDAY_10AM + 60)
        .expect("no fault");
    assert!(
        matches!(
            refused,
            Err(UnblockError::RoleNotAllowed(Role::GlobalReader))
        ),
        "{refused:?}"
    );
    let granted = policy
        .unblock(
            &state,
            &request(Role::SecurityAdministrator),
            MONDAY_10AM + 60,
        )
        .expect("no fault")
        .expect("granted");
    assert_eq!(granted.lifted.entity, alice);
    assert_eq!(granted.unblocks_used, 1);
    assert!(!granted.recommendations.is_empty());
    let after = policy
        .describe(&granted.state, &alice, MONDAY_10AM + 61)
        .expect("no fault")
        .expect("readable state");
    assert!(after.is_none(), "{after:?}");

    let bounce = policy
        .render_bounce(&BounceRequest {
            reporting_mta: "mx1.contoso.com".into(),
            original_sender: "alice@contoso.com".into(),
            recipients: vec!["bob@fabrikam.com".into()],
            original_headers: "From: alice@contoso.com\r\nSubject: hi\r\n\r\n".into(),
            reply: decision.verdict.reply.clone().unwrap(),
            restriction: Some(restriction),
            arrival: MONDAY_10AM,
            now: MONDAY_10AM + 5,
            bounce_id: "b-1".into(),
        })
        .expect("renders");
    assert!(bounce.contains("multipart/report"), "{bounce}");
    assert!(bounce.contains("5.1.8"), "{bounce}");
    assert!(bounce.contains("Subject: hi"), "{bounce}");

    // A connector goes through unchanged.
    let connector = Entity::connector("scanner-relay");
    let decision = policy
        .evaluate(&[], &over_the_limit(connector.clone()), MONDAY_10AM)
        .expect("decides");
    assert_eq!(decision.restriction.expect("restricted").entity, connector);
    assert_eq!(
        policy
            .stats()
            .traps
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[test]
fn a_relay_reaches_a_0_1_policy_as_a_user_and_stays_keyed_as_a_relay() {
    let store = Arc::new(MemoryStore::new());
    let service = Service::new(v0_1_policy(), store.clone(), quench::FailAction::Open);
    let relay = Entity::relay("App@Contoso.com");
    let user = Entity::user("app@contoso.com");
    assert_eq!(relay.key(), "relay:app@contoso.com");

    let outcome = service.decide(&over_the_limit(relay.clone()), MONDAY_10AM);
    assert!(outcome.fault.is_none(), "{:?}", outcome.fault);
    let decision = outcome.decision;
    assert_eq!(decision.verdict.action, Action::Reject);
    assert_eq!(
        decision.verdict.reply.as_ref().unwrap().line(),
        "550 5.1.8 Access denied, bad outbound sender"
    );
    // The host's entity comes back, not the old policy's echo of it as a user...
    assert_eq!(decision.restriction.as_ref().unwrap().entity, relay);
    let restricted = decision
        .alerts
        .iter()
        .find(|a| a.name == "User restricted from sending email")
        .expect("a restricted alert");
    assert!(decision.alerts.iter().all(|a| a.entity == relay));
    // ...though the policy saw a user: a 0.2.0 policy would call it a "Relayed sender".
    assert!(
        restricted.summary.starts_with("User app@contoso.com"),
        "{}",
        restricted.summary
    );

    // Stored, indexed and listed under the relay's key; the user of the same address is apart.
    use quench_store::StateStore;
    assert!(store.get(&relay.key()).unwrap().is_some());
    assert!(store.get(&user.key()).unwrap().is_none());
    let listed = service.restrictions(MONDAY_10AM + 60).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].entity.key(), "relay:app@contoso.com");
    assert_eq!(listed[0].entity.kind, EntityKind::Relay);
    assert!(
        service
            .restriction(&user, MONDAY_10AM + 60)
            .unwrap()
            .is_none()
    );
    let user_mail = service.decide(
        &Submission {
            recipients: vec!["bob@fabrikam.com".into()],
            message_id: Some("Q-2".into()),
            ..over_the_limit(user.clone())
        },
        MONDAY_10AM + 60,
    );
    assert_eq!(user_mail.decision.verdict.action, Action::Accept);

    let granted = service
        .unblock(
            &relay,
            Role::SecurityAdministrator,
            "ops",
            "fixed the app",
            MONDAY_10AM + 120,
        )
        .unwrap()
        .expect("granted");
    assert_eq!(granted.lifted.entity, relay);
    assert!(service.restrictions(MONDAY_10AM + 121).unwrap().is_empty());

    // The same relay through the current default policy: it knows what a relay is.
    let current = quench::Sandbox::builder()
        .config(CONFIG)
        .allocation(Allocation::OnDemand)
        .cache_dir(cache_dir())
        .build()
        .unwrap();
    assert_eq!(current.contract_version(), ContractVersion::V0_2);
    let decision = current
        .evaluate(&[], &over_the_limit(relay.clone()), MONDAY_10AM)
        .unwrap();
    assert!(
        decision
            .alerts
            .iter()
            .any(|a| a.summary.starts_with("Relayed sender")),
        "{:?}",
        decision.alerts
    );
}

#[test]
fn quench_policy_check_passes_a_0_1_component_and_says_so() {
    // A generous deadline, as in tests/conformance_kit.rs: the kit's huge generated inputs in
    // an unoptimised test build on a loaded 2-core machine must not turn into a deadline.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("quench.toml");
    std::fs::write(&config, "[sandbox]\ndeadline_ms = 1000\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_quench"))
        .args(["policy", "check", "--cases", "100", "--json", "--config"])
        .arg(&config)
        .arg(env!("QUENCH_TEST_GUEST_V0_1"))
        .output()
        .expect("quench runs");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
    assert!(output.status.success(), "{report:#}");
    assert_eq!(report["contract"], "0.1.0", "{report:#}");
    for check in report["checks"].as_array().unwrap() {
        assert_eq!(check["outcome"], "PASS", "{report:#}");
    }
    let contract = &report["checks"][0];
    assert_eq!(contract["id"], "contract");
    assert!(
        contract["reason"]
            .as_str()
            .unwrap()
            .contains("implements contract 0.1.0"),
        "{report:#}"
    );

    // The text report names the version too.
    let output = Command::new(env!("CARGO_BIN_EXE_quench"))
        .args(["policy", "check", "--cases", "20", "--config"])
        .arg(&config)
        .arg(env!("QUENCH_TEST_GUEST_V0_1"))
        .output()
        .expect("quench runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("contract 0.1.0,"), "{text}");
}

/// The 0.1.0 fixture, relabelled as exporting `quench:policy/policy@<version>` (`version` as
/// long as `0.1.0`: the names keep their length, so the binary stays well-formed).
fn relabelled(version: &str) -> Vec<u8> {
    const NAME: &[u8] = b"quench:policy/policy@0.1.0";
    let name = format!("quench:policy/policy@{version}");
    assert_eq!(name.len(), NAME.len());
    let mut bytes = std::fs::read(env!("QUENCH_TEST_GUEST_V0_1")).unwrap();
    let mut replaced = 0;
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(NAME.len()).position(|w| w == NAME) {
        let start = at + found;
        bytes[start..start + NAME.len()].copy_from_slice(name.as_bytes());
        at = start + NAME.len();
        replaced += 1;
    }
    assert!(replaced > 0);
    bytes
}

#[test]
fn a_component_exporting_an_unknown_contract_version_is_refused_naming_the_known_ones() {
    let bytes = relabelled("9.0.0");
    let error = load(PolicySource::Bytes(bytes.clone()))
        .err()
        .expect("refused");
    let message = format!("{error:#}");
    for expected in [
        "quench:policy/policy@0.2.0",
        "quench:policy/policy@0.1.0",
        "it exports quench:policy/policy@9.0.0",
    ] {
        assert!(message.contains(expected), "{message}");
    }

    let report = run(&KitOptions {
        cases: 10,
        ..KitOptions::new(PolicySource::Bytes(bytes))
    });
    let contract = &report.check("contract").unwrap().finding;
    assert_eq!(contract.outcome, Outcome::Fail, "{report}");
    assert!(
        contract.reason.contains("quench:policy/policy@0.2.0")
            && contract.reason.contains("quench:policy/policy@0.1.0"),
        "{report}"
    );
    assert_eq!(report.contract, None, "{report}");
}

#[test]
fn a_later_0_1_release_is_taken_for_0_1_0() {
    // 0.1.3 is semver-compatible with 0.1.0: the sandbox and the kit take it for 0.1.0.
    let bytes = relabelled("0.1.3");
    let policy = load(PolicySource::Bytes(bytes.clone())).expect("loads");
    assert_eq!(policy.contract_version(), ContractVersion::V0_1);
    let decision = policy
        .evaluate(
            &[],
            &over_the_limit(Entity::relay("app@contoso.com")),
            MONDAY_10AM,
        )
        .expect("decides");
    assert_eq!(
        decision.restriction.expect("restricted").entity.key(),
        "relay:app@contoso.com"
    );
    let finding = quench::conformance::check_contract(&bytes);
    assert_eq!(finding.outcome, Outcome::Pass, "{finding:?}");
    assert!(
        finding.reason.contains(
            "implements contract 0.1.0: imports nothing; exports quench:policy/policy@0.1.3"
        ),
        "{finding:?}"
    );
}
