//! TXN BEGIN [SNAPSHOT|SERIALIZABLE] | TXN COMMIT | TXN ABORT: interactive transactions.
//! (tierkv extension.)
use txn::Isolation;

use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec};

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "txn",
    -2,
    NO_MULTI | NOSCRIPT,
    "transactions",
    "Interactive snapshot transactions: TXN BEGIN [SNAPSHOT|SERIALIZABLE], TXN COMMIT, TXN ABORT.",
);

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let raw = args.next_bytes()?;
    let sub = String::from_utf8_lossy(&raw).to_ascii_uppercase();
    let command = match sub.as_str() {
        "BEGIN" => match args.next_upper().as_deref() {
            None | Some("SNAPSHOT") => Command::TxnBegin(Isolation::Snapshot),
            Some("SERIALIZABLE") => Command::TxnBegin(Isolation::Serializable),
            Some(_) => return Err(CmdError::Syntax),
        },
        "COMMIT" => Command::TxnCommit,
        "ABORT" | "ROLLBACK" => Command::TxnAbort,
        _ => {
            return Err(CmdError::UnknownSubcommand {
                cmd: "TXN",
                sub: String::from_utf8_lossy(&raw).into_owned(),
            })
        }
    };
    args.finish()?;
    Ok(command)
}
