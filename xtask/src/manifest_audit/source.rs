//! Finding the YAML files under the audited directory and splitting them into documents.
//!
//! Documents are converted to `serde_json::Value`s: the typed parse, the unknown-field diff,
//! the kustomize renderer and the secret scan all work on that one representation.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::report::{Finding, Rule};

/// What a YAML file is for, decided by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// Kubernetes objects meant to be applied.
    Manifest,
    /// `*.template.yaml`: rendered by a script, never applied as is, never in a kustomization.
    Template,
    /// `kustomization.yaml`: how manifests are assembled into an environment.
    Kustomization,
}

/// One YAML file and its non-empty documents.
#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    /// Canonical path, for resolving kustomization references.
    pub canonical: PathBuf,
    /// Path relative to the audited directory, for messages.
    pub display: PathBuf,
    /// What the file is for.
    pub kind: FileKind,
    /// Each YAML document converted to JSON; empty documents are dropped.
    pub docs: Vec<Value>,
}

/// Reads every `*.yaml`/`*.yml` file under `root` (hidden directories skipped), in path order.
pub(crate) fn collect(root: &Path, findings: &mut Vec<Finding>) -> Vec<SourceFile> {
    let mut paths = Vec::new();
    walk(root, &mut paths, findings, root);
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        let display = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                findings.push(Finding::error(
                    &display,
                    "(file)",
                    Rule::Parse,
                    format!("cannot read: {e}"),
                ));
                continue;
            }
        };
        let docs = match parse_documents(&text) {
            Ok(docs) => docs,
            Err(e) => {
                findings.push(Finding::error(&display, "(file)", Rule::Parse, e));
                continue;
            }
        };
        let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        files.push(SourceFile {
            kind: kind_of(&path),
            canonical,
            display,
            docs,
        });
    }
    files
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, findings: &mut Vec<Finding>, root: &Path) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            let display = dir.strip_prefix(root).unwrap_or(dir);
            findings.push(Finding::error(
                display,
                "(directory)",
                Rule::Parse,
                format!("cannot list: {e}"),
            ));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if path.is_dir() {
            if !hidden {
                walk(&path, out, findings, root);
            }
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

fn kind_of(path: &Path) -> FileKind {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name == "kustomization.yaml" || name == "kustomization.yml" {
        FileKind::Kustomization
    } else if name.contains(".template.") {
        FileKind::Template
    } else {
        FileKind::Manifest
    }
}

/// Splits a (multi-document) YAML text into JSON values, dropping empty documents.
pub(crate) fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let yaml = serde_yaml_ng::Value::deserialize(document)
            .map_err(|e| format!("invalid YAML in document {}: {e}", index + 1))?;
        if yaml.is_null() {
            continue;
        }
        let json = serde_json::to_value(&yaml).map_err(|e| {
            format!(
                "document {} cannot be represented as a Kubernetes object: {e}",
                index + 1
            )
        })?;
        docs.push(json);
    }
    Ok(docs)
}

/// `Kind/name` of a raw object, for messages.
pub(crate) fn object_label(raw: &Value) -> String {
    let kind = raw.get("kind").and_then(Value::as_str).unwrap_or("?");
    let name = raw
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    format!("{kind}/{name}")
}
