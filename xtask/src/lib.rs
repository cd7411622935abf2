//! Project automation behind `cargo xtask` (matklad's xtask pattern), kept as a library so
//! each check is testable and reusable by `cargo xtask verify`.

pub mod bench;
pub mod manifest_audit;
pub mod report;
pub mod run;
pub mod test_suite;
pub mod verify;
