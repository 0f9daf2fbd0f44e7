//! One policy-service connection: read requests (connection reuse: many per connection),
//! decide each, answer each. On malformed input or a timeout the connection is logged and
//! closed without an answer, as the protocol asks: Postfix then applies its
//! `smtpd_policy_service_default_action` to that request, never half an answer.

use super::Shared;
use super::mapping::{self, Skip};
use crate::bindings::Action as Verdict;
use crate::config::ServeConfig;
use crate::metrics::Metrics;
use quench_postfix_policy::{Action, Request, RequestReader, write_response};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::timeout;

/// Serve one connection until the client closes it, it misbehaves, or shutdown begins.
pub(super) async fn serve(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (read, mut write) = stream.into_split();
    let mut reader = RequestReader::with_limits(BufReader::new(read), shared.limits);
    loop {
        // Read once per request (the timeouts and the trust settings the decision uses), so a
        // reload changes them for connections already open.
        let config = shared.live.config();
        let (idle, request_time, write_time) = {
            let serve = &config.serve;
            (
                Duration::from_secs(serve.idle_timeout_secs),
                Duration::from_secs(serve.request_timeout_secs),
                Duration::from_secs(serve.write_timeout_secs),
            )
        };
        // Between requests: wait for the next one to start, for the idle limit, or for
        // shutdown (which closes idle connections at once).
        if reader.buffered() == 0 && reader.get_ref().buffer().is_empty() {
            tokio::select! {
                started = timeout(idle, reader.get_mut().fill_buf()) => match started {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, %error, "read error; closing");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "idle limit reached; closing");
                        return;
                    }
                },
                _ = shutdown.changed() => return,
            }
        }
        let request = match timeout(request_time, reader.read_request()).await {
            Ok(Ok(Some(request))) => request,
            Ok(Ok(None)) => return,
            Ok(Err(error)) => {
                Metrics::count(&shared.metrics.protocol_errors, error.kind());
                tracing::warn!(%peer, kind = error.kind(), %error, "malformed policy request; closing without an answer");
                return;
            }
            Err(_) => {
                Metrics::count(&shared.metrics.protocol_errors, "request_timeout");
                tracing::warn!(%peer, "request not completed in time; closing without an answer");
                return;
            }
        };
        let action = decide(&shared, &config.serve, request).await;
        // A client that stops reading would block this write forever once the socket's
        // buffers are full, holding its slot past both read timeouts.
        match timeout(write_time, write_response(&mut write, &action)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "could not answer; closing");
                return;
            }
            Err(_) => {
                shared.metrics.write_timeouts.inc();
                tracing::warn!(%peer, "client did not read its answer in time (serve.write_timeout_secs); closing");
                return;
            }
        }
    }
}

/// Decide one request on a blocking thread (the policy call and a durable write may take
/// a moment) and turn the verdict into a policy-protocol action.
async fn decide(shared: &Arc<Shared>, serve: &ServeConfig, request: Request) -> Action {
    let started = Instant::now();
    let policy = shared.service.policy();
    let submission = match mapping::submission(&request, &policy, serve) {
        Ok(submission) => submission,
        Err(skip) => {
            Metrics::count(&shared.metrics.submissions, skip.label());
            match skip {
                Skip::NotPolicyRequest => tracing::debug!(
                    request = ?request.request,
                    "not an smtpd_access_policy request; answering DUNNO"
                ),
                Skip::Untrusted => tracing::debug!(
                    client = %request.client_address,
                    sender = %request.sender,
                    "unauthenticated client outside trusted_networks; not counted"
                ),
                Skip::NotRcpt | Skip::NullSender => {}
            }
            return Action::dunno();
        }
    };
    Metrics::count(&shared.metrics.submissions, submission.entity.kind.name());
    // Local stores: decided on this worker thread; a decision takes microseconds, and handing
    // it to another thread cost several times the decision itself in context switches
    // (measured with perf; see BENCHMARKS.md). Network stores: on the blocking pool, so a
    // round trip or a timeout does not hold up this worker's other connections.
    let now = crate::time::now();
    let decided = if shared.offload_decisions {
        let task = shared.clone();
        tokio::task::spawn_blocking(move || {
            let outcome = task.service.decide_with(&policy, &submission, now);
            (outcome, submission)
        })
        .await
        .map_err(|_| ())
    } else {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            shared.service.decide_with(&policy, &submission, now)
        }))
        .map(|outcome| (outcome, submission))
        .map_err(|_| ())
    };
    let (outcome, submission) = match decided {
        Ok(decided) => decided,
        Err(_) => {
            tracing::error!("decision panicked; answering with the fail action");
            return fail_action(shared);
        }
    };
    let metrics = &shared.metrics;
    metrics
        .decision_seconds
        .observe(started.elapsed().as_secs_f64());
    if let Some(fault) = &outcome.fault {
        Metrics::count(&metrics.policy_faults, super::fault_kind(fault));
    }
    if outcome.store_error.is_some() {
        metrics.store_errors.inc();
    }
    match outcome.decision.change {
        crate::RestrictionChange::Started => Metrics::count(&metrics.restrictions, "started"),
        crate::RestrictionChange::Changed => Metrics::count(&metrics.restrictions, "changed"),
        crate::RestrictionChange::Lifted => Metrics::count(&metrics.restrictions, "lifted"),
        crate::RestrictionChange::None => {}
    }
    // Queued, never awaited: delivery (log, webhook, email) happens on its own tasks.
    for alert in &outcome.decision.alerts {
        shared.alerts.submit(alert);
    }
    if let Some(ndr) = &shared.ndr {
        ndr.refused(&submission, &outcome.decision, now);
    }
    let verdict = &outcome.decision.verdict;
    Metrics::count(
        &metrics.decisions,
        match verdict.action {
            Verdict::Accept => "accept",
            Verdict::Defer => "defer",
            Verdict::Reject => "reject",
        },
    );
    to_action(verdict.action, verdict.reply.as_ref())
}

/// The protocol action for a verdict: `DUNNO` to accept (later restrictions still apply),
/// the policy's SMTP reply to refuse.
pub(super) fn to_action(verdict: Verdict, reply: Option<&crate::SmtpReply>) -> Action {
    match (verdict, reply) {
        (Verdict::Accept, _) => Action::dunno(),
        (_, Some(reply)) => {
            Action::smtp_reply(reply.code, &format!("{} {}", reply.status, reply.text))
                .unwrap_or_else(|_| {
                    Action::defer_if_permit("Policy answer was not a valid SMTP reply")
                })
        }
        (Verdict::Defer, None) => Action::defer_if_permit("Try again later"),
        (Verdict::Reject, None) => Action::reject("Access denied"),
    }
}

fn fail_action(shared: &Shared) -> Action {
    let decision = shared.service.policy().sandbox.fail_decision(&[]);
    to_action(decision.verdict.action, decision.verdict.reply.as_ref())
}
