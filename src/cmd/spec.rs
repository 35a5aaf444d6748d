//! Command metadata as data: name, arity, flags, key positions (Redis's command table).
//!
//! Invariant: arity errors, `COMMAND INFO/DOCS/COUNT` and MULTI checks derive from these
//! specs; nothing else hard-codes a command's shape.

/// Flag bits, named as Redis prints them in `COMMAND INFO`.
pub mod flags {
    /// May modify data.
    pub const WRITE: u32 = 1;
    /// Only reads data.
    pub const READONLY: u32 = 1 << 1;
    /// May grow memory use.
    pub const DENYOOM: u32 = 1 << 2;
    /// Administrative.
    pub const ADMIN: u32 = 1 << 3;
    /// O(1) or O(log n).
    pub const FAST: u32 = 1 << 4;
    /// Allowed before AUTH.
    pub const NO_AUTH: u32 = 1 << 5;
    /// Not queued by MULTI (runs immediately, or is refused inside it).
    pub const NO_MULTI: u32 = 1 << 6;
    /// Allowed while loading.
    pub const LOADING: u32 = 1 << 7;
    /// Allowed on a stale replica.
    pub const STALE: u32 = 1 << 8;
    /// Never propagated to scripts.
    pub const NOSCRIPT: u32 = 1 << 9;
    /// Runs immediately even inside MULTI (MULTI, EXEC, DISCARD, WATCH, QUIT, RESET).
    pub const TXN_CONTROL: u32 = 1 << 10;
    /// May run long (whole-keyspace work): executed with `block_in_place` so the worker's other
    /// connections move to another thread meanwhile. Not shown in `COMMAND INFO`.
    pub const MAY_BLOCK: u32 = 1 << 11;
    /// Reads its keys' values (their bytes, not only their metadata): with the SSD tier, a
    /// pipeline's later commands with this flag have their cold values fetched together with
    /// an earlier command's miss. Not shown in `COMMAND INFO`.
    pub const READS_VALUE: u32 = 1 << 12;
    /// A read whose reply tells, key by key, whether its keys exist (GET, MGET, EXISTS,
    /// TYPE, TTL, PTTL): INFO's `keyspace_hits` / `keyspace_misses` are counted from it
    /// (`server::Stats::count_lookups`). Not shown in `COMMAND INFO`.
    pub const COUNTS_LOOKUPS: u32 = 1 << 13;

    /// `(bit, name)` in the order Redis lists flags.
    pub const NAMES: [(u32, &str); 10] = [
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (NOSCRIPT, "noscript"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (NO_MULTI, "no_multi"),
    ];
}

/// Static description of a command.
#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    /// Lowercase name (`get`, `config|get` style for subcommands is built on demand).
    pub name: &'static str,
    /// Redis arity: `n` = exactly n args including the name; `-n` = at least n.
    pub arity: i32,
    /// [`flags`] bits.
    pub flags: u32,
    /// First key position (0 = no keys).
    pub first_key: i32,
    /// Last key position (-1 = last argument).
    pub last_key: i32,
    /// Step between keys.
    pub key_step: i32,
    /// Command group for `COMMAND DOCS`.
    pub group: &'static str,
    /// One-line summary for `COMMAND DOCS`.
    pub summary: &'static str,
}

impl CommandSpec {
    /// A spec with no keys.
    pub const fn new(
        name: &'static str,
        arity: i32,
        flags: u32,
        group: &'static str,
        summary: &'static str,
    ) -> Self {
        CommandSpec {
            name,
            arity,
            flags,
            first_key: 0,
            last_key: 0,
            key_step: 0,
            group,
            summary,
        }
    }

    /// The same spec with key positions.
    pub const fn keys(mut self, first: i32, last: i32, step: i32) -> Self {
        self.first_key = first;
        self.last_key = last;
        self.key_step = step;
        self
    }

    /// The key arguments of `args` (the command name first) by the key positions.
    pub fn key_args<'a, T>(&self, args: &'a [T]) -> impl Iterator<Item = &'a T> + 'a {
        let len = args.len() as i64;
        let last = if self.last_key < 0 {
            len + i64::from(self.last_key)
        } else {
            i64::from(self.last_key)
        };
        let first = usize::try_from(self.first_key).unwrap_or(0);
        let last = usize::try_from(last).unwrap_or(0);
        let step = usize::try_from(self.key_step.max(1)).unwrap_or(1);
        let none = first == 0;
        args.iter()
            .enumerate()
            .skip(first)
            .step_by(step)
            .take_while(move |(i, _)| !none && *i <= last)
            .map(|(_, key)| key)
    }

    /// Whether `argc` (name included) satisfies the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    /// Whether a flag bit is set.
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// Flag names for `COMMAND INFO`.
    pub fn flag_names(&self) -> Vec<&'static str> {
        flags::NAMES
            .iter()
            .filter(|(bit, _)| self.has(*bit))
            .map(|(_, name)| *name)
            .collect()
    }
}
