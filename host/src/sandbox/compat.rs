//! Calls into a policy built against the previous contract, `quench:policy@0.1.0`: each one
//! lowers the host's 0.2.0 arguments, calls the 0.1.0 export and lifts the answer (see
//! [`crate::bindings::v0_1`] for what changes on the way). Only 0.1.0 components pay for
//! the conversions; the 0.2.0 path never comes here.

use super::pool::StoreData;
use crate::bindings::v0_1::{self, RestrictionPolicy, exports::quench::policy::policy as old};
use crate::bindings::{
    BounceRequest, ConfigError, ConnectorSpec, Decision, Entity, Restriction, Submission,
    Timestamp, UnblockError, UnblockGranted, UnblockRequest,
};
use wasmtime::Store;
use wasmtime::component::ResourceAny;

type PolicyStore = Store<StoreData>;

pub(crate) fn create(
    policy: &RestrictionPolicy,
    store: &mut PolicyStore,
    config: &str,
) -> wasmtime::Result<Result<ResourceAny, Vec<ConfigError>>> {
    let created = policy
        .quench_policy_policy()
        .engine()
        .call_create(store, config)?;
    Ok(created.map_err(|errors| errors.into_iter().map(Into::into).collect()))
}

pub(crate) fn state_format(
    policy: &RestrictionPolicy,
    store: &mut PolicyStore,
    engine: ResourceAny,
) -> wasmtime::Result<String> {
    policy
        .quench_policy_policy()
        .engine()
        .call_state_format(store, engine)
}

pub(crate) fn connectors(
    policy: &RestrictionPolicy,
    store: &mut PolicyStore,
    engine: ResourceAny,
) -> wasmtime::Result<Vec<ConnectorSpec>> {
    let connectors = policy
        .quench_policy_policy()
        .engine()
        .call_connectors(store, engine)?;
    Ok(connectors.into_iter().map(Into::into).collect())
}

pub(crate) fn evaluate(
    policy: &RestrictionPolicy,
    store: &mut PolicyStore,
    engine: ResourceAny,
    state: &[u8],
    submission: &Submission,
    now: Timestamp,
) -> wasmtime::Result<Decision> {
    let lowered = old::Submission::from(submission);
    let decision = policy
        .quench_policy_policy()
        .engine()
        .call_evaluate(store, engine, state, &lowered, now)?;
    let mut decision = Decision::from(decision);
    decision.keep_asked(&submission.entity);
    Ok(decision)
}

pub(crate) fn unblock(
    policy: &RestrictionPolicy,
    store: &mut PolicyStore,
    engine: ResourceAny,
    state: &[u8],
    request: &UnblockRequest,
    now: Timestamp,
) -> wasmtime::Result<Result<UnblockGranted, UnblockError>> {
    let lowered = old::UnblockRequest::from(request);
    let answer = policy
        .quench_policy_policy()
        .engine()
        .call_unblock(store, engine, state, &lowered, now)?;
    Ok(answer
        .map(|granted| {
            let mut granted = UnblockGranted::from(granted);
            v0_1::keep_asked(&mut granted.lifted.entity, &request.entity);
            granted
        })
        .map_err(Into::into))
}

pub(crate) fn describe(
    policy: &RestrictionPolicy,
    store: &mut PolicyStore,
    engine: ResourceAny,
    state: &[u8],
    entity: &Entity,
    now: Timestamp,
) -> wasmtime::Result<Result<Option<Restriction>, String>> {
    let lowered = old::Entity::from(entity);
    let answer = policy
        .quench_policy_policy()
        .engine()
        .call_describe(store, engine, state, &lowered, now)?;
    Ok(answer.map(|restriction| {
        restriction.map(|r| {
            let mut r = Restriction::from(r);
            v0_1::keep_asked(&mut r.entity, entity);
            r
        })
    }))
}

pub(crate) fn idle(
    policy: &RestrictionPolicy,
    store: &mut PolicyStore,
    engine: ResourceAny,
    state: &[u8],
    now: Timestamp,
) -> wasmtime::Result<bool> {
    policy
        .quench_policy_policy()
        .engine()
        .call_idle(store, engine, state, now)
}

pub(crate) fn render_bounce(
    policy: &RestrictionPolicy,
    store: &mut PolicyStore,
    engine: ResourceAny,
    request: &BounceRequest,
) -> wasmtime::Result<String> {
    let lowered = old::BounceRequest::from(request);
    policy
        .quench_policy_policy()
        .engine()
        .call_render_bounce(store, engine, &lowered)
}
