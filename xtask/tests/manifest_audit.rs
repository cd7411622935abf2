//! The manifest audit against the real manifests (they must pass every check) and against
//! deliberately broken copies written to a temp dir (each must fail with a finding that
//! names the file, the object and the rule).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use xtask::manifest_audit::{
    audit_dockerfile, audit_manifests, AuditReport, Finding, Rule, Severity, DOCKERFILE,
    MANIFEST_DIR,
};

fn manifest_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(MANIFEST_DIR)
}

fn real_report() -> AuditReport {
    audit_manifests(&manifest_dir())
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// One change to a copy of the manifests.
enum Edit<'a> {
    /// Replace the first occurrence of a text (which must exist) in a file.
    Replace(&'a str, &'a str, &'a str),
    /// Write a whole file.
    Write(&'a str, &'a str),
    /// Delete a file.
    Remove(&'a str),
}

/// Audits a copy of the real manifests with `edits` applied.
fn audit_broken(edits: &[Edit<'_>]) -> AuditReport {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&manifest_dir(), dir.path());
    for edit in edits {
        match edit {
            Edit::Replace(file, from, to) => {
                let path = dir.path().join(file);
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(text.contains(from), "{file} no longer contains {from:?}");
                std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
            }
            Edit::Write(file, text) => std::fs::write(dir.path().join(file), text).unwrap(),
            Edit::Remove(file) => std::fs::remove_file(dir.path().join(file)).unwrap(),
        }
    }
    audit_manifests(dir.path())
}

/// The error findings of `rule` in `file` about an object whose label contains `object`
/// and whose message contains `message`; at least one must exist.
fn assert_finding<'r>(
    report: &'r AuditReport,
    rule: Rule,
    file: &str,
    object: &str,
    message: &str,
) -> &'r Finding {
    report
        .errors()
        .find(|f| {
            f.rule == rule
                && f.file == Path::new(file)
                && f.object.contains(object)
                && f.message.contains(message)
        })
        .unwrap_or_else(|| {
            panic!(
                "expected an error [{rule}] in {file} about {object} mentioning {message:?}; \
                 report:\n{report}"
            )
        })
}

fn assert_rule_clean(report: &AuditReport, rule: Rule) {
    let findings: Vec<String> = report.of_rule(rule).map(ToString::to_string).collect();
    assert!(
        findings.is_empty(),
        "[{rule}] findings on the real manifests:\n{}",
        findings.join("\n")
    );
}

const DEPLOYMENT: &str = "base/deployment.yaml";
const DEVELOPMENT: &str = "overlays/development/kustomization.yaml";
const PRODUCTION: &str = "overlays/production/kustomization.yaml";

// --- READINESS #6 --------------------------------------------------------------------------

#[test]
fn production_issue_06_placeholder_secrets() {
    // The real manifests: no secret value and no placeholder anywhere deployable, and the
    // scan really covered the plain files, the template and both overlays.
    let report = real_report();
    assert_rule_clean(&report, Rule::PlaceholderSecrets);
    assert!(report.passed(), "{report}");
    assert_eq!(
        report.environments,
        vec![
            "manifest files".to_owned(),
            DEVELOPMENT.to_owned(),
            PRODUCTION.to_owned()
        ]
    );
    assert!(report.files_scanned >= 12, "{report}");

    // The legacy mistake: a placeholder secret value in the Deployment.
    let report = audit_broken(&[Edit::Replace(
        DEPLOYMENT,
        "            - name: CHATBOX_SHUTDOWN_TIMEOUT\n",
        "            - name: JWT_SECRET_FALLBACK\n              value: REPLACE_WITH_A_REAL_SECRET\n            - name: CHATBOX_SHUTDOWN_TIMEOUT\n",
    )]);
    assert!(!report.passed());
    assert_finding(
        &report,
        Rule::PlaceholderSecrets,
        DEPLOYMENT,
        "Deployment/chatbox",
        "placeholder marker",
    );
    assert_finding(
        &report,
        Rule::PlaceholderSecrets,
        DEPLOYMENT,
        "Deployment/chatbox",
        "JWT_SECRET_FALLBACK has a literal value",
    );
    // ... and in every overlay that deploys it.
    assert_finding(
        &report,
        Rule::PlaceholderSecrets,
        PRODUCTION,
        "Deployment/chatbox (rendered from base/deployment.yaml)",
        "placeholder marker",
    );

    // A real-looking value committed as a Secret.
    let report = audit_broken(&[Edit::Write(
        "base/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: chatbox-secrets\nstringData:\n  JWT_SECRET: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n",
    )]);
    let finding = assert_finding(
        &report,
        Rule::PlaceholderSecrets,
        "base/secret.yaml",
        "Secret/chatbox-secrets",
        "JWT_SECRET",
    );
    assert_eq!(finding.severity, Severity::Error);
}

#[test]
fn a_secret_literal_in_an_env_value_fails() {
    let report = audit_broken(&[Edit::Replace(
        DEPLOYMENT,
        "            - name: JWT_SECRET\n              valueFrom:\n                secretKeyRef:\n                  name: chatbox-secrets\n                  key: JWT_SECRET\n",
        "            - name: JWT_SECRET\n              value: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n",
    )]);
    assert_finding(
        &report,
        Rule::PlaceholderSecrets,
        DEPLOYMENT,
        "Deployment/chatbox",
        "env JWT_SECRET has a literal value",
    );
}

#[test]
fn a_mongo_uri_with_a_password_in_plain_env_fails() {
    let report = audit_broken(&[Edit::Replace(
        PRODUCTION,
        "          name: CHATBOX_ALLOWED_ORIGINS\n",
        "          name: MONGO_URI_OVERRIDE\n          value: mongodb://chat:hunter2@mongodb:27017/chat\n      - op: add\n        path: /spec/template/spec/containers/0/env/-\n        value:\n          name: CHATBOX_ALLOWED_ORIGINS\n",
    )]);
    assert_finding(
        &report,
        Rule::PlaceholderSecrets,
        PRODUCTION,
        "Deployment/chatbox",
        "URI with a password",
    );
}

#[test]
fn a_secret_in_the_configmap_toml_fails() {
    let report = audit_broken(&[Edit::Replace(
        "base/configmap.yaml",
        "    [auth]\n",
        "    [auth]\n    jwt_secret = \"Zq8vN3xR7tLm2Kp9Wd4Hs6Jf1Gb5Yc0Eu\"\n",
    )]);
    assert_finding(
        &report,
        Rule::PlaceholderSecrets,
        "base/configmap.yaml",
        "ConfigMap/chatbox-config",
        "`auth.jwt_secret` is a secret in a ConfigMap",
    );
}

#[test]
fn a_template_holds_only_variable_references() {
    let report = audit_broken(&[Edit::Replace(
        "secret.template.yaml",
        "\"${MONGO_URI}\"",
        "\"mongodb://mongodb:27017\"",
    )]);
    assert_finding(
        &report,
        Rule::PlaceholderSecrets,
        "secret.template.yaml",
        "Secret/chatbox-secrets",
        "template value of MONGO_URI is literal",
    );
}

#[test]
fn a_template_listed_in_a_kustomization_fails() {
    let report = audit_broken(&[Edit::Replace(
        PRODUCTION,
        "  - ../../base\n",
        "  - ../../base\n  - ../../secret.template.yaml\n",
    )]);
    assert_finding(
        &report,
        Rule::PlaceholderSecrets,
        PRODUCTION,
        "Kustomization",
        "is a template",
    );
}

#[test]
fn a_secret_generator_fails() {
    let report = audit_broken(&[Edit::Replace(
        DEVELOPMENT,
        "replicas:\n",
        "secretGenerator:\n  - name: chatbox-secrets\n    literals:\n      - JWT_SECRET=Zq8vN3xR7tLm2Kp9Wd4Hs6Jf1Gb5Yc0Eu\nreplicas:\n",
    )]);
    assert_finding(
        &report,
        Rule::PlaceholderSecrets,
        DEVELOPMENT,
        "Kustomization",
        "secretGenerator",
    );
}

// --- schema strictness -----------------------------------------------------------------------

#[test]
fn real_manifests_match_the_kubernetes_schema() {
    let report = real_report();
    assert_rule_clean(&report, Rule::Parse);
    assert_rule_clean(&report, Rule::Schema);
    assert_rule_clean(&report, Rule::Kustomize);
    // 10 objects in the files (template included) plus 9 per overlay.
    assert_eq!(report.objects_checked, 28, "{report}");
}

#[test]
fn a_misspelled_field_name_fails_with_its_path() {
    let report = audit_broken(&[Edit::Replace(
        DEPLOYMENT,
        "            readOnlyRootFilesystem: true\n",
        "            readOnlyRootFileSystem: true\n",
    )]);
    assert_finding(
        &report,
        Rule::Schema,
        DEPLOYMENT,
        "Deployment/chatbox",
        "unknown field `spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem`",
    );
    // The other checks still run on what Kubernetes would see: the setting is absent.
    assert_finding(
        &report,
        Rule::PodSecurity,
        DEPLOYMENT,
        "Deployment/chatbox",
        "readOnlyRootFilesystem must be true (found unset)",
    );
}

#[test]
fn a_misspelled_field_in_an_overlay_patch_fails_against_the_overlay() {
    let report = audit_broken(&[Edit::Replace(
        PRODUCTION,
        "          limits:\n            memory: 1Gi\n",
        "          limit:\n            memory: 1Gi\n",
    )]);
    assert_finding(
        &report,
        Rule::Schema,
        PRODUCTION,
        "Deployment/chatbox",
        "resources.limit`",
    );
}

#[test]
fn a_wrongly_typed_value_fails() {
    let report = audit_broken(&[Edit::Replace(
        DEPLOYMENT,
        "  replicas: 2\n",
        "  replicas: two\n",
    )]);
    assert_finding(
        &report,
        Rule::Schema,
        DEPLOYMENT,
        "Deployment/chatbox",
        "spec.replicas",
    );
}

#[test]
fn an_unknown_kind_and_invalid_yaml_are_reported() {
    let report = audit_broken(&[
        Edit::Write(
            "base/extra.yaml",
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: x\n",
        ),
        Edit::Write("base/broken.yaml", "kind: [unclosed\n"),
    ]);
    assert_finding(
        &report,
        Rule::Schema,
        "base/extra.yaml",
        "StatefulSet/x",
        "not a kind this audit checks",
    );
    assert_finding(
        &report,
        Rule::Parse,
        "base/broken.yaml",
        "(file)",
        "invalid YAML",
    );
}

#[test]
fn an_unsupported_kustomization_field_is_refused_not_ignored() {
    let report = audit_broken(&[Edit::Replace(
        PRODUCTION,
        "namespace: chatbox\n",
        "namespace: chatbox\nnamePrefix: prod-\n",
    )]);
    assert_finding(
        &report,
        Rule::Kustomize,
        PRODUCTION,
        "Kustomization",
        "namePrefix",
    );
}

// --- pod security ------------------------------------------------------------------------------

#[test]
fn real_manifests_have_restricted_pod_security() {
    assert_rule_clean(&real_report(), Rule::PodSecurity);
}

#[test]
fn run_as_non_root_false_fails() {
    let report = audit_broken(&[Edit::Replace(
        DEPLOYMENT,
        "            runAsNonRoot: true\n",
        "            runAsNonRoot: false\n",
    )]);
    assert!(!report.passed());
    let finding = assert_finding(
        &report,
        Rule::PodSecurity,
        DEPLOYMENT,
        "Deployment/chatbox",
        "runAsNonRoot must be true (found false)",
    );
    let shown = finding.to_string();
    assert!(
        shown.contains("base/deployment.yaml") && shown.contains("[pod_security]"),
        "{shown}"
    );
}

#[test]
fn missing_hardening_fields_each_fail() {
    let report = audit_broken(&[
        Edit::Replace(DEPLOYMENT, "            readOnlyRootFilesystem: true\n", ""),
        Edit::Replace(
            DEPLOYMENT,
            "            allowPrivilegeEscalation: false\n",
            "",
        ),
        Edit::Replace(
            DEPLOYMENT,
            "              drop: [\"ALL\"]\n",
            "              drop: [\"NET_RAW\"]\n",
        ),
        Edit::Replace(
            DEPLOYMENT,
            "      automountServiceAccountToken: false\n",
            "",
        ),
    ]);
    for message in [
        "readOnlyRootFilesystem must be true",
        "allowPrivilegeEscalation must be false",
        "capabilities.drop must contain ALL",
        "automountServiceAccountToken must be false",
    ] {
        assert_finding(
            &report,
            Rule::PodSecurity,
            DEPLOYMENT,
            "Deployment/chatbox",
            message,
        );
    }
}

#[test]
fn an_unconfined_seccomp_profile_fails() {
    let report = audit_broken(&[Edit::Replace(
        DEPLOYMENT,
        "            seccompProfile:\n              type: RuntimeDefault\n",
        "            seccompProfile:\n              type: Unconfined\n",
    )]);
    assert_finding(
        &report,
        Rule::PodSecurity,
        DEPLOYMENT,
        "Deployment/chatbox",
        "seccompProfile.type must be RuntimeDefault (found Unconfined)",
    );
}

// --- probes --------------------------------------------------------------------------------------

#[test]
fn real_manifests_probe_the_real_paths() {
    assert_rule_clean(&real_report(), Rule::Probes);
}

#[test]
fn a_probe_without_the_path_prefix_fails() {
    let report = audit_broken(&[Edit::Replace(
        DEPLOYMENT,
        "              path: /chatbox/readyz\n",
        "              path: /readyz\n",
    )]);
    assert_finding(
        &report,
        Rule::Probes,
        DEPLOYMENT,
        "Deployment/chatbox",
        "readinessProbe probes \"/readyz\", expected \"/chatbox/readyz\"",
    );
}

#[test]
fn a_missing_startup_probe_fails() {
    let report = audit_broken(&[Edit::Replace(
        DEPLOYMENT,
        "          startupProbe:\n            httpGet:\n              path: /chatbox/healthz\n              port: http\n            periodSeconds: 2\n            timeoutSeconds: 2\n            failureThreshold: 30\n",
        "",
    )]);
    assert_finding(
        &report,
        Rule::Probes,
        DEPLOYMENT,
        "Deployment/chatbox",
        "startupProbe is missing",
    );
}

// --- resources, replicas, budgets --------------------------------------------------------------------

#[test]
fn real_manifests_request_resources_and_limit_memory() {
    assert_rule_clean(&real_report(), Rule::Resources);
}

#[test]
fn a_missing_memory_limit_fails_in_the_overlay_that_drops_it() {
    let report = audit_broken(&[Edit::Replace(
        DEVELOPMENT,
        "          limits:\n            memory: 384Mi\n",
        "",
    )]);
    assert_finding(
        &report,
        Rule::Resources,
        DEVELOPMENT,
        "Deployment/chatbox",
        "resources.limits.memory is missing",
    );
    assert!(
        report
            .of_rule(Rule::Resources)
            .all(|f| f.file == Path::new(DEVELOPMENT)),
        "{report}"
    );
}

#[test]
fn real_manifests_run_at_least_two_replicas_with_a_matching_budget() {
    let report = real_report();
    assert_rule_clean(&report, Rule::Replicas);
    assert_rule_clean(&report, Rule::DisruptionBudget);
    assert_rule_clean(&report, Rule::Selectors);
}

#[test]
fn one_replica_fails() {
    let report = audit_broken(&[Edit::Replace(
        PRODUCTION,
        "    count: 3\n",
        "    count: 1\n",
    )]);
    assert_finding(
        &report,
        Rule::Replicas,
        PRODUCTION,
        "Deployment/chatbox",
        "spec.replicas is 1",
    );
}

#[test]
fn a_budget_selecting_other_pods_fails() {
    let report = audit_broken(&[Edit::Replace(
        "base/pdb.yaml",
        "      app.kubernetes.io/component: server\n",
        "      app.kubernetes.io/component: worker\n",
    )]);
    assert_finding(
        &report,
        Rule::DisruptionBudget,
        "base/pdb.yaml",
        "PodDisruptionBudget/chatbox",
        "matches no Deployment",
    );
    assert_finding(
        &report,
        Rule::DisruptionBudget,
        DEPLOYMENT,
        "Deployment/chatbox",
        "no PodDisruptionBudget selects the pods",
    );
}

// --- network policy --------------------------------------------------------------------------------

#[test]
fn real_manifests_restrict_ingress_and_egress() {
    assert_rule_clean(&real_report(), Rule::NetworkPolicy);
}

#[test]
fn a_policy_without_egress_and_no_default_deny_fail() {
    let report = audit_broken(&[Edit::Write(
        "base/networkpolicy.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: chatbox\nspec:\n  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: chatbox\n  policyTypes: [Ingress]\n  ingress:\n    - ports:\n        - port: 8080\n",
    )]);
    assert_finding(
        &report,
        Rule::NetworkPolicy,
        DEPLOYMENT,
        "Deployment/chatbox",
        "policyTypes Egress",
    );
    assert_finding(
        &report,
        Rule::NetworkPolicy,
        DEPLOYMENT,
        "Deployment/chatbox",
        "no default-deny NetworkPolicy",
    );
}

// --- images --------------------------------------------------------------------------------------------

#[test]
fn real_manifests_pin_their_images() {
    assert_rule_clean(&real_report(), Rule::ImagePinning);
}

#[test]
fn a_latest_tag_fails() {
    let report = audit_broken(&[Edit::Replace(
        DEPLOYMENT,
        "ghcr.io/chatbox/chat-server:0.1.0",
        "ghcr.io/chatbox/chat-server:latest",
    )]);
    assert_finding(
        &report,
        Rule::ImagePinning,
        DEPLOYMENT,
        "Deployment/chatbox",
        "moving tag \"latest\"",
    );
}

#[test]
fn an_untagged_image_and_a_latest_overlay_tag_fail() {
    let report = audit_broken(&[
        Edit::Replace(
            DEPLOYMENT,
            "ghcr.io/chatbox/chat-server:0.1.0",
            "ghcr.io/chatbox/chat-server",
        ),
        Edit::Replace(PRODUCTION, "    newTag: 0.1.0\n", "    newTag: latest\n"),
    ]);
    assert_finding(
        &report,
        Rule::ImagePinning,
        DEPLOYMENT,
        "Deployment/chatbox",
        "has no tag",
    );
    assert_finding(
        &report,
        Rule::ImagePinning,
        PRODUCTION,
        "Deployment/chatbox",
        "moving tag \"latest\"",
    );
    // The development overlay pins a tag over the untagged base image, so it passes.
    assert!(
        report
            .of_rule(Rule::ImagePinning)
            .all(|f| f.file != Path::new(DEVELOPMENT)),
        "{report}"
    );
}

#[test]
fn a_registry_port_is_not_mistaken_for_a_tag() {
    let report = audit_broken(&[Edit::Replace(
        DEPLOYMENT,
        "ghcr.io/chatbox/chat-server:0.1.0",
        "registry.internal:5000/chatbox/chat-server",
    )]);
    assert_finding(
        &report,
        Rule::ImagePinning,
        DEPLOYMENT,
        "Deployment/chatbox",
        "has no tag",
    );
}

// --- shutdown budget ------------------------------------------------------------------------------------

#[test]
fn real_manifests_give_the_drain_enough_grace() {
    assert_rule_clean(&real_report(), Rule::ShutdownBudget);
}

#[test]
fn a_grace_period_shorter_than_pre_stop_plus_drain_fails() {
    let report = audit_broken(&[Edit::Replace(
        DEPLOYMENT,
        "      terminationGracePeriodSeconds: 60\n",
        "      terminationGracePeriodSeconds: 40\n",
    )]);
    assert_finding(
        &report,
        Rule::ShutdownBudget,
        DEPLOYMENT,
        "Deployment/chatbox",
        "terminationGracePeriodSeconds 40 must exceed preStop 10 s + drain 30 s = 40 s",
    );
}

#[test]
fn a_longer_drain_in_the_env_raises_the_needed_grace() {
    let report = audit_broken(&[Edit::Replace(
        DEPLOYMENT,
        "              value: 30s\n",
        "              value: 2m\n",
    )]);
    assert_finding(
        &report,
        Rule::ShutdownBudget,
        DEPLOYMENT,
        "Deployment/chatbox",
        "drain 120 s",
    );
}

#[test]
fn a_missing_pre_stop_delay_fails() {
    let report = audit_broken(&[Edit::Replace(
        DEPLOYMENT,
        "          lifecycle:\n            preStop:\n              sleep:\n                seconds: 10\n",
        "",
    )]);
    assert_finding(
        &report,
        Rule::ShutdownBudget,
        DEPLOYMENT,
        "Deployment/chatbox",
        "no preStop delay",
    );
}

// --- mounted configuration ----------------------------------------------------------------------------

#[test]
fn real_configuration_is_a_valid_production_config() {
    assert_rule_clean(&real_report(), Rule::Config);
}

#[test]
fn a_config_typo_is_refused_by_the_servers_own_validation() {
    let report = audit_broken(&[Edit::Replace(
        "base/configmap.yaml",
        "    request_timeout = \"30s\"\n",
        "    request_timout = \"30s\"\n",
    )]);
    assert_finding(
        &report,
        Rule::Config,
        DEPLOYMENT,
        "Deployment/chatbox",
        "server would refuse to start",
    );
    assert_finding(
        &report,
        Rule::Config,
        PRODUCTION,
        "Deployment/chatbox",
        "request_timout",
    );
}

#[test]
fn a_development_mode_config_fails() {
    let report = audit_broken(&[
        Edit::Replace(
            "base/configmap.yaml",
            "    mode = \"production\"\n",
            "    mode = \"development\"\n",
        ),
        Edit::Replace(
            DEPLOYMENT,
            "            - name: CHATBOX_MODE\n              value: production\n",
            "",
        ),
    ]);
    assert_finding(
        &report,
        Rule::Config,
        DEPLOYMENT,
        "Deployment/chatbox",
        "development mode",
    );
}

#[test]
fn deleting_the_network_policy_file_fails() {
    let report = audit_broken(&[
        Edit::Remove("base/networkpolicy.yaml"),
        Edit::Replace("base/kustomization.yaml", "  - networkpolicy.yaml\n", ""),
    ]);
    assert_finding(
        &report,
        Rule::NetworkPolicy,
        PRODUCTION,
        "Deployment/chatbox",
        "policyTypes Ingress",
    );
}

#[test]
fn a_config_mounted_from_a_secret_during_key_rotation_is_a_warning_not_an_error() {
    let report = audit_broken(&[Edit::Replace(
        "base/deployment.yaml",
        "          configMap:\n            name: chatbox-config\n",
        "          secret:\n            secretName: chatbox-config\n",
    )]);
    assert!(report.passed(), "{report}");
    let warning = report
        .of_rule(Rule::Config)
        .find(|f| f.message.contains("comes from Secret \"chatbox-config\""))
        .unwrap_or_else(|| panic!("no warning; report:\n{report}"));
    assert_eq!(warning.severity, Severity::Warning);
}

// --- Dockerfile ---------------------------------------------------------------------------------------

fn dockerfile_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(DOCKERFILE)
}

