//! Resource requests (so the scheduler and the HPA have a baseline) and a memory limit (so a
//! leak ends in a restart of one pod, not a node under memory pressure).

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::objects::{all_containers, pod_spec, Obj};
use super::report::{Finding, Rule};

/// Checks every container of a Deployment.
pub(crate) fn check(obj: &Obj, out: &mut Vec<Finding>) {
    let Some(pod) = obj.deployment().and_then(pod_spec) else {
        return;
    };
    for (list, container) in all_containers(pod) {
        let resources = container.resources.as_ref();
        let requests = resources.and_then(|r| r.requests.as_ref());
        let limits = resources.and_then(|r| r.limits.as_ref());
        let mut fail = |m: String| {
            out.push(obj.error(Rule::Resources, format!("{list} {:?}: {m}", container.name)))
        };
        for resource in ["cpu", "memory"] {
            if requests.and_then(|r| r.get(resource)).is_none() {
                fail(format!("resources.requests.{resource} is missing"));
            }
        }
        let memory_limit = limits.and_then(|l| l.get("memory"));
        let Some(limit) = memory_limit else {
            fail("resources.limits.memory is missing".to_owned());
            continue;
        };
        let request = requests.and_then(|r| r.get("memory"));
        match (bytes(limit), request.map(bytes)) {
            (None, _) | (_, Some(None)) => fail(format!(
                "memory quantities {:?} / {:?} are not understood",
                limit.0,
                request.map(|q| q.0.as_str())
            )),
            (Some(l), Some(Some(r))) if l < r => fail(format!(
                "resources.limits.memory {} is below the request {}",
                limit.0,
                request.map_or("", |q| q.0.as_str())
            )),
            _ => {}
        }
    }
}

/// A memory quantity in bytes (`512Mi`, `1G`, `1048576`), or `None` if it is not one.
pub(crate) fn bytes(quantity: &Quantity) -> Option<u128> {
    let text = quantity.0.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let multiplier: u128 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: u128 = whole.parse().ok()?;
    let scale = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    Some(whole * multiplier + fraction * multiplier / scale)
}
