//! EXPIRE key seconds [NX|XX|GT|LT]
use txn::Transaction;

use super::{parse_expire, ExpireCmd, TimeArg};
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "expire",
    -3,
    WRITE | FAST,
    "generic",
    "Sets the expiration time of a key (seconds).",
)
.keys(1, 1, 1);

/// EXPIRE.
pub struct Cmd(ExpireCmd);

/// Parses the arguments after the name.
pub fn parse(args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(Cmd(parse_expire(
        "expire",
        TimeArg::Seconds,
        args,
    )?)))
}

impl DataCommand for Cmd {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        self.0.run(tx, cx)
    }
}
