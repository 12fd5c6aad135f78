//! Integration tests of the core: the registration rules and the mapping timeline.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod quantity;
mod rules;
mod timeline_model;
mod usage;
