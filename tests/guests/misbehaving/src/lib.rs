//! A deliberately broken policy for the sandbox and conformance-kit tests.
//!
//! **Per call**: it behaves (accepts, counts calls in its state) unless the first recipient's
//! local part names a misbehaviour:
//!
//! | recipient     | what `evaluate` does                                   |
//! |---------------|--------------------------------------------------------|
//! | `trap@…`      | panics (a wasm `unreachable` trap)                     |
//! | `loop@…`      | loops forever                                          |
//! | `grow@…`      | allocates memory without bound                         |
//! | `garbage@…`   | returns a 1 MiB state                                  |
//! | `noreply@…`   | rejects without an SMTP reply (breaks the contract)    |
//!
//! Choosing the misbehaviour per call lets one test show that a bad call costs that call only.
//!
//! **Whole policy**: config text `mode = "<fault>"` applies a fault to every call, so the
//! conformance kit can be shown to catch each one with the check that names it:
//!
//! | mode                 | fault                                                       |
//! |----------------------|-------------------------------------------------------------|
//! | `trap`               | every `evaluate` and `idle` panics                          |
//! | `loop`               | every `evaluate` and `idle` loops forever                   |
//! | `grow`               | every `evaluate` allocates without bound                    |
//! | `oversize`           | every `evaluate` returns a 1 MiB state                      |
//! | `noreply`            | every `evaluate` rejects without an SMTP reply              |
//! | `garbage`            | `evaluate` returns state its own `describe` cannot read     |
//! | `nondeterministic`   | the state depends on a per-instance call counter            |
//! | `lax-config`         | unknown config keys are accepted silently                   |
//! | `unlimited-unblocks` | every submission restricts; any role may always unblock     |
//! | `bad-bounce`         | `render-bounce` returns text that is not a DSN              |
//! | `eager-idle`         | refuses from an entity's 2nd call on; `idle` says every state may go |
//!
//! Config text `trap` makes `create` itself trap; `invalid` makes it return config errors.
//! Any other key than `mode` is refused with a config error naming it (unless `lax-config`).
//! With no mode the fixture is a well-behaved (if useless) policy: it never restricts and
//! renders a minimal RFC 3464 bounce; its `idle` only lets empty state go.

/// The whole-policy faults `mode = "..."` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No whole-policy fault (per-recipient faults still apply).
    Normal,
    /// Every `evaluate` traps.
    Trap,
    /// Every `evaluate` loops.
    Loop,
    /// Every `evaluate` grows memory without bound.
    Grow,
    /// Every `evaluate` returns a 1 MiB state.
    Oversize,
    /// Every `evaluate` rejects without a reply.
    NoReply,
    /// `evaluate` returns state `describe` refuses.
    Garbage,
    /// Output depends on a per-instance counter.
    Nondeterministic,
    /// Unknown config keys are accepted.
    LaxConfig,
    /// Everything restricts; every unblock is granted, to any role.
    UnlimitedUnblocks,
    /// `render-bounce` returns junk.
    BadBounce,
    /// Refuses once an entity has state, yet calls every state idle (deletable).
    EagerIdle,
}

/// The `mode` values, as written in the config.
pub const MODES: &[(&str, Mode)] = &[
    ("normal", Mode::Normal),
    ("trap", Mode::Trap),
    ("loop", Mode::Loop),
    ("grow", Mode::Grow),
    ("oversize", Mode::Oversize),
    ("noreply", Mode::NoReply),
    ("garbage", Mode::Garbage),
    ("nondeterministic", Mode::Nondeterministic),
    ("lax-config", Mode::LaxConfig),
    ("unlimited-unblocks", Mode::UnlimitedUnblocks),
    ("bad-bounce", Mode::BadBounce),
    ("eager-idle", Mode::EagerIdle),
];

