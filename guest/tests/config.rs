//! Configuration: defaults, the issue's example, and errors that name their keys.

use quench_default_policy::Policy;

fn fields(text: &str) -> Vec<String> {
    match Policy::from_config(text) {
        Ok(_) => Vec::new(),
        Err(errors) => {
            for e in &errors {
                assert!(!e.message.is_empty());
            }
            errors.into_iter().map(|e| e.field).collect()
        }
    }
}

#[test]
fn empty_and_example_configs_are_valid() {
    let p = Policy::from_config("").unwrap();
    assert_eq!(p.state_format(), "quench-default/2");
    assert!(p.connectors().is_empty());
    let c = p.config();
    assert_eq!((c.unblock.count, c.unblock.window_days), (3, 30));
    assert_eq!(
        (
            c.max_recipients_per_message,
            c.message_rate_limit,
            c.recipient_rate_limit
        ),
        (500, 30, 10_000)
    );

    let example = r#"
accepted_domains = ["contoso.com"]
unblock_limit = { count = 3, window_days = 30 }

[[outbound]]                # evaluated by priority; the last is the default policy
name = "Default"
priority = 0
recipient_limit_external_per_hour = 500
recipient_limit_internal_per_hour = 1000
recipient_limit_per_day = 1000
action_when_threshold_reached = "BlockUser"   # BlockUserForToday | BlockUser | Alert
"#;
    let p = Policy::from_config(example).unwrap();
    assert_eq!(p.config().default_policy.name, "Default");
    // The same inside a whole quench config file: [policy] is unwrapped.
    let whole = example
        .replace("accepted_domains", "[policy]\naccepted_domains")
        .replace("[[outbound]]", "[[policy.outbound]]");
    assert_eq!(Policy::from_config(&whole).unwrap().config(), p.config());
}

