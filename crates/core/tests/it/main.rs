//! Integration tests of the core: the registration rules and the mapping timeline.

mod rules;
mod timeline_model;
