//! One module per subsystem: its `Snapshot` implementation (the catalog's rules for it, and the
//! checks its values must pass) and its thresholds. Where two rules read the same measure, only
//! the stronger fires.

use crate::core::subsystem::for_each_subsystem;

/// The modules, one per row of the subsystem table, named by its `rules` column.
macro_rules! rule_modules {
    ($($rules:ident;)+) => {
        $(pub mod $rules;)+
    };
}
for_each_subsystem!(rule_modules: rules);
