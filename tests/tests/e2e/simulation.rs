//! Deterministic simulation (written next).