/// Audits a copy of the real Dockerfile with text replacements applied.
fn audit_dockerfile_with(replacements: &[(&str, &str)]) -> AuditReport {
    let dir = tempfile::tempdir().unwrap();
    let mut text = std::fs::read_to_string(dockerfile_path()).unwrap();
    for (from, to) in replacements {
        assert!(
            text.contains(from),
            "the Dockerfile no longer contains {from:?}"
        );
        text = text.replacen(from, to, 1);
    }
    let path = dir.path().join("Dockerfile");
    std::fs::write(&path, text).unwrap();
    audit_dockerfile(&path)
}

#[test]
fn the_real_dockerfile_is_pinned_non_root_and_health_checked() {
    let report = audit_dockerfile(&dockerfile_path());
    assert!(report.findings.is_empty(), "{report}");
}

#[test]
fn a_latest_or_untagged_base_image_fails() {
    let report = audit_dockerfile_with(&[(
        "ARG RUNTIME_IMAGE=docker.io/library/debian:13.1-slim",
        "ARG RUNTIME_IMAGE=docker.io/library/debian:latest",
    )]);
    assert!(
        report.errors().any(|f| f.rule == Rule::Dockerfile
            && f.message
                .contains("debian:latest: base image is not pinned")),
        "{report}"
    );
    let report = audit_dockerfile_with(&[(
        "ARG RUST_IMAGE=docker.io/library/rust:1.95.0-trixie",
        "ARG RUST_IMAGE=rust",
    )]);
    assert!(
        report
            .errors()
            .any(|f| f.message.contains("FROM rust: base image is not pinned")),
        "{report}"
    );
}