/// Parse the fixture's config: `key = value` lines, only `mode` known. Returns the mode or
/// `(field, message)` errors.
pub fn parse_config(text: &str) -> Result<Mode, Vec<(String, String)>> {
    let mut mode = Mode::Normal;
    let mut unknown = Vec::new();
    let mut table = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            table = name
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(vec![(
                String::new(),
                format!("expected `key = value`, got `{line}`"),
            )]);
        };
        let key = key.trim();
        if !table.is_empty() || key != "mode" {
            unknown.push(if table.is_empty() {
                key.to_string()
            } else {
                format!("{table}.{key}")
            });
            continue;
        }
        let value = value.trim().trim_matches('"');
        match MODES.iter().find(|(name, _)| *name == value) {
            Some((_, m)) => mode = *m,
            None => {
                return Err(vec![(
                    "mode".into(),
                    format!("unknown mode `{value}`; expected one of the fixture's modes"),
                )]);
            }
        }
    }
    if mode == Mode::LaxConfig || unknown.is_empty() {
        Ok(mode)
    } else {
        Err(unknown
            .into_iter()
            .map(|key| {
                (
                    key,
                    "unknown key; the fixture only knows `mode`".to_string(),
                )
            })
            .collect())
    }
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "restriction-policy",
    });

    use super::Mode;
    use exports::quench::policy::policy as w;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Component;
    export!(Component);

    /// Calls this instance has served: what `nondeterministic` leaks into its answers.
    static CALLS: AtomicU32 = AtomicU32::new(0);

    /// The fixture's engine: its mode.
    struct Broken {
        mode: Mode,
    }

    impl w::Guest for Component {
        type Engine = Broken;
    }

    fn count(state: &[u8]) -> u32 {
        state
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .unwrap_or(0)
    }

    fn spin() -> ! {
        let mut spins = 0u64;
        loop {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }

    fn hoard() -> ! {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }

    fn refusal() -> w::SmtpReply {
        w::SmtpReply {
            code: 550,
            status: "5.1.8".into(),
            text: "Access denied, bad outbound sender".into(),
        }
    }

    fn restriction(entity: w::Entity, now: i64) -> w::Restriction {
        w::Restriction {
            entity,
            kind: w::RestrictionKind::BlockUser,
            evidence: w::Evidence {
                policy: "fixture".into(),
                limit: "everything".into(),
                threshold: 0,
                observed: 1,
                window_seconds: 3600,
                at: now,
                last_message_id: None,
                reason: "Policy=fixture;Limit=everything".into(),
            },
            created: now,
            changed: now,
            expires: None,
            unblocks_used: 0,
            unblocks_left: 1,
        }
    }

    fn clean(s: &str) -> String {
        s.chars().filter(|c| !c.is_control()).collect()
    }

    /// `5.x.x` when `status` is a well-formed 5xx enhanced status code, else `5.0.0`.
    fn status(status: &str) -> String {
        let parts: Vec<&str> = status.split('.').collect();
        let valid = parts.len() == 3
            && parts[0] == "5"
            && parts
                .iter()
                .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
        if valid { status.into() } else { "5.0.0".into() }
    }

    impl w::GuestEngine for Broken {
        fn create(config: String) -> Result<w::Engine, Vec<w::ConfigError>> {
            match config.trim() {
                "trap" => panic!("create asked to trap"),
                "invalid" => Err(vec![w::ConfigError {
                    field: "mode".into(),
                    message: "the fixture was asked to refuse its config".into(),
                }]),
                text => match super::parse_config(text) {
                    Ok(mode) => Ok(w::Engine::new(Broken { mode })),
                    Err(errors) => Err(errors
                        .into_iter()
                        .map(|(field, message)| w::ConfigError { field, message })
                        .collect()),
                },
            }
        }

        fn state_format(&self) -> String {
            "quench-misbehaving/1".into()
        }

        fn connectors(&self) -> Vec<w::ConnectorSpec> {
            Vec::new()
        }

        fn evaluate(&self, state: Vec<u8>, submission: w::Submission, now: i64) -> w::Decision {
            let calls = CALLS.fetch_add(1, Ordering::Relaxed);
            let first = submission
                .recipients
                .first()
                .map(String::as_str)
                .unwrap_or("");
            let local = first.split('@').next().unwrap_or("");
            let mut action = w::Action::Accept;
            let mut reply = None;
            let mut restricted = None;
            let mut new_state = (count(&state).wrapping_add(1)).to_le_bytes().to_vec();
            match (self.mode, local) {
                (Mode::Trap, _) | (_, "trap") => panic!("evaluate asked to trap"),
                (Mode::Loop, _) | (_, "loop") => spin(),
                (Mode::Grow, _) | (_, "grow") => hoard(),
                (Mode::Oversize, _) | (_, "garbage") => new_state = vec![0xAB; 1 << 20],
                (Mode::NoReply, _) | (_, "noreply") => action = w::Action::Reject,
                (Mode::Garbage, _) => new_state = b"\xde\xad\xbe\xef garbage".to_vec(),
                (Mode::Nondeterministic, _) => {
                    new_state = count(&state).wrapping_add(calls).to_le_bytes().to_vec();
                }
                (Mode::EagerIdle, _) if !state.is_empty() => {
                    action = w::Action::Reject;
                    reply = Some(refusal());
                }
                (Mode::UnlimitedUnblocks, _) if !submission.recipients.is_empty() => {
                    action = w::Action::Reject;
                    reply = Some(refusal());
                    restricted = Some(restriction(submission.entity, now));
                }
                _ => {}
            }
            w::Decision {
                verdict: w::Verdict { action, reply },
                state: new_state,
                change: if restricted.is_some() {
                    w::RestrictionChange::Started
                } else {
                    w::RestrictionChange::None
                },
                restriction: restricted,
                alerts: Vec::new(),
            }
        }

        fn unblock(
            &self,
            state: Vec<u8>,
            request: w::UnblockRequest,
            now: i64,
        ) -> Result<w::UnblockGranted, w::UnblockError> {
            if self.mode != Mode::UnlimitedUnblocks || state.is_empty() {
                return Err(w::UnblockError::NotRestricted);
            }
            Ok(w::UnblockGranted {
                state: Vec::new(),
                lifted: restriction(request.entity, now),
                unblocks_used: 0,
                unblocks_left: 1,
                recommendations: Vec::new(),
            })
        }

        fn describe(
            &self,
            state: Vec<u8>,
            entity: w::Entity,
            now: i64,
        ) -> Result<Option<w::Restriction>, String> {
            if state.len() > 4 {
                return Err("not a misbehaving-policy state".into());
            }
            if self.mode == Mode::UnlimitedUnblocks && !state.is_empty() {
                return Ok(Some(restriction(entity, now)));
            }
            Ok(None)
        }

        fn idle(&self, state: Vec<u8>, _now: i64) -> bool {
            match self.mode {
                Mode::Trap => panic!("idle asked to trap"),
                Mode::Loop => spin(),
                Mode::EagerIdle => true,
                _ => state.is_empty(),
            }
        }

        fn render_bounce(&self, request: w::BounceRequest) -> String {
            if self.mode == Mode::BadBounce {
                return "this is not a delivery status notification".into();
            }
            let mut out = format!(
                "From: <MAILER-DAEMON@fixture.invalid>\r\nSubject: Undeliverable\r\n\
                 MIME-Version: 1.0\r\n\
                 Content-Type: multipart/report; report-type=delivery-status; boundary=\"fx\"\r\n\
                 \r\n--fx\r\nContent-Type: text/plain\r\n\r\nRefused: {}\r\n\
                 --fx\r\nContent-Type: message/delivery-status\r\n\r\n\
                 Reporting-MTA: dns; fixture.invalid\r\n",
                clean(&request.reply.text)
            );
            let mut recipients: Vec<String> = request
                .recipients
                .iter()
                .map(|r| clean(r).replace(char::is_whitespace, ""))
                .filter(|r| !r.is_empty())
                .collect();
            if recipients.is_empty() {
                recipients.push("unknown@invalid".into());
            }
            for recipient in &recipients {
                out.push_str(&format!(
                    "\r\nFinal-Recipient: rfc822; {}\r\nAction: failed\r\nStatus: {}\r\n",
                    recipient,
                    status(&request.reply.status)
                ));
            }
            out.push_str("\r\n--fx--\r\n");
            out
        }
    }
}
