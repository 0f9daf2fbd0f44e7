//! Portal sessions: an admin signs in once with their token and gets a random session id in
//! a cookie (HttpOnly, SameSite=Strict, Secure over TLS). The session keeps only the token's
//! hash, so each request looks the caller up in the tokens in force: a reload that removes or
//! changes a token ends its sessions at once. Sessions expire after [`SESSION_LIFETIME`],
//! end at sign-out, and are held in memory (a restart signs everyone out); at most
//! [`MAX_SESSIONS`] exist at once (the oldest is dropped for a new one).

use super::csrf;
use crate::admin::auth::{Caller, Tokens};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const COOKIE: &str = "quench_session";
/// The sign-in form's pre-session cookie (double-submit CSRF for the sign-in itself).
pub const PRE_COOKIE: &str = "quench_signin";
/// How long a session lasts from sign-in: a working day.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Most sessions at once.
pub const MAX_SESSIONS: usize = 1024;

/// One signed-in admin.
#[derive(Debug, Clone)]
pub struct Session {
    /// SHA-256 of the token signed in with.
    token_hash: String,
    /// The CSRF token every POST of this session must carry.
    pub csrf: String,
    started: Instant,
}

/// The sessions in force.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Start a session for the holder of `token_hash`; returns the session id.
    pub fn start(&self, token_hash: String) -> String {
        let id = csrf::random_token();
        let mut sessions = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| s.started.elapsed() < SESSION_LIFETIME);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.started)
                .map(|(id, _)| id.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            id.clone(),
            Session {
                token_hash,
                csrf: csrf::random_token(),
                started: Instant::now(),
            },
        );
        id
    }

    /// The caller and session behind session id `id`, if it is live and its token still is.
    pub fn resolve(&self, id: &str, tokens: &Tokens) -> Option<(Caller, Session)> {
        let mut sessions = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        let session = sessions.get(id)?.clone();
        if session.started.elapsed() >= SESSION_LIFETIME {
            sessions.remove(id);
            return None;
        }
        match tokens.caller_by_hash(&session.token_hash) {
            Some(caller) => Some((caller.clone(), session)),
            None => {
                sessions.remove(id);
                None
            }
        }
    }

    /// End session `id`.
    pub fn end(&self, id: &str) {
        self.by_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure over TLS; `max_age`
/// 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}
