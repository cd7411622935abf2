//! The shutdown budget: Kubernetes kills the pod `terminationGracePeriodSeconds` after it
//! starts terminating, preStop included. The server needs the preStop delay (for endpoints
//! and the ingress to stop routing to it) plus its drain deadline (`server.shutdown_timeout`,
//! env `CHATBOX_SHUTDOWN_TIMEOUT`) to close sockets with 1001 and finish streams; a grace
//! period shorter than that turns every rollout into dropped replies.

use std::time::Duration;

use k8s_openapi::api::core::v1::Container;

use super::objects::{env_value, pod_spec, Obj};
use super::report::{Finding, Rule};

/// The server's default drain deadline.
pub(crate) const DEFAULT_DRAIN: Duration = Duration::from_secs(30);

/// Checks a Deployment; `config_drain` is the drain deadline from its mounted config file.
pub(crate) fn check(obj: &Obj, config_drain: Option<Duration>, out: &mut Vec<Finding>) {
    let Some(pod) = obj.deployment().and_then(pod_spec) else {
        return;
    };
    // Kubernetes' default when the field is unset.
    let grace = pod.termination_grace_period_seconds.unwrap_or(30);
    for container in &pod.containers {
        let drain = match env_value(container, "CHATBOX_SHUTDOWN_TIMEOUT") {
            Some(text) => match humantime::parse_duration(text.trim()) {
                Ok(d) => d,
                Err(e) => {
                    out.push(obj.error(
                        Rule::ShutdownBudget,
                        format!("container {:?}: CHATBOX_SHUTDOWN_TIMEOUT {text:?} is not a duration: {e}", container.name),
                    ));
                    continue;
                }
            },
            None => config_drain.unwrap_or(DEFAULT_DRAIN),
        };
        let Some(pre_stop) = pre_stop_delay(container) else {
            out.push(obj.error(
                Rule::ShutdownBudget,
                format!(
                    "container {:?} has no preStop delay (lifecycle.preStop.sleep); without it \
                     the pod stops accepting before the ingress stops routing to it",
                    container.name
                ),
            ));
            continue;
        };
        let needed = pre_stop.saturating_add(drain.as_secs());
        if grace <= i64::try_from(needed).unwrap_or(i64::MAX) {
            out.push(obj.error(
                Rule::ShutdownBudget,
                format!(
                    "terminationGracePeriodSeconds {grace} must exceed preStop {pre_stop} s + \
                     drain {} s = {needed} s (container {:?})",
                    drain.as_secs(),
                    container.name
                ),
            ));
        }
    }
}

/// Seconds of the preStop delay: a `sleep` action, or an exec of `sleep N`
/// (directly or through `sh -c`).
fn pre_stop_delay(container: &Container) -> Option<u64> {
    let hook = container.lifecycle.as_ref()?.pre_stop.as_ref()?;
    if let Some(sleep) = &hook.sleep {
        return u64::try_from(sleep.seconds).ok();
    }
    let command = hook.exec.as_ref()?.command.as_ref()?;
    let words: Vec<&str> = command.iter().flat_map(|c| c.split_whitespace()).collect();
    let at = words
        .iter()
        .position(|w| *w == "sleep" || w.ends_with("/sleep"))?;
    words.get(at + 1)?.parse().ok()
}
