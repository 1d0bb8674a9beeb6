//! Strongroom's integration tests: one binary, a real server per test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod at_rest;
mod audit;
mod audit_log;
mod bad_input;
mod boot;
mod compliance;
mod consents;
mod dsar;
mod exports;
mod health;
mod identity;
mod jobs;
mod lifecycle;
mod multinode;
mod offboarding;
mod postgres_conformance;
mod postgres_ops;
mod quickstart;
mod records;
mod sqlite_conformance;
mod subjects;
mod tamper;
mod upgrade;
