//! Check `deterministic`: a policy is a pure function of its inputs. The same (state,
//! submission, now) must give the same decision on the warm instance that has served every
//! earlier call, on a brand-new instance, and when simply asked twice. Anything kept in an
//! instance between calls (a counter, a cache that changes answers) shows up here.

use super::generate::{Generator, START};
use super::{Finding, KitOptions, Loaded};
use crate::{BounceRequest, Decision, SmtpReply};

/// Submissions compared at most (each is evaluated three times).
const MAX_CASES: usize = 200;

/// Run the check.
pub(crate) fn check(loaded: &Loaded, options: &KitOptions) -> Finding {
    let limits = loaded.warm.limits().clone();
    // Another stream than `total`'s, so the two checks cover different inputs.
    let seed = options.seed ^ 0x5eed_d00d;
    let mut generator = Generator::new(seed, limits.max_state_bytes);
    let cases = options.cases.min(MAX_CASES);
    for index in 0..cases {
        let case = generator.next_case();
        let (state, sub, now) = (&case.state, &case.submission, case.now);
        let run = |which: &str, sandbox: &crate::Sandbox| {
            sandbox
                .evaluate(state, sub, now)
                .map_err(|fault| format!("{which} call failed: {}", super::fault(&fault)))
        };
        let outcome = run("warm", &loaded.warm).and_then(|warm| {
            let again = run("repeated", &loaded.warm)?;
            let fresh = run("fresh-instance", &loaded.fresh)?;
            Ok((warm, again, fresh))
        });
        let (warm, again, fresh) = match outcome {
            Ok(answers) => answers,
            Err(why) => {
                return Finding::fail(format!(
                    "could not compare case {index}: {why}; input: {}",
                    case.summary()
                ));
            }
        };
        for (label, other) in [("asked again", &again), ("on a fresh instance", &fresh)] {
            if let Some(field) = difference(&warm, other) {
                return Finding::fail(format!(
                    "case {index} (seed {seed}): the decision's {field} differs when {label}; input: {}",
                    case.summary()
                ));
            }
        }
        let described = |s: &crate::Sandbox| {
            s.describe(&warm.state, &sub.entity, now)
                .map_err(|f| f.to_string())
        };
        if described(&loaded.warm) != described(&loaded.fresh) {
            return Finding::fail(format!(
                "case {index} (seed {seed}): describe of the same state differs between a warm and a fresh instance; input: {}",
                case.summary()
            ));
        }
        generator.returned(&sub.entity, warm.state);
    }
    let request = bounce_request();
    let bounce = |s: &crate::Sandbox| s.render_bounce(&request).map_err(|f| f.to_string());
    let (warm, fresh) = (bounce(&loaded.warm), bounce(&loaded.fresh));
    if warm != fresh || warm != bounce(&loaded.warm) {
        return Finding::fail("render-bounce gives different messages for the same request");
    }
    Finding::pass(format!(
        "{cases} generated submissions gave identical decisions on the warm instance, asked again, and on fresh instances; describe and render-bounce agree too"
    ))
}

/// The first field in which two decisions differ.
fn difference(a: &Decision, b: &Decision) -> Option<String> {
    if a.verdict != b.verdict {
        return Some("verdict".into());
    }
    if a.state != b.state {
        let at = a
            .state
            .iter()
            .zip(&b.state)
            .position(|(x, y)| x != y)
            .unwrap_or(a.state.len().min(b.state.len()));
        return Some(format!(
            "state ({} vs {} bytes, first difference at byte {at})",
            a.state.len(),
            b.state.len()
        ));
    }
    if a.restriction != b.restriction {
        return Some("restriction".into());
    }
    if a.change != b.change {
        return Some("change".into());
    }
    if a.alerts != b.alerts {
        return Some("alerts".into());
    }
    None
}

fn bounce_request() -> BounceRequest {
    BounceRequest {
        reporting_mta: "mx.quench-check.invalid".into(),
        original_sender: "alice@contoso.com".into(),
        recipients: vec!["bob@fabrikam.com".into()],
        original_headers: "Subject: hello\r\nMessage-ID: <m1@contoso.com>\r\n\r\n".into(),
        reply: SmtpReply {
            code: 550,
            status: "5.1.8".into(),
            text: "Access denied, bad outbound sender".into(),
        },
        restriction: None,
        arrival: START,
        now: START + 5,
        bounce_id: "kit-determinism".into(),
    }
}
