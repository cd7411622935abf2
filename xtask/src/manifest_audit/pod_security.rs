//! Restricted pod security for every Deployment: what the Kubernetes "restricted" Pod
//! Security Standard asks, plus a read-only root filesystem and no service-account token.

use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::objects::{all_containers, pod_spec, Obj};
use super::report::{Finding, Rule};

/// Checks one Deployment's pod template.
pub(crate) fn check(obj: &Obj, out: &mut Vec<Finding>) {
    let Some(deployment) = obj.deployment() else {
        return;
    };
    let Some(pod) = pod_spec(deployment) else {
        out.push(obj.error(Rule::PodSecurity, "the pod template has no spec"));
        return;
    };
    let mut fail = |message: String| out.push(obj.error(Rule::PodSecurity, message));

    if pod.automount_service_account_token != Some(false) {
        fail("spec.template.spec.automountServiceAccountToken must be false: the server never calls the Kubernetes API, so it gets no token".to_owned());
    }
    for (field, on) in [
        ("hostNetwork", pod.host_network),
        ("hostPID", pod.host_pid),
        ("hostIPC", pod.host_ipc),
    ] {
        if on == Some(true) {
            fail(format!("spec.template.spec.{field} must not be true"));
        }
    }
    let pod_context = pod.security_context.as_ref();
    if pod_context.and_then(|c| c.run_as_user) == Some(0) {
        fail("spec.template.spec.securityContext.runAsUser is 0 (root)".to_owned());
    }
    for (list, container) in all_containers(pod) {
        for problem in container_problems(pod, container) {
            fail(format!("{list} {:?}: {problem}", container.name));
        }
    }
}

/// What is wrong with one container, taking pod-level defaults into account.
fn container_problems(pod: &PodSpec, container: &Container) -> Vec<String> {
    let pod_context = pod.security_context.as_ref();
    let context = container.security_context.as_ref();
    let mut problems = Vec::new();

    let run_as_non_root = context
        .and_then(|c| c.run_as_non_root)
        .or_else(|| pod_context.and_then(|c| c.run_as_non_root));
    if run_as_non_root != Some(true) {
        problems.push(format!(
            "runAsNonRoot must be true (found {})",
            describe(run_as_non_root)
        ));
    }
    if context.and_then(|c| c.run_as_user) == Some(0) {
        problems.push("securityContext.runAsUser is 0 (root)".to_owned());
    }
    let read_only = context.and_then(|c| c.read_only_root_filesystem);
    if read_only != Some(true) {
        problems.push(format!(
            "securityContext.readOnlyRootFilesystem must be true (found {}); mount an emptyDir where the server writes",
            describe(read_only)
        ));
    }
    let escalation = context.and_then(|c| c.allow_privilege_escalation);
    if escalation != Some(false) {
        problems.push(format!(
            "securityContext.allowPrivilegeEscalation must be false (found {})",
            describe(escalation)
        ));
    }
    if context.and_then(|c| c.privileged) == Some(true) {
        problems.push("securityContext.privileged must not be true".to_owned());
    }
    let capabilities = context.and_then(|c| c.capabilities.as_ref());
    let drops_all = capabilities
        .and_then(|c| c.drop.as_ref())
        .is_some_and(|d| d.iter().any(|cap| cap == "ALL"));
    if !drops_all {
        problems.push("securityContext.capabilities.drop must contain ALL".to_owned());
    }
    if let Some(added) = capabilities
        .and_then(|c| c.add.as_ref())
        .filter(|a| !a.is_empty())
    {
        problems.push(format!(
            "securityContext.capabilities.add must be empty (found {added:?})"
        ));
    }
    let seccomp = context
        .and_then(|c| c.seccomp_profile.as_ref())
        .or_else(|| pod_context.and_then(|c| c.seccomp_profile.as_ref()))
        .map(|p| p.type_.as_str());
    if seccomp != Some("RuntimeDefault") && seccomp != Some("Localhost") {
        problems.push(format!(
            "seccompProfile.type must be RuntimeDefault (found {})",
            seccomp.unwrap_or("unset")
        ));
    }
    problems
}

fn describe(value: Option<bool>) -> String {
    value.map_or_else(|| "unset".to_owned(), |v| v.to_string())
}
