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

use crate::server::Shared;

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
