//! (being written)

/// A named recurring time window.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeWindow {
    /// Unique name.
    pub name: String,
}
