//! Checks across objects of one environment: replica floors (Deployment and HPA), a
//! PodDisruptionBudget that really selects the pods, NetworkPolicies that cover ingress and
//! egress with a default deny, and Services/autoscalers that point at what exists.

use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::objects::{pod_labels, pod_spec, selects, Obj};
use super::report::{Finding, Rule};
use super::schema::Typed;

/// Fewest replicas that survive one pod being drained or crashing.
const MIN_REPLICAS: i32 = 2;

/// Checks one environment (all objects of the manifest files, or one rendered overlay).
pub(crate) fn check(set: &[Obj], out: &mut Vec<Finding>) {
    let deployments: Vec<&Obj> = set.iter().filter(|o| o.deployment().is_some()).collect();
    for obj in &deployments {
        let Some(deployment) = obj.deployment() else {
            continue;
        };
        let labels = pod_labels(deployment);
        // With an autoscaler, `spec.replicas` may be omitted (so `kubectl apply` does not
        // reset the autoscaler's count); the HPA's floor is then what counts, and it is
        // checked on the HPA itself below.
        let autoscaled = set.iter().any(|o| match &o.typed {
            Typed::Autoscaler(hpa) => hpa.spec.as_ref().is_some_and(|s| {
                s.scale_target_ref.kind == "Deployment" && s.scale_target_ref.name == obj.name()
            }),
            _ => false,
        });
        let replicas = deployment.spec.as_ref().and_then(|s| s.replicas);
        match replicas {
            None if autoscaled => {}
            _ => {
                // Kubernetes' default when the field is unset.
                let replicas = replicas.unwrap_or(1);
                if replicas < MIN_REPLICAS {
                    out.push(obj.error(
                        Rule::Replicas,
                        format!("spec.replicas is {replicas}; at least {MIN_REPLICAS} keep the service up during a drain or a crash"),
                    ));
                }
            }
        }
        if let Some(spec) = deployment.spec.as_ref() {
            if !selects(&spec.selector, &labels) {
                out.push(obj.error(
                    Rule::Selectors,
                    "spec.selector does not match the pod template's labels",
                ));
            }
        }

        // PodDisruptionBudget.
        let budgets: Vec<&Obj> = set
            .iter()
            .filter(|o| match &o.typed {
                Typed::DisruptionBudget(pdb) => pdb
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .is_some_and(|s| selects(s, &labels)),
                _ => false,
            })
            .collect();
        if budgets.is_empty() {
            out.push(obj.error(
                Rule::DisruptionBudget,
                format!("no PodDisruptionBudget selects the pods (labels {labels:?})"),
            ));
        }

        // NetworkPolicy.
        let policies: Vec<&Obj> = set
            .iter()
            .filter(|o| match &o.typed {
                Typed::NetworkPolicy(np) => np.spec.as_ref().is_some_and(|s| {
                    s.pod_selector
                        .as_ref()
                        .is_none_or(|sel| selects(sel, &labels))
                }),
                _ => false,
            })
            .collect();
        let covers = |direction: &str| {
            policies.iter().any(|o| match &o.typed {
                Typed::NetworkPolicy(np) => np
                    .spec
                    .as_ref()
                    .and_then(|s| s.policy_types.as_ref())
                    .is_some_and(|t| t.iter().any(|d| d == direction)),
                _ => false,
            })
        };
        for direction in ["Ingress", "Egress"] {
            if !covers(direction) {
                out.push(obj.error(
                    Rule::NetworkPolicy,
                    format!("no NetworkPolicy with policyTypes {direction} selects the pods; traffic in that direction is unrestricted"),
                ));
            }
        }
        let default_deny = set.iter().any(|o| match &o.typed {
            Typed::NetworkPolicy(np) => np.spec.as_ref().is_some_and(|s| {
                let all_pods = s.pod_selector.as_ref().is_none_or(|sel| {
                    sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
                        && sel.match_expressions.as_ref().is_none_or(|e| e.is_empty())
                });
                let types = s.policy_types.as_deref().unwrap_or_default();
                all_pods
                    && types.iter().any(|t| t == "Ingress")
                    && types.iter().any(|t| t == "Egress")
                    && s.ingress.as_ref().is_none_or(|r| r.is_empty())
                    && s.egress.as_ref().is_none_or(|r| r.is_empty())
            }),
            _ => false,
        });
        if !default_deny {
            out.push(obj.error(
                Rule::NetworkPolicy,
                "no default-deny NetworkPolicy (podSelector {}, policyTypes Ingress and Egress, no rules)",
            ));
        }
    }

    for obj in set {
        match &obj.typed {
            Typed::DisruptionBudget(pdb) => {
                let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
                let selected = deployments
                    .iter()
                    .filter_map(|d| d.deployment())
                    .any(|d| selector.is_some_and(|s| selects(s, &pod_labels(d))));
                if !selected {
                    out.push(obj.error(
                        Rule::DisruptionBudget,
                        "the selector matches no Deployment's pod labels, so the budget protects nothing",
                    ));
                }
                let spec = pdb.spec.as_ref();
                let blocks_all = spec.and_then(|s| s.max_unavailable.as_ref())
                    == Some(&IntOrString::Int(0))
                    || spec.and_then(|s| s.max_unavailable.as_ref())
                        == Some(&IntOrString::String("0%".to_owned()))
                    || spec.and_then(|s| s.min_available.as_ref())
                        == Some(&IntOrString::String("100%".to_owned()));
                if blocks_all {
                    out.push(obj.warning(
                        Rule::DisruptionBudget,
                        "the budget allows no voluntary eviction, which blocks node drains",
                    ));
                }
            }
            Typed::Autoscaler(hpa) => {
                let Some(spec) = hpa.spec.as_ref() else {
                    continue;
                };
                let target = &spec.scale_target_ref;
                let exists = target.kind == "Deployment"
                    && deployments.iter().any(|d| d.name() == target.name);
                if !exists {
                    out.push(obj.error(
                        Rule::Selectors,
                        format!(
                            "scaleTargetRef {}/{} names no Deployment here",
                            target.kind, target.name
                        ),
                    ));
                }
                let floor = spec.min_replicas.unwrap_or(1);
                if floor < MIN_REPLICAS {
                    out.push(obj.error(
                        Rule::Replicas,
                        format!("minReplicas is {floor}; the autoscaler may scale below {MIN_REPLICAS} replicas"),
                    ));
                }
            }
            Typed::Ingress(ingress) => check_ingress(obj, ingress, set, out),
            Typed::ServiceAccount(account) => {
                let used = deployments.iter().filter_map(|d| d.deployment()).any(|d| {
                    pod_spec(d).and_then(|p| p.service_account_name.as_deref()) == Some(obj.name())
                });
                if used && account.automount_service_account_token != Some(false) {
                    out.push(obj.warning(
                        Rule::PodSecurity,
                        "automountServiceAccountToken is not false on the account; the pod \
                         opts out, but other pods using this account would get a token",
                    ));
                }
            }
            Typed::Service(service) => {
                let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
                    continue;
                };
                let selected = deployments.iter().filter_map(|d| d.deployment()).any(|d| {
                    let labels = pod_labels(d);
                    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
                });
                if !selected {
                    out.push(obj.error(
                        Rule::Selectors,
                        format!("spec.selector {selector:?} matches no Deployment's pods"),
                    ));
                }
            }
            _ => {}
        }
    }
}

