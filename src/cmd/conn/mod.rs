//! Connection commands: PING ECHO HELLO AUTH SELECT QUIT RESET CLIENT.
//!
//! Invariant: these act on the calling session (and, for CLIENT KILL, on other sessions'
//! registry entries); none touches the keyspace.

pub mod auth;
pub mod client;
pub mod echo;
pub mod hello;
pub mod ping;
pub mod quit;
pub mod reset;
pub mod select;

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::cmd::SessionCx;
use crate::server::Shared;
use crate::session::Action;

/// How long a wrong password's reply waits (on its connection only): a client that mistyped
/// waits unnoticed, one that guesses gets 100 tries a second per connection instead of the
/// 430 000 measured in issue #13 item 11.
pub const AUTH_FAILURE_DELAY: Duration = Duration::from_millis(10);
/// At most one log line about failed AUTHs per this many seconds (with the count since).
const AUTH_FAILURE_LOG_SECS: u64 = 10;

/// [`check_password`] for AUTH and HELLO AUTH: a wrong password is counted (INFO
/// `acl_access_denied_auth`, as Redis), logged at most once per 10 s with the client's
/// address and the failures since, and answered only after [`AUTH_FAILURE_DELAY`].
pub fn authenticate(
    cx: &mut SessionCx<'_>,
    user: Option<&[u8]>,
    pass: &[u8],
) -> Result<(), crate::cmd::CmdError> {
    let checked = check_password(cx.shared, user, pass);
    if matches!(checked, Err(crate::cmd::CmdError::WrongPass)) {
        let stats = &cx.shared.stats;
        let total = stats.auth_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = stats.auth_failure_logged_at.load(Ordering::Relaxed);
        if now >= last + AUTH_FAILURE_LOG_SECS
            && stats
                .auth_failure_logged_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                client_id = cx.session.client.id.0,
                addr = %cx.session.client.addr,
                failures_total = total,
                "AUTH failed: wrong password (logged at most once per {AUTH_FAILURE_LOG_SECS} s)"
            );
        }
        cx.session.action = Some(Action::Sleep(AUTH_FAILURE_DELAY));
    }
    checked
}

/// Checks `user`/`pass` against the default user, as AUTH and HELLO AUTH do.
pub fn check_password(
    shared: &Shared,
    user: Option<&[u8]>,
    pass: &[u8],
) -> Result<(), crate::cmd::CmdError> {
    use crate::cmd::CmdError;
    if user.is_some_and(|u| u != b"default") {
        return Err(CmdError::WrongPass);
    }
    let config = shared.config.read();
    match config.requirepass.as_deref() {
        None if user.is_some() => Ok(()),
        None => Err(CmdError::AuthNotConfigured),
        Some(expected) => {
            // Compare every byte so the time taken doesn't reveal the matching prefix.
            let e = expected.as_bytes();
            let mut diff = e.len() ^ pass.len();
            for (i, b) in pass.iter().enumerate() {
                diff |= usize::from(b ^ e.get(i % e.len().max(1)).copied().unwrap_or(0));
            }
            if diff == 0 {
                Ok(())
            } else {
                Err(CmdError::WrongPass)
            }
        }
    }
}