#[test]
fn a_root_user_or_no_health_check_fails() {
    let report = audit_dockerfile_with(&[
        ("USER ${APP_UID}:${APP_GID}", "USER root"),
        ("HEALTHCHECK --interval", "# HEALTHCHECK --interval"),
    ]);
    assert!(
        report
            .errors()
            .any(|f| f.message.contains("USER root runs as root")),
        "{report}"
    );
    assert!(
        report
            .errors()
            .any(|f| f.message.contains("no HEALTHCHECK")),
        "{report}"
    );
}

#[test]
fn a_secret_baked_into_the_image_fails() {
    let report = audit_dockerfile_with(&[(
        "ENV CHATBOX_HOST=0.0.0.0",
        "ENV JWT_SECRET=Zq8vN3xR7tLm2Kp9Wd4Hs6Jf1Gb5Yc0Eu CHATBOX_HOST=0.0.0.0",
    )]);
    let finding = report
        .errors()
        .find(|f| f.rule == Rule::PlaceholderSecrets)
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        finding.message.contains("ENV JWT_SECRET bakes a secret"),
        "{finding}"
    );
    assert!(finding.object.starts_with("line "), "{finding}");
}

// --- the template left unrendered -------------------------------------------------------------------

fn yaml_string(file: &str, pointer: &str) -> String {
    let text = std::fs::read_to_string(manifest_dir().join(file)).unwrap();
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let json = serde_json::to_value(yaml).unwrap();
    json.pointer(pointer)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("{file} has no string at {pointer}"))
        .to_owned()
}

