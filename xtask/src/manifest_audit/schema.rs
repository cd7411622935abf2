//! Parsing raw objects into real Kubernetes types, strictly.
//!
//! `k8s-openapi` types, like the API server's decoder, silently ignore fields they do not
//! know, so a misspelled `runAsNonRot: true` would parse as "unset". To catch that, each
//! object is deserialized, serialized back, and the raw value is diffed against the
//! round-trip: a key present in the raw YAML but absent after the round-trip is a field the
//! schema does not have. The one blind spot is a key whose value is `null` (known optional
//! fields set to `null` are dropped by the round-trip too, so such keys are not reported).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// An object of one of the kinds this deployment uses, parsed into its Kubernetes type.
#[derive(Debug, Clone)]
pub(crate) enum Typed {
    /// apps/v1 Deployment.
    Deployment(Box<Deployment>),
    /// v1 Service.
    Service(Box<Service>),
    /// v1 ConfigMap.
    ConfigMap(Box<ConfigMap>),
    /// v1 Secret.
    Secret(Box<Secret>),
    /// v1 ServiceAccount.
    ServiceAccount(Box<ServiceAccount>),
    /// networking.k8s.io/v1 Ingress.
    Ingress(Box<Ingress>),
    /// networking.k8s.io/v1 NetworkPolicy.
    NetworkPolicy(Box<NetworkPolicy>),
    /// autoscaling/v2 HorizontalPodAutoscaler.
    Autoscaler(Box<HorizontalPodAutoscaler>),
    /// policy/v1 PodDisruptionBudget.
    DisruptionBudget(Box<PodDisruptionBudget>),
}

/// The `apiVersion`/`kind` pairs the audit understands, for the "unsupported" message.
const KNOWN: &str = "apps/v1 Deployment, v1 Service, v1 ConfigMap, v1 Secret, v1 ServiceAccount, \
     networking.k8s.io/v1 Ingress and NetworkPolicy, autoscaling/v2 HorizontalPodAutoscaler, \
     policy/v1 PodDisruptionBudget";

/// The outcome of a strict parse: the typed object when it deserialized at all, and every
/// schema problem (a type error with its path, or each unknown field). An object with only
/// unknown fields is still returned so the other checks run on what Kubernetes would see
/// (a misspelled `runAsNonRoot` then also shows up as "runAsNonRoot unset").
#[derive(Debug)]
pub(crate) struct Parsed {
    /// The object, unless it could not be deserialized.
    pub typed: Option<Typed>,
    /// Schema problems, each a complete message.
    pub problems: Vec<String>,
}

/// Parses `raw` into its Kubernetes type, strictly.
pub(crate) fn parse(raw: &Value) -> Parsed {
    let mut problems = Vec::new();
    let typed = parse_kind(raw, &mut problems);
    Parsed { typed, problems }
}

fn parse_kind(raw: &Value, problems: &mut Vec<String>) -> Option<Typed> {
    let api_version = raw.get("apiVersion").and_then(Value::as_str);
    let kind = raw.get("kind").and_then(Value::as_str);
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        problems.push("document has no apiVersion or kind".to_owned());
        return None;
    };
    let p = problems;
    Some(match (api_version, kind) {
        ("apps/v1", "Deployment") => Typed::Deployment(strict(raw, kind, p)?),
        ("v1", "Service") => Typed::Service(strict(raw, kind, p)?),
        ("v1", "ConfigMap") => Typed::ConfigMap(strict(raw, kind, p)?),
        ("v1", "Secret") => Typed::Secret(strict(raw, kind, p)?),
        ("v1", "ServiceAccount") => Typed::ServiceAccount(strict(raw, kind, p)?),
        ("networking.k8s.io/v1", "Ingress") => Typed::Ingress(strict(raw, kind, p)?),
        ("networking.k8s.io/v1", "NetworkPolicy") => Typed::NetworkPolicy(strict(raw, kind, p)?),
        ("autoscaling/v2", "HorizontalPodAutoscaler") => Typed::Autoscaler(strict(raw, kind, p)?),
        ("policy/v1", "PodDisruptionBudget") => Typed::DisruptionBudget(strict(raw, kind, p)?),
        _ => {
            p.push(format!(
                "{api_version} {kind} is not a kind this audit checks (known: {KNOWN}); \
                 extend xtask's manifest_audit before deploying it"
            ));
            return None;
        }
    })
}

fn strict<T: DeserializeOwned + Serialize>(
    raw: &Value,
    kind: &str,
    problems: &mut Vec<String>,
) -> Option<Box<T>> {
    let typed: T = match serde_path_to_error::deserialize(raw.clone()) {
        Ok(typed) => typed,
        Err(e) => {
            problems.push(format!(
                "{kind} does not match its schema at `{}`: {}",
                e.path(),
                e.inner()
            ));
            return None;
        }
    };
    match serde_json::to_value(&typed) {
        Ok(round_trip) => {
            let mut unknown = Vec::new();
            unknown_fields(raw, &round_trip, "", &mut unknown);
            problems.extend(unknown.into_iter().map(|path| {
                format!("unknown field `{path}`: not in the Kubernetes {kind} schema (misspelled?)")
            }));
        }
        Err(e) => problems.push(format!("{kind} cannot be serialized back: {e}")),
    }
    Some(Box::new(typed))
}

/// Collects the paths of keys present in `raw` but not in `round_trip`.
fn unknown_fields(raw: &Value, round_trip: &Value, path: &str, out: &mut Vec<String>) {
    match (raw, round_trip) {
        (Value::Object(raw), Value::Object(back)) => {
            for (key, value) in raw {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match back.get(key) {
                    Some(back_value) => unknown_fields(value, back_value, &child, out),
                    None if value.is_null() => {}
                    None => out.push(child),
                }
            }
        }
        (Value::Array(raw), Value::Array(back)) => {
            for (index, (value, back_value)) in raw.iter().zip(back).enumerate() {
                unknown_fields(value, back_value, &format!("{path}[{index}]"), out);
            }
        }
        _ => {}
    }
}
