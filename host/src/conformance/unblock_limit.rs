//! Check `unblock-limit`: the guarantees admins rely on. An entity is driven into a
//! restriction once a day and unblocked by a Security Administrator each time, until the
//! policy refuses with `limit-reached`. Along the way: the reader roles are refused, a new
//! entity is "not restricted", each grant lifts the restriction, `unblocks-used` and
//! `unblocks-left` stay consistent (their sum is the limit, left counts down one per grant,
//! `describe` agrees), no grant follows one that left 0, and the support role can still
//! unblock past the limit.

use super::drive::{self, Driven};
use super::generate::START;
use super::{Finding, Loaded};
use crate::{Entity, Restriction, Role, Sandbox, Timestamp, UnblockError, UnblockRequest};

/// Daily restrict-and-unblock cycles at most.
const MAX_CYCLES: u32 = 60;
const DAY: Timestamp = 86_400;
const READERS: [Role; 3] = [
    Role::GlobalReader,
    Role::SecurityReader,
    Role::ViewOnlyOrganizationManagement,
];

fn request(entity: &Entity, role: Role) -> UnblockRequest {
    UnblockRequest {
        entity: entity.clone(),
        role,
        admin: "conformance-kit".into(),
        reason: "conformance check".into(),
        grace: crate::bindings::UnblockGrace::RestOfDay,
    }
}

/// Run the check.
pub(crate) fn check(loaded: &Loaded) -> Finding {
    match run(&loaded.warm) {
        Ok(finding) | Err(finding) => finding,
    }
}

fn run(sandbox: &Sandbox) -> Result<Finding, Finding> {
    let entity = Entity::user("unblock-limit@quench-check.invalid");
    let unblock = |state: &[u8], role: Role, now: Timestamp| {
        sandbox
            .unblock(state, &request(&entity, role), now)
            .map_err(|fault| {
                Finding::fail(format!(
                    "unblock by {role} at {now} failed: {}",
                    super::fault(&fault)
                ))
            })
    };
    let describe = |state: &[u8], now: Timestamp| match sandbox.describe(state, &entity, now) {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(why)) => Err(Finding::fail(format!("describe refused the state: {why}"))),
        Err(fault) => Err(Finding::fail(format!(
            "describe failed: {}",
            super::fault(&fault)
        ))),
    };

    match unblock(&[], Role::SecurityAdministrator, START)? {
        Err(UnblockError::NotRestricted) => {}
        other => {
            return Err(Finding::fail(format!(
                "unblocking a new entity (empty state) should be `not-restricted`, got {}",
                answer(&other)
            )));
        }
    }

    let mut state = Vec::new();
    // (used, left) after the previous grant.
    let mut previous: Option<(u32, u32)> = None;
    let mut grants = 0;
    for cycle in 0..MAX_CYCLES {
        let start = START - 2 * 3_600 + Timestamp::from(cycle) * DAY;
        let driven = drive::to_restriction(sandbox, &entity, state.clone(), start, "unblock")
            .map_err(|why| Finding::fail(format!("day {cycle}: {why}")))?;
        let Some(Driven {
            decision,
            now,
            sent,
            ..
        }) = driven
        else {
            return Ok(if cycle == 0 {
                Finding::skip(format!(
                    "the policy never restricted: {} submissions of up to 25 external recipients, 30 an hour, went through",
                    drive::MAX_SUBMISSIONS
                ))
            } else {
                Finding::skip(format!(
                    "restricted and unblocked {grants} time(s), then not restricted again within {} submissions on day {cycle}",
                    drive::MAX_SUBMISSIONS
                ))
            });
        };
        state = decision.state.clone();
        let restriction = decision
            .restriction
            .clone()
            .expect("the driver returns restrictions");

        for role in READERS {
            match unblock(&state, role, now)? {
                Err(UnblockError::RoleNotAllowed(r)) if r == role => {}
                other => {
                    return Err(Finding::fail(format!(
                        "day {cycle}: {role} may only read, but its unblock got {}",
                        answer(&other)
                    )));
                }
            }
        }
        let shown = describe(&state, now)?.ok_or_else(|| {
            Finding::fail(format!(
                "day {cycle}: evaluate restricted the entity but describe of its state shows no restriction"
            ))
        })?;
        consistent(&shown, previous, cycle)?;

        match unblock(&state, Role::SecurityAdministrator, now)? {
            Ok(granted) => {
                let (used, left) = (granted.unblocks_used, granted.unblocks_left);
                if used == 0 {
                    return Err(Finding::fail(format!(
                        "day {cycle}: a granted unblock reports unblocks-used = 0"
                    )));
                }
                if let Some((pused, pleft)) = previous {
                    // The sum is the limit: a grant past it shows as a larger sum (used
                    // counts on while left cannot go below 0).
                    if used + left != pused + pleft {
                        return Err(Finding::fail(format!(
                            "day {cycle}: unblocks-used + unblocks-left changed from {} to {} between grants{}",
                            pused + pleft,
                            used + left,
                            if pleft == 0 {
                                " (granted past the limit)"
                            } else {
                                ""
                            }
                        )));
                    }
                    if used > pused && left + 1 != pleft {
                        return Err(Finding::fail(format!(
                            "day {cycle}: unblocks-left went from {pleft} to {left} on one grant"
                        )));
                    }
                }
                if granted.lifted.entity != entity {
                    return Err(Finding::fail(format!(
                        "day {cycle}: the lifted restriction names {:?}",
                        granted.lifted.entity.id
                    )));
                }
                if describe(&granted.state, now)?.is_some() {
                    return Err(Finding::fail(format!(
                        "day {cycle}: after a granted unblock, describe still shows a restriction"
                    )));
                }
                previous = Some((used, left));
                grants += 1;
                state = granted.state;
            }
            Err(UnblockError::LimitReached(reached)) => {
                return limit_reached(
                    &unblock, &describe, &state, now, cycle, grants, previous, &reached,
                )
                .map(|()| {
                    Finding::pass(format!(
                        "restricted and unblocked {grants} time(s) on {grants} day(s) (~{sent} submissions to restrict), then refused: {} unblocks per {} days; readers refused; support unblocked past the limit",
                        reached.limit,
                        reached.window_seconds / 86_400
                    ))
                });
            }
            Err(UnblockError::NotUnblockable(why)) => {
                return Ok(Finding::skip(format!(
                    "the restriction the driver reached ({:?}) cannot be lifted by an admin: {why}",
                    restriction.kind
                )));
            }
            Err(other) => {
                return Err(Finding::fail(format!(
                    "day {cycle}: a Security Administrator's unblock of a restricted entity was refused with {}",
                    answer(&Err(other))
                )));
            }
        }
    }
    Ok(Finding::skip(format!(
        "{grants} daily unblocks were all granted and the limit never came into play (unblocks-left {:?}); nothing to enforce within {MAX_CYCLES} days",
        previous.map(|(_, left)| left)
    )))
}

