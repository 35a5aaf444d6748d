//! tierkv operator tools.
