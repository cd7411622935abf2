//! A checked object (where it came from, its raw value and its type) and the small helpers
//! the checks share: pod spec access, label selection, container environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use super::report::{Finding, Rule};
use super::schema::Typed;

/// One object as checked: from a manifest file, or rendered from an overlay.
#[derive(Debug, Clone)]
pub(crate) struct Obj {
    /// The file to fix (the manifest, or the overlay's kustomization).
    pub file: PathBuf,
    /// `Kind/name`, plus where a rendered object came from.
    pub label: String,
    /// The object as written (or rendered).
    pub raw: Value,
    /// The object as its Kubernetes type.
    pub typed: Typed,
}

impl Obj {
    /// An error finding about this object.
    pub(crate) fn error(&self, rule: Rule, message: impl Into<String>) -> Finding {
        Finding::error(&self.file, self.label.clone(), rule, message)
    }

    /// A warning finding about this object.
    pub(crate) fn warning(&self, rule: Rule, message: impl Into<String>) -> Finding {
        Finding::warning(&self.file, self.label.clone(), rule, message)
    }

    /// The object's `metadata.name`.
    pub(crate) fn name(&self) -> &str {
        self.raw
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The Deployment, when this object is one.
    pub(crate) fn deployment(&self) -> Option<&Deployment> {
        match &self.typed {
            Typed::Deployment(d) => Some(d),
            _ => None,
        }
    }
}

/// The pod spec of a Deployment's template.
pub(crate) fn pod_spec(deployment: &Deployment) -> Option<&PodSpec> {
    deployment.spec.as_ref()?.template.spec.as_ref()
}

/// The labels the Deployment's pods carry.
pub(crate) fn pod_labels(deployment: &Deployment) -> BTreeMap<String, String> {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

/// Every container of the pod, init containers included, with the list it is in.
pub(crate) fn all_containers(pod: &PodSpec) -> impl Iterator<Item = (&'static str, &Container)> {
    let init = pod.init_containers.iter().flatten();
    pod.containers
        .iter()
        .map(|c| ("container", c))
        .chain(init.map(|c| ("init container", c)))
}

/// Whether a label selector selects a pod with `labels` (Kubernetes semantics: every
/// `matchLabels` pair and every expression must hold; an empty selector selects all).
pub(crate) fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let pairs_hold = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_hold = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    pairs_hold && expressions_hold
}

/// The plain `value` of environment variable `name` in a container.
pub(crate) fn env_value<'a>(container: &'a Container, name: &str) -> Option<&'a str> {
    container
        .env
        .iter()
        .flatten()
        .filter(|e| e.name == name)
        .filter_map(|e| e.value.as_deref())
        .next_back()
}