/// `describe`'s view of a restricted entity agrees with the last grant.
fn consistent(
    shown: &Restriction,
    previous: Option<(u32, u32)>,
    cycle: u32,
) -> Result<(), Finding> {
    if let Some((used, left)) = previous
        && shown.unblocks_used + shown.unblocks_left != used + left
    {
        return Err(Finding::fail(format!(
            "day {cycle}: describe shows {} used + {} left, the last grant {used} + {left}",
            shown.unblocks_used, shown.unblocks_left
        )));
    }
    Ok(())
}

type UnblockFn<'a> = dyn Fn(&[u8], Role, Timestamp) -> Result<Result<crate::UnblockGranted, UnblockError>, Finding>
    + 'a;
type DescribeFn<'a> = dyn Fn(&[u8], Timestamp) -> Result<Option<Restriction>, Finding> + 'a;

/// The refusal is consistent, `describe` shows 0 left, and support may still unblock.
#[allow(clippy::too_many_arguments)]
fn limit_reached(
    unblock: &UnblockFn<'_>,
    describe: &DescribeFn<'_>,
    state: &[u8],
    now: Timestamp,
    cycle: u32,
    grants: u32,
    previous: Option<(u32, u32)>,
    reached: &crate::UnblockLimitReached,
) -> Result<(), Finding> {
    if grants == 0 {
        return Err(Finding::fail(
            "the very first unblock was refused with limit-reached",
        ));
    }
    if let Some((_, left)) = previous
        && left != 0
    {
        return Err(Finding::fail(format!(
            "day {cycle}: refused with limit-reached although the last grant left {left} unblock(s)"
        )));
    }
    let limit_seen = previous.map(|(used, left)| used + left);
    if reached.used < reached.limit || limit_seen.is_some_and(|l| l != reached.limit) {
        return Err(Finding::fail(format!(
            "day {cycle}: limit-reached says {} used of {}, grants said the limit was {limit_seen:?}",
            reached.used, reached.limit
        )));
    }
    if reached.next_allowed < now {
        return Err(Finding::fail(format!(
            "day {cycle}: next-allowed {} is before now {now}",
            reached.next_allowed
        )));
    }
    if let Some(shown) = describe(state, now)?
        && shown.unblocks_left != 0
    {
        return Err(Finding::fail(format!(
            "day {cycle}: at the limit, describe still shows {} unblock(s) left",
            shown.unblocks_left
        )));
    }
    match unblock(state, Role::Support, now)? {
        Ok(granted) if granted.unblocks_left == 0 => Ok(()),
        Ok(granted) => Err(Finding::fail(format!(
            "day {cycle}: past the limit, a support unblock reports {} left",
            granted.unblocks_left
        ))),
        Err(error) => Err(Finding::fail(format!(
            "day {cycle}: the support role could not unblock past the limit: {}",
            answer(&Err(error))
        ))),
    }
}

fn answer(answer: &Result<crate::UnblockGranted, UnblockError>) -> String {
    match answer {
        Ok(g) => format!(
            "a grant ({} used, {} left)",
            g.unblocks_used, g.unblocks_left
        ),
        Err(UnblockError::NotRestricted) => "not-restricted".into(),
        Err(UnblockError::RoleNotAllowed(role)) => format!("role-not-allowed({role})"),
        Err(UnblockError::LimitReached(r)) => {
            format!("limit-reached ({} used of {})", r.used, r.limit)
        }
        Err(UnblockError::NotUnblockable(why)) => format!("not-unblockable: {why}"),
        Err(UnblockError::InvalidState(why)) => format!("invalid-state: {why}"),
    }
}
