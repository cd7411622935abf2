//! Kubernetes manifest audit (READINESS #6 and the manifest-audit paragraph).
//!
//! [`audit_manifests`] reads every YAML file under a directory (normally
//! [`MANIFEST_DIR`]), parses each object into its real Kubernetes type from `k8s-openapi`
//! (strictly: a misspelled field is a [`Rule::Schema`] finding, see `schema`), renders every
//! root kustomization (the overlays) with a small strict renderer (see `kustomize`), and
//! checks each environment — the plain manifests, and each overlay as it would be deployed:
//!
//! - `production_issue_06_placeholder_secrets`: no secret value and no placeholder in
//!   anything deployable; templates hold only `${VAR}` references and are never deployed;
//! - pod security, probes on the real paths, resources, replicas, PodDisruptionBudget,
//!   NetworkPolicy, pinned images, the shutdown budget, selectors, and the mounted
//!   configuration validated by the server's own loader.
//!
//! Every finding names its file, its object (`Kind/name`) and its rule; only
//! [`Severity::Error`] findings fail the audit.

mod config;
mod dockerfile;
mod images;
mod kustomize;
mod objects;
mod pod_security;
mod probes;
mod report;
mod resources;
mod schema;
mod secrets;
mod shutdown;
mod source;
mod topology;

use std::path::Path;

pub use report::{AuditReport, Finding, Rule, Severity};

use kustomize::Kustomizations;
use objects::Obj;
use source::{object_label, FileKind};

/// Where the manifests live, relative to the workspace root.
pub const MANIFEST_DIR: &str = "deployments/kubernetes";

/// Where the image recipe lives, relative to the workspace root.
pub const DOCKERFILE: &str = "deployments/Dockerfile";

/// Audits the Dockerfile at `path`: base images pinned, a non-root (numeric) `USER`, a
/// `HEALTHCHECK`, and no secret in an `ENV` or `ARG`. Findings name the file by `path`.
pub fn audit_dockerfile(path: &Path) -> AuditReport {
    let mut findings = Vec::new();
    dockerfile::audit(path, path, &mut findings);
    AuditReport {
        findings,
        files_scanned: 1,
        objects_checked: 0,
        environments: Vec::new(),
    }
}

/// Name of the environment made of every deployable manifest file as written.
pub const MANIFEST_FILES: &str = "manifest files";

/// Audits every manifest, template and kustomization under `dir`. Never fails: unreadable
/// or invalid files are findings too, so one report lists every problem.
pub fn audit_manifests(dir: &Path) -> AuditReport {
    let mut findings = Vec::new();
    if !dir.is_dir() {
        findings.push(Finding::error(
            dir,
            "(directory)",
            Rule::Parse,
            "is not a directory of manifests",
        ));
        return AuditReport {
            findings,
            ..AuditReport::default()
        };
    }
    let files = source::collect(dir, &mut findings);
    let mut objects_checked = 0;
    let mut environments = vec![MANIFEST_FILES.to_owned()];

    // The manifest files as written: one environment made of every deployable file.
    let mut deployable = Vec::new();
    for file in &files {
        if file.kind == FileKind::Kustomization {
            continue;
        }
        for raw in &file.docs {
            let label = object_label(raw);
            let Some(obj) = typed(&file.display, label, raw, &mut findings) else {
                continue;
            };
            if file.kind == FileKind::Template {
                secrets::check_template(&obj, &mut findings);
                objects_checked += 1;
            } else {
                deployable.push(obj);
            }
        }
    }
    objects_checked += deployable.len();
    check_environment(&deployable, &mut findings);

    // Each root kustomization (overlay) as it would be deployed.
    let kustomizations = Kustomizations::new(&files);
    for root in kustomizations.roots() {
        environments.push(root.display.display().to_string());
        let rendered = kustomizations.render(root, &mut findings);
        let environment: Vec<Obj> = rendered
            .iter()
            .filter_map(|r| {
                let label = format!(
                    "{} (rendered from {})",
                    object_label(&r.raw),
                    r.source.display()
                );
                typed(&root.display, label, &r.raw, &mut findings)
            })
            .collect();
        objects_checked += environment.len();
        check_environment(&environment, &mut findings);
    }

    findings.sort_by(|a, b| {
        (&a.file, &a.object, a.rule, &a.message).cmp(&(&b.file, &b.object, b.rule, &b.message))
    });
    findings.dedup();
    AuditReport {
        findings,
        files_scanned: files.len(),
        objects_checked,
        environments,
    }
}

/// Parses one raw object; schema problems become findings.
fn typed(
    file: &Path,
    label: String,
    raw: &serde_json::Value,
    findings: &mut Vec<Finding>,
) -> Option<Obj> {
    let parsed = schema::parse(raw);
    findings.extend(
        parsed
            .problems
            .into_iter()
            .map(|message| Finding::error(file, label.clone(), Rule::Schema, message)),
    );
    parsed.typed.map(|typed| Obj {
        file: file.to_path_buf(),
        label,
        raw: raw.clone(),
        typed,
    })
}

/// Runs every check on one environment.
fn check_environment(set: &[Obj], findings: &mut Vec<Finding>) {
    for obj in set {
        secrets::check_deployable(obj, findings);
        pod_security::check(obj, findings);
        probes::check(obj, findings);
        resources::check(obj, findings);
        images::check(obj, findings);
        let drain = config::check(obj, set, findings);
        shutdown::check(obj, drain, findings);
    }
    topology::check(set, findings);
}
