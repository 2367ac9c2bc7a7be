//! (being written)

/// A subscription: which alerts it wants and who receives them.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// Unique name.
    pub name: String,
    /// Receiver names.
    pub receivers: Vec<String>,
}
