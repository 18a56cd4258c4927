//! Unit tests of the shared WAL.
