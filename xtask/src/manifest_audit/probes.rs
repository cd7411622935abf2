//! Probes on the server's real paths: liveness `/healthz`, readiness `/readyz` (503 while
//! draining, which takes the pod out of the Service before it closes sockets) and a startup
//! probe, all under the configured path prefix and on a port the container declares.

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::objects::{env_value, pod_spec, Obj};
use super::report::{Finding, Rule};

/// The server's default route prefix (`server.path_prefix`).
const DEFAULT_PREFIX: &str = "/chatbox";

/// Checks the probes of every (non-init) container of a Deployment.
pub(crate) fn check(obj: &Obj, out: &mut Vec<Finding>) {
    let Some(pod) = obj.deployment().and_then(pod_spec) else {
        return;
    };
    for container in &pod.containers {
        let prefix = env_value(container, "CHATBOX_PATH_PREFIX")
            .unwrap_or(DEFAULT_PREFIX)
            .trim_end_matches('/');
        let liveness = format!("{prefix}/healthz");
        let readiness = format!("{prefix}/readyz");
        for (name, probe, path) in [
            ("livenessProbe", &container.liveness_probe, &liveness),
            ("readinessProbe", &container.readiness_probe, &readiness),
            ("startupProbe", &container.startup_probe, &liveness),
        ] {
            if let Err(problem) = check_probe(container, probe.as_ref(), path) {
                out.push(obj.error(
                    Rule::Probes,
                    format!("container {:?}: {name} {problem}", container.name),
                ));
            }
        }
    }
}

fn check_probe(container: &Container, probe: Option<&Probe>, path: &str) -> Result<(), String> {
    let probe = probe.ok_or_else(|| format!("is missing (expected GET {path})"))?;
    let get = probe
        .http_get
        .as_ref()
        .ok_or_else(|| format!("must be an httpGet on {path}"))?;
    let actual = get.path.as_deref().unwrap_or("/");
    if actual != path {
        return Err(format!("probes {actual:?}, expected {path:?}"));
    }
    let declared = container.ports.iter().flatten().any(|p| match &get.port {
        IntOrString::Int(n) => p.container_port == *n,
        IntOrString::String(name) => p.name.as_deref() == Some(name.as_str()),
    });
    if !declared {
        return Err(format!(
            "targets port {:?}, which the container does not declare",
            get.port
        ));
    }
    Ok(())
}