/// ingress-nginx annotations a WebSocket route needs: without long proxy timeouts the
/// controller cuts idle sockets after 60 s; without `proxy-buffering: off` streamed replies
/// arrive in bursts.
const WEBSOCKET_ANNOTATIONS: &[(&str, &str)] = &[
    (
        "nginx.ingress.kubernetes.io/proxy-read-timeout",
        "longer than the 60 s pong timeout",
    ),
    (
        "nginx.ingress.kubernetes.io/proxy-send-timeout",
        "longer than the 60 s pong timeout",
    ),
    (
        "nginx.ingress.kubernetes.io/proxy-buffering",
        "\"off\" for streamed replies",
    ),
];

/// Seconds an nginx proxy timeout must exceed: the server's pong timeout.
const PONG_TIMEOUT_SECS: u64 = 60;

fn check_ingress(obj: &Obj, ingress: &Ingress, set: &[Obj], out: &mut Vec<Finding>) {
    let annotations = ingress.metadata.annotations.clone().unwrap_or_default();
    for (key, why) in WEBSOCKET_ANNOTATIONS {
        let value = annotations.get(*key).map(String::as_str);
        let ok = match (*key, value) {
            (_, None) => false,
            (k, Some(v)) if k.ends_with("timeout") => v
                .trim_end_matches('s')
                .parse::<u64>()
                .is_ok_and(|secs| secs > PONG_TIMEOUT_SECS),
            (_, Some(v)) => v == "off",
        };
        if !ok {
            out.push(obj.warning(
                Rule::Selectors,
                format!(
                    "annotation {key} should be set ({why}) for WebSocket traffic; found {value:?}"
                ),
            ));
        }
    }
    let services: Vec<&str> = set
        .iter()
        .filter(|o| matches!(o.typed, Typed::Service(_)))
        .map(Obj::name)
        .collect();
    let backends = ingress
        .spec
        .iter()
        .flat_map(|s| s.rules.iter().flatten())
        .flat_map(|r| r.http.iter().flat_map(|h| h.paths.iter()))
        .filter_map(|p| p.backend.service.as_ref());
    for backend in backends {
        if !services.contains(&backend.name.as_str()) {
            out.push(obj.error(
                Rule::Selectors,
                format!(
                    "backend service {:?} is not among the manifests",
                    backend.name
                ),
            ));
        }
    }
}
