//! Warren routing core (being written).
