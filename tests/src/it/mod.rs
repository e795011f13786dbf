//! Integration tests: one binary (`cargo test -p cryptoutil-tests`).

mod auth;
mod jose_interop;
mod listeners;
mod process;
mod supervision;
