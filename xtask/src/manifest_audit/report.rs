//! What the audit found: findings naming file, object and rule, and the report holding them.

use std::fmt;
use std::path::PathBuf;

/// How bad a finding is. Only errors fail the audit; warnings are advice that a reviewer
/// should read but that does not block a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Advice; the audit still passes.
    Warning,
    /// A rule is broken; the audit fails.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// The check family a finding belongs to. The names (`Rule::name`) are stable: tests,
/// `cargo xtask verify` and the readiness report refer to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// A file is not valid YAML, or a document lacks `apiVersion`/`kind`.
    Parse,
    /// An object does not match the Kubernetes schema: unknown (misspelled) field, wrong
    /// type, or a kind the audit does not know.
    Schema,
    /// READINESS #6: a secret value or a placeholder in something deployable.
    PlaceholderSecrets,
    /// Restricted pod security (non-root, read-only root fs, no privilege escalation,
    /// capabilities dropped, seccomp RuntimeDefault, no service-account token).
    PodSecurity,
    /// Startup, liveness and readiness probes on the server's real paths.
    Probes,
    /// CPU and memory requests and a memory limit.
    Resources,
    /// At least two replicas (Deployment and HPA floor).
    Replicas,
    /// A PodDisruptionBudget whose selector matches the Deployment's pods.
    DisruptionBudget,
    /// NetworkPolicy: default deny plus a policy with ingress and egress for the pods.
    NetworkPolicy,
    /// Images pinned to a tag or digest, never `latest` or untagged.
    ImagePinning,
    /// terminationGracePeriodSeconds longer than the preStop delay plus the drain deadline.
    ShutdownBudget,
    /// Services and autoscalers point at the Deployment that exists.
    Selectors,
    /// A kustomization the audit cannot render faithfully.
    Kustomize,
    /// The mounted configuration is refused by the server's own validation.
    Config,
    /// The container image recipe: pinned bases, non-root user, health check.
    Dockerfile,
}

impl Rule {
    /// Stable name of the rule, as printed and as matched by tests.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Parse => "parse",
            Rule::Schema => "schema",
            Rule::PlaceholderSecrets => "production_issue_06_placeholder_secrets",
            Rule::PodSecurity => "pod_security",
            Rule::Probes => "probes",
            Rule::Resources => "resources",
            Rule::Replicas => "replicas",
            Rule::DisruptionBudget => "pod_disruption_budget",
            Rule::NetworkPolicy => "network_policy",
            Rule::ImagePinning => "image_pinning",
            Rule::ShutdownBudget => "shutdown_budget",
            Rule::Selectors => "selectors",
            Rule::Kustomize => "kustomize",
            Rule::Config => "config",
            Rule::Dockerfile => "dockerfile",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One broken rule in one object of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file to fix: the manifest, or the overlay's kustomization when the object was
    /// rendered from an overlay.
    pub file: PathBuf,
    /// `Kind/name` of the object (with the overlay or source file when rendered), or the
    /// file itself for file-level problems.
    pub object: String,
    /// The check family.
    pub rule: Rule,
    /// What is wrong and what is expected instead.
    pub message: String,
    /// Whether it fails the audit.
    pub severity: Severity,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] {}: {}: {}",
            self.severity,
            self.rule,
            self.file.display(),
            self.object,
            self.message
        )
    }
}

/// The result of one audit run.
#[derive(Debug, Clone, Default)]
pub struct AuditReport {
    /// Every finding, in a stable order (file, object, rule, message).
    pub findings: Vec<Finding>,
    /// YAML files read (manifests, templates and kustomizations).
    pub files_scanned: usize,
    /// Objects checked, counting each overlay's rendered copy separately.
    pub objects_checked: usize,
    /// The environments checked: `manifest files` (every deployable file as written), then
    /// each root kustomization (overlay) by path, rendered.
    pub environments: Vec<String>,
}

impl AuditReport {
    /// True when no finding is an error.
    pub fn passed(&self) -> bool {
        self.errors().next().is_none()
    }

    /// The findings that fail the audit.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    /// The findings of one rule (any severity).
    pub fn of_rule(&self, rule: Rule) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.rule == rule)
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            writeln!(f, "{finding}")?;
        }
        let errors = self.errors().count();
        write!(
            f,
            "manifest audit: {} files, {} objects in {} environments ({}), {} errors, {} warnings",
            self.files_scanned,
            self.objects_checked,
            self.environments.len(),
            self.environments.join(", "),
            errors,
            self.findings.len() - errors
        )
    }
}

impl Finding {
    /// A finding that fails the audit.
    pub(crate) fn error(
        file: &std::path::Path,
        object: impl Into<String>,
        rule: Rule,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.to_path_buf(),
            object: object.into(),
            rule,
            message: message.into(),
            severity: Severity::Error,
        }
    }

    /// A finding that is reported but does not fail the audit.
    pub(crate) fn warning(
        file: &std::path::Path,
        object: impl Into<String>,
        rule: Rule,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(file, object, rule, message)
        }
    }
}
