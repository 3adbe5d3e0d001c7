//! The namespace pair the peers run in: [`crate::netns`], under its old path for code that
//! names it here.

pub use crate::netns::*;
