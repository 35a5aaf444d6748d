//! SWAPDB index1 index2
use txn::DbIndex;

use crate::cmd::args::parse_int;
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, SessionCommand, SessionCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "swapdb",
    3,
    WRITE | FAST | NO_MULTI,
    "server",
    "Swaps two Redis databases.",
);

/// SWAPDB.
pub struct SwapDb {
    a: i64,
    b: i64,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let a = parse_int(&args.next_bytes()?).map_err(|_| CmdError::InvalidFirstDb)?;
    let b = parse_int(&args.next_bytes()?).map_err(|_| CmdError::InvalidSecondDb)?;
    Ok(Command::session(SwapDb { a, b }))
}

impl SessionCommand for SwapDb {
    fn execute(&self, cx: &mut SessionCx<'_>) -> Result<Frame, CmdError> {
        let databases = i64::from(cx.shared.config.read().databases);
        let check = |n: i64| {
            if (0..databases).contains(&n) {
                DbIndex::try_from(n).map_err(|_| CmdError::DbIndexOutOfRange)
            } else {
                Err(CmdError::DbIndexOutOfRange)
            }
        };
        let (a, b) = (check(self.a)?, check(self.b)?);
        let info = cx.shared.engine.swap_db(a, b)?;
        cx.session.note_lsn(&info);
        Ok(Frame::ok())
    }
}
