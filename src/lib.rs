//! tierkv server: RESP over TCP, turned into engine calls.
