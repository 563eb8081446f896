//! How the model's collection types cross the FFI (feature `uniffi`).
//!
//! The model keys concurrent collections with `BTreeMap` (UniFFI knows
//! `HashMap` only) and shares one generic [`crate::events::Event`] between histories
//! (UniFFI has no generics), so those types are declared here as custom and
//! remote types: an app sees an id set as a list, a keyed map as a map and
//! each history's events as their own record.

use std::collections::HashMap;

use crate::grid::GridPath;

use super::*;

uniffi::custom_type!(IdSet, Vec<String>, {
    remote,
    lower: |set| set.into_iter().filter(|(_, on)| *on).map(|(id, _)| id).collect(),
    try_lift: |ids| Ok(ids.into_iter().map(|id| (id, true)).collect()),
});

uniffi::custom_type!(Figures, HashMap<String, i64>, {
    remote,
    lower: |m| m.into_iter().collect(),
    try_lift: |m| Ok(m.into_iter().collect()),
});

uniffi::custom_type!(Members, HashMap<String, Member>, {
    remote,
    lower: |m| m.into_iter().collect(),
    try_lift: |m| Ok(m.into_iter().collect()),
});

uniffi::custom_type!(Assets, HashMap<String, Asset>, {
    remote,
    lower: |m| m.into_iter().collect(),
    try_lift: |m| Ok(m.into_iter().collect()),
});

uniffi::custom_type!(GridNotes, HashMap<String, GridWeekNote>, {
    remote,
    lower: |m| m.into_iter().collect(),
    try_lift: |m| Ok(m.into_iter().collect()),
});

// A grid path crosses as its text (`t01/v03/g2`); text that is not one is
// refused when lifted. The phone API takes grid paths as `String` and
// parses them itself, so that refusal reaches an app as a typed error;
// this conversion only carries paths the core produced.
uniffi::custom_type!(GridPath, String, {
    lower: |g| g.to_string(),
    try_lift: |s| GridPath::parse(&s).map_err(|e| uniffi::deps::anyhow::anyhow!(e.to_string())),
});

/// One step of a hazard's handling history.
#[uniffi::remote(Record)]
pub struct HazardEvent {
    /// Event id (UUID).
    pub id: String,
    /// When, ms since the epoch.
    pub at: i64,
    /// User id of who recorded it.
    pub by: String,
    /// The events its author had seen.
    pub parents: Vec<String>,
    /// What happened.
    pub action: HazardAction,
}

/// One step of a dispute's history.
#[uniffi::remote(Record)]
pub struct DisputeEvent {
    /// Event id (UUID).
    pub id: String,
    /// When, ms since the epoch.
    pub at: i64,
    /// User id of who recorded it.
    pub by: String,
    /// The events its author had seen.
    pub parents: Vec<String>,
    /// What happened.
    pub action: DisputeAction,
}
