//! Integration tests: one binary (`cargo test -p cryptoutil-tests`).

mod auth;
mod ca_acme;
mod ca_cmp;
mod ca_core;
mod ca_crash;
mod ca_est;
mod ca_service;
mod code_flow;
mod deployment;
mod federation;
mod federation_ca;
mod federation_jose;
mod federation_process;
mod hardening;
mod identity;
mod issuer_jwks;
mod jose_engine;
mod jose_interop;
mod jose_service;
mod kms;
mod kms_crash;
mod listeners;
mod mtls;
mod process;
mod supervision;
mod ui;
