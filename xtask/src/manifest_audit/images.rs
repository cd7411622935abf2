//! Pinned images: every container image names a version (`name:1.2.3`) or a digest
//! (`name@sha256:…`), never `latest` and never nothing (which means `latest`).

use super::objects::{all_containers, pod_spec, Obj};
use super::report::{Finding, Rule};

/// An image reference split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageRef {
    /// Registry and repository (`ghcr.io/chatbox/chat-server`).
    pub name: String,
    /// Tag, when present.
    pub tag: Option<String>,
    /// Digest (`sha256:…`), when present.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Splits `reference`; a `:` before the last `/` is a registry port, not a tag.
    pub(crate) fn parse(reference: &str) -> Self {
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.to_owned())),
            None => (reference, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                rest[..last_slash + i].to_owned(),
                Some(rest[last_slash + i + 1..].to_owned()),
            ),
            None => (rest.to_owned(), None),
        };
        Self { name, tag, digest }
    }
}

/// Checks every container image of a Deployment.
pub(crate) fn check(obj: &Obj, out: &mut Vec<Finding>) {
    let Some(pod) = obj.deployment().and_then(pod_spec) else {
        return;
    };
    for (list, container) in all_containers(pod) {
        let Some(image) = container.image.as_deref() else {
            out.push(obj.error(
                Rule::ImagePinning,
                format!("{list} {:?} has no image", container.name),
            ));
            continue;
        };
        let reference = ImageRef::parse(image);
        let problem = match (&reference.tag, &reference.digest) {
            (_, Some(digest)) if !digest.starts_with("sha256:") || digest.len() != 71 => {
                Some(format!("digest {digest:?} is not a sha256 digest"))
            }
            (_, Some(_)) => None,
            (None, None) => Some("has no tag, which means `latest`".to_owned()),
            (Some(tag), None) if tag.is_empty() || tag.eq_ignore_ascii_case("latest") => {
                Some(format!("uses the moving tag {tag:?}"))
            }
            (Some(_), None) => None,
        };
        if let Some(problem) = problem {
            out.push(obj.error(
                Rule::ImagePinning,
                format!(
                    "{list} {:?}: image {image:?} {problem}; pin a version tag or a digest",
                    container.name
                ),
            ));
        }
    }
}
