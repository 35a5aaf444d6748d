//! SWAPDB index1 index2
use txn::{DbIndex, Transaction};

use crate::cmd::args::parse_int;
use crate::cmd::spec::flags::*;
use crate::cmd::{ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "swapdb",
    3,
    WRITE | MAY_BLOCK,
    "server",
    "Swaps two Redis databases.",
);

/// SWAPDB. A data command: it joins the transaction it runs in (see FLUSHDB), so later
/// commands there see the two databases exchanged.
pub struct SwapDb {
    a: i64,
    b: i64,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let a = parse_int(&args.next_bytes()?).map_err(|_| CmdError::InvalidFirstDb)?;
    let b = parse_int(&args.next_bytes()?).map_err(|_| CmdError::InvalidSecondDb)?;
    Ok(Command::data(SwapDb { a, b }))
}

impl DataCommand for SwapDb {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let databases = i64::from(cx.shared.config.read().databases);
        let check = |n: i64| {
            if (0..databases).contains(&n) {
                DbIndex::try_from(n).map_err(|_| CmdError::DbIndexOutOfRange)
            } else {
                Err(CmdError::DbIndexOutOfRange)
            }
        };
        let (a, b) = (check(self.a)?, check(self.b)?);
        tx.swap_db(a, b)?;
        Ok(Frame::ok())
    }
}
