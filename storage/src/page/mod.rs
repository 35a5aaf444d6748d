//! Fixed-size pages holding values (filled in by the engine issue).