#[test]
fn production_issue_06_unrendered_template_is_refused_at_startup() {
    // If secret.template.yaml were applied without envsubst, the pods would get the literal
    // `${VAR}` strings. The server's own loader must refuse to start with them.
    let config = yaml_string("base/configmap.yaml", "/data/config.toml");
    let mut env = std::collections::HashMap::new();
    for key in [
        "JWT_SECRET",
        "ENCRYPTION_KEY",
        "MONGO_URI",
        "LLM_PROVIDER_OPENAI_API_KEY",
        "LLM_PROVIDER_ANTHROPIC_API_KEY",
    ] {
        let value = yaml_string("secret.template.yaml", &format!("/stringData/{key}"));
        assert_eq!(
            value,
            format!("${{{key}}}"),
            "the template holds only a reference"
        );
        env.insert(key.to_owned(), value);
    }
    env.insert(
        "CHATBOX_ALLOWED_ORIGINS".to_owned(),
        "https://chat.example.com".to_owned(),
    );
    let errors = chat_config::Config::from_toml_str(&config, &env)
        .expect_err("the server started with unrendered template values");
    for field in ["auth.jwt_secret", "encryption.key", "storage.mongodb.uri"] {
        assert!(errors.mentions(field), "{field} not refused: {errors}");
    }
}

#[test]
fn replicas_may_be_left_to_an_autoscaler_with_a_floor_of_two() {
    let report = audit_broken(&[Edit::Replace(DEPLOYMENT, "  replicas: 2\n", "")]);
    assert_rule_clean(&report, Rule::Replicas);

    let report = audit_broken(&[
        Edit::Replace(DEPLOYMENT, "  replicas: 2\n", ""),
        Edit::Replace("base/hpa.yaml", "  minReplicas: 2\n", "  minReplicas: 1\n"),
    ]);
    assert_finding(
        &report,
        Rule::Replicas,
        "base/hpa.yaml",
        "HorizontalPodAutoscaler/chatbox",
        "minReplicas is 1",
    );

    let report = audit_broken(&[
        Edit::Replace(DEPLOYMENT, "  replicas: 2\n", ""),
        Edit::Remove("base/hpa.yaml"),
        Edit::Replace("base/kustomization.yaml", "  - hpa.yaml\n", ""),
    ]);
    assert_finding(
        &report,
        Rule::Replicas,
        DEPLOYMENT,
        "Deployment/chatbox",
        "spec.replicas is 1",
    );
}
