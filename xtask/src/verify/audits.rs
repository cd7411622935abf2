//! The two static audits in the report: the Kubernetes manifests (READINESS #6 and the
//! deployment hygiene list) and, when `--config FILE` is given, a configuration file
//! loaded exactly as the server loads it.

use std::path::Path;

use serde::Serialize;

/// What the manifest audit found, flattened for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestAuditSummary {
    /// YAML files read.
    pub files_scanned: usize,
    /// Objects checked (each overlay's rendered copy separately).
    pub objects_checked: usize,
    /// Findings that fail the audit, one line each (`rule file: object: message`).
    pub errors: Vec<String>,
    /// Advice that does not fail it.
    pub warnings: Vec<String>,
}

impl ManifestAuditSummary {
    /// True when nothing failed.
    pub fn passed(&self) -> bool {
        self.errors.is_empty()
    }
}

/// The configuration file audit: the file loaded with the process environment applied,
/// through the one validating constructor the server uses (`chat_config::Config::load`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigAuditSummary {
    /// The file audited, as given.
    pub file: String,
    /// Every problem the validation reported; empty when the file is accepted.
    pub problems: Vec<String>,
    /// Remarks about an accepted file worth a reviewer's eye (e.g. a generated secret).
    pub notes: Vec<String>,
}

impl ConfigAuditSummary {
    /// True when the server would start with this file.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Loads `file` as the server would and reports every problem at once.
pub fn audit_config(file: &Path) -> ConfigAuditSummary {
    let display = file.display().to_string();
    match chat_config::Config::load(Some(file), &chat_config::ProcessEnv) {
        Ok(config) => {
            let mut notes = vec![format!("mode: {:?}", config.mode)];
            if config.jwt_secret_generated() {
                notes.push(
                    "the JWT secret is generated at startup (development only): tokens do not survive a restart"
                        .to_owned(),
                );
            }
            ConfigAuditSummary {
                file: display,
                problems: Vec::new(),
                notes,
            }
        }
        Err(errors) => ConfigAuditSummary {
            file: display,
            problems: errors.iter().map(ToString::to_string).collect(),
            notes: Vec::new(),
        },
    }
}
