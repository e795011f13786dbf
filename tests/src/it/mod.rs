//! Integration tests: one binary (`cargo test -p cryptoutil-tests`).

mod auth;
mod listeners;
mod process;
mod supervision;
