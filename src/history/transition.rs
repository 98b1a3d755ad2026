//! One status change, as the history keeps it and the journal writes it.

use std::time::SystemTime;

use crate::core::scoring::{Code, Status, Subsystem};

/// One status change of the system (`name` `None`) or a subsystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub at: SystemTime,
    pub name: Option<Subsystem>,
    pub from: Status,
    pub to: Status,
    pub score: u8,
    /// The codes added, then the codes removed: one allocation for both.
    codes: Box<[Code]>,
    added: u8,
}

impl Transition {
    pub fn new(
        at: SystemTime,
        name: Option<Subsystem>,
        (from, to): (Status, Status),
        score: u32,
        added: &[Code],
        removed: &[Code],
    ) -> Self {
        // A transition names at most 255 added codes; the catalog has far fewer.
        let added = &added[..added.len().min(u8::MAX.into())];
        Self {
            at,
            name,
            from,
            to,
            score: u8::try_from(score.min(100)).unwrap_or(100),
            codes: added.iter().chain(removed).copied().collect(),
            added: u8::try_from(added.len()).unwrap_or(u8::MAX),
        }
    }

    pub fn added(&self) -> &[Code] {
        &self.codes[..self.added.into()]
    }

    pub fn removed(&self) -> &[Code] {
        &self.codes[self.added.into()..]
    }

    /// The name as the faces spell it: a subsystem key, or `system`.
    pub fn key(&self) -> &'static str {
        self.name.map_or("system", Subsystem::key)
    }
}