#[test]
fn errors_name_their_keys() {
    let cases: &[(&str, &[&str])] = &[
        ("bogus = 1", &["bogus"]),
        (
            "[[outbound]]\nname='A'\nrecipient_limit_per_day = 10001",
            &["outbound[0].recipient_limit_per_day"],
        ),
        (
            "[[outbound]]\nname='A'\nrecipient_limit_per_day = -1",
            &["outbound[0].recipient_limit_per_day"],
        ),
        (
            "[[outbound]]\nname='A'\nrecipient_limit_per_day = '500'",
            &["outbound[0].recipient_limit_per_day"],
        ),
        (
            "[[outbound]]\nname='A'\nrecipient_limit_external_per_hour = 1.5",
            &["outbound[0].recipient_limit_external_per_hour"],
        ),
        (
            "[[outbound]]\nname='A'\nrecipient_limit_internal_per_hour = 99999999999",
            &["outbound[0].recipient_limit_internal_per_hour"],
        ),
        (
            "[[outbound]]\nname='A'\nrecipient_limit_per_day = 10000",
            &[],
        ),
        ("[[outbound]]\nname='A'\nrecipient_limit_per_day = 0", &[]),
        (
            "[[outbound]]\nname='A'\naction_when_threshold_reached = 'Quarantine'",
            &["outbound[0].action_when_threshold_reached"],
        ),
        (
            "[[outbound]]\nname='A'\npreset = 'lax'",
            &["outbound[0].preset"],
        ),
        (
            "[[outbound]]\nname='A'\nfrom_member_of = ['nobody@contoso.com']",
            &["outbound[0].from_member_of[0]"],
        ),
        (
            "[[outbound]]\nname='A'\nfrom = ['ok@contoso.com', 'not an address']",
            &["outbound[0].from[1]"],
        ),
        (
            "[[outbound]]\nname='A'\nsender_domain_is = ['a@b']",
            &["outbound[0].sender_domain_is[0]"],
        ),
        (
            "[[outbound]]\nname='A'\nrecipientlimitperday = 3",
            &["outbound[0].recipientlimitperday"],
        ),
        (
            "[[outbound]]\nrecipient_limit_per_day = 3",
            &["outbound[0].name"],
        ),
        ("[[outbound]]\nname=''", &["outbound[0].name"]),
        (
            "[[outbound]]\nname='A'\n[[outbound]]\nname='a'\nfrom=['x@y.z']",
            &["outbound[1].name"],
        ),
        (
            "[[outbound]]\nname='A'\n[[outbound]]\nname='B'",
            &["outbound[1]"],
        ),
        (
            "[[outbound]]\nname='A'\npriority=1\nfrom=['x@y.z']\n[[outbound]]\nname='B'\npriority=1\nfrom=['q@y.z']",
            &["outbound[1].priority"],
        ),
        (
            "[[outbound]]\nname='A'\nenabled='yes'",
            &["outbound[0].enabled"],
        ),
        ("outbound = 3", &["outbound"]),
        ("outbound = [3]", &["outbound[0]"]),
        (
            "max_recipient_envelope_limit = 0",
            &["max_recipient_envelope_limit"],
        ),
        (
            "max_recipient_envelope_limit = 1001",
            &["max_recipient_envelope_limit"],
        ),
        ("max_recipient_envelope_limit = 1", &[]),
        ("max_recipient_envelope_limit = 1000", &[]),
        ("message_rate_limit = 0", &["message_rate_limit"]),
        ("recipient_rate_limit = 10001", &["recipient_rate_limit"]),
        (
            "unblock_limit = { count = 0, window_days = 30 }",
            &["unblock_limit.count"],
        ),
        (
            "unblock_limit = { count = 3, window_days = 0, extra = 1 }",
            &["unblock_limit.extra", "unblock_limit.window_days"],
        ),
        ("unblock_limit = 3", &["unblock_limit"]),
        (
            "accepted_domains = ['contoso.com', 'bad domain', '']",
            &["accepted_domains[1]", "accepted_domains[2]"],
        ),
        (
            "[groups]\nsales = ['a@contoso.com', 'nope']",
            &["groups.sales[1]"],
        ),
        (
            "[[connectors]]\nclient_addresses=['192.0.2.1']",
            &["connectors[0].id"],
        ),
        ("[[connectors]]\nid='c'", &["connectors[0]"]),
        (
            "[[connectors]]\nid='c'\nclient_addresses=['192.0.2.0/24', 'host.example']",
            &[
                "connectors[0].client_addresses[0]",
                "connectors[0].client_addresses[1]",
            ],
        ),
        (
            "[[connectors]]\nid='c'\ncertificate_fingerprints=['xyz', 'ab:cd']",
            &[
                "connectors[0].certificate_fingerprints[0]",
                "connectors[0].certificate_fingerprints[1]",
            ],
        ),
        (
            "[[connectors]]\nid='c'\nclient_addresses=['192.0.2.1']\n[[connectors]]\nid='C'\nclient_addresses=['192.0.2.2']",
            &["connectors[1].id"],
        ),
        (
            "[[connectors]]\nid='c'\nclient_addresses=['192.0.2.1']\n[[connectors]]\nid='d'\nclient_addresses=['192.0.2.1']",
            &["connectors[1].client_addresses[0]"],
        ),
        (
            "[[connectors]]\nid='c'\nclient_addresses=['192.0.2.1']\nrecipient_limit_per_day=10001\nbogus=1",
            &[
                "connectors[0].bogus",
                "connectors[0].recipient_limit_per_day",
            ],
        ),
        ("[policy]\n[policy.x]", &["policy.x"]),
        (
            "[policy]\n[[policy.outbound]]\nname='A'\npreset='x'",
            &["policy.outbound[0].preset"],
        ),
        ("accepted_domains=[]\n[policy]", &["policy"]),
    ];
    for (text, want) in cases {
        let mut got = fields(text);
        got.sort();
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "config:\n{text}");
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = r#"
accepted_domains = ["contoso.com", "bad domain"]
colour = "blue"
max_recipient_envelope_limit = 5000
[[outbound]]
name = "A"
recipient_limit_per_day = 20000
action_when_threshold_reached = "Nuke"
from_member_of = ["ghosts"]
[[connectors]]
id = "relay"
client_addresses = ["999.1.1.1"]
"#;
    let got = fields(text);
    for want in [
        "accepted_domains[1]",
        "colour",
        "max_recipient_envelope_limit",
        "outbound[0].recipient_limit_per_day",
        "outbound[0].action_when_threshold_reached",
        "outbound[0].from_member_of[0]",
        "connectors[0].client_addresses[0]",
    ] {
        assert!(got.iter().any(|g| g == want), "{want} missing from {got:?}");
    }
    assert_eq!(got.len(), 7, "{got:?}");
    let errs =
        Policy::from_config("[[outbound]]\nname='A'\nrecipient_limit_per_day = 20000").unwrap_err();
    assert!(
        errs[0].message.contains("0 to 10000"),
        "{}",
        errs[0].message
    );
}

#[test]
fn syntax_errors_say_where() {
    let errs =
        Policy::from_config("accepted_domains = [\"a.com\"\n[[outbound]]\nname = ").unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "");
    assert!(errs[0].message.contains("line"), "{}", errs[0].message);
}
