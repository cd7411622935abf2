//! A small, strict kustomize renderer, so overlays are audited as they will be deployed.
//!
//! It supports exactly what this repository's kustomizations use: `resources` (files and
//! directories with a kustomization), `namespace`, `images`, `replicas` and `patches` made of
//! RFC 6902 JSON-patch operations (`add`, `replace`, `remove`, `test`) with a `kind`/`name`
//! target. Every other kustomization field is refused by name (a [`Rule::Kustomize`]
//! finding) instead of being ignored, so the audit never checks something other than what
//! `kubectl apply -k` would deploy. `secretGenerator` is parsed only to report it: it would
//! put secret values in the repository.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::report::{Finding, Rule};
use super::source::{FileKind, SourceFile};

/// Nesting depth beyond which a chain of kustomizations is treated as a cycle.
const MAX_DEPTH: usize = 8;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Kustomization {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    images: Vec<ImageOverride>,
    #[serde(default)]
    replicas: Vec<ReplicaOverride>,
    #[serde(default)]
    patches: Vec<Patch>,
    #[serde(default)]
    secret_generator: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ImageOverride {
    name: String,
    #[serde(default)]
    new_name: Option<String>,
    #[serde(default)]
    new_tag: Option<String>,
    #[serde(default)]
    digest: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplicaOverride {
    name: String,
    count: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    target: PatchTarget,
    patch: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchTarget {
    kind: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Operation {
    op: String,
    path: String,
    #[serde(default)]
    value: Option<Value>,
}

/// One object produced by rendering, with the file it came from.
#[derive(Debug, Clone)]
pub(crate) struct RenderedObject {
    /// The manifest (relative to the audited directory) that defined the object.
    pub source: PathBuf,
    /// The object after every transformation.
    pub raw: Value,
}

/// The kustomizations found, indexed by canonical path, and which of them are roots
/// (not used as a resource by another kustomization): the roots are what gets deployed.
pub(crate) struct Kustomizations<'a> {
    files: HashMap<PathBuf, &'a SourceFile>,
    roots: Vec<&'a SourceFile>,
}

impl<'a> Kustomizations<'a> {
    /// Indexes `files` and works out the root kustomizations.
    pub(crate) fn new(files: &'a [SourceFile]) -> Self {
        let index: HashMap<PathBuf, &SourceFile> =
            files.iter().map(|f| (f.canonical.clone(), f)).collect();
        let mut referenced = BTreeSet::new();
        for file in files.iter().filter(|f| f.kind == FileKind::Kustomization) {
            let dir = file.canonical.parent().unwrap_or(Path::new("/"));
            for doc in &file.docs {
                let resources = doc.get("resources").and_then(Value::as_array);
                for resource in resources.into_iter().flatten().filter_map(Value::as_str) {
                    if let Some(k) = kustomization_in(&dir.join(resource)) {
                        referenced.insert(k);
                    }
                }
            }
        }
        let roots = files
            .iter()
            .filter(|f| f.kind == FileKind::Kustomization && !referenced.contains(&f.canonical))
            .collect();
        Self {
            files: index,
            roots,
        }
    }

    /// The kustomizations nothing else includes: each is one deployable environment.
    pub(crate) fn roots(&self) -> &[&'a SourceFile] {
        &self.roots
    }

    /// Renders one kustomization; problems go to `findings` against that file.
    pub(crate) fn render(
        &self,
        file: &SourceFile,
        findings: &mut Vec<Finding>,
    ) -> Vec<RenderedObject> {
        self.render_at(file, 0, findings)
    }

    fn render_at(
        &self,
        file: &SourceFile,
        depth: usize,
        findings: &mut Vec<Finding>,
    ) -> Vec<RenderedObject> {
        let mut fail = |message: String| {
            findings.push(Finding::error(
                &file.display,
                "Kustomization",
                Rule::Kustomize,
                message,
            ));
        };
        if depth > MAX_DEPTH {
            fail(format!(
                "kustomizations nest deeper than {MAX_DEPTH} levels (a cycle?)"
            ));
            return Vec::new();
        }
        let Some(doc) = file.docs.first() else {
            fail("empty kustomization".to_owned());
            return Vec::new();
        };
        let k: Kustomization = match serde_path_to_error::deserialize(doc.clone()) {
            Ok(k) => k,
            Err(e) => {
                fail(format!(
                    "{} at `{}` (the audit renders only resources, namespace, images, \
                     replicas and JSON-6902 patches, so it refuses what it cannot check)",
                    e.inner(),
                    e.path()
                ));
                return Vec::new();
            }
        };
        if k.kind
            .as_deref()
            .is_some_and(|kind| kind != "Kustomization")
            || k.api_version
                .as_deref()
                .is_some_and(|v| !v.starts_with("kustomize.config.k8s.io/"))
        {
            fail("not a kustomize.config.k8s.io Kustomization".to_owned());
        }
        if !k.secret_generator.is_empty() {
            findings.push(Finding::error(
                &file.display,
                "Kustomization",
                Rule::PlaceholderSecrets,
                "secretGenerator keeps secret values (or files holding them) in the \
                 repository; create the Secret with create-secrets.sh instead",
            ));
        }

        let dir = file.canonical.parent().unwrap_or(Path::new("/"));
        let mut objects = Vec::new();
        for resource in &k.resources {
            let target = dir.join(resource);
            if let Some(nested) = kustomization_in(&target) {
                match self.files.get(&nested) {
                    Some(nested) => objects.extend(self.render_at(nested, depth + 1, findings)),
                    None => findings.push(Finding::error(
                        &file.display,
                        "Kustomization",
                        Rule::Kustomize,
                        format!("resource {resource:?}: its kustomization was not readable"),
                    )),
                }
                continue;
            }
            let canonical = std::fs::canonicalize(&target).unwrap_or(target);
            match self.files.get(&canonical) {
                Some(source) if source.kind == FileKind::Template => {
                    findings.push(Finding::error(
                        &file.display,
                        "Kustomization",
                        Rule::PlaceholderSecrets,
                        format!(
                            "resource {resource:?} is a template; templates are rendered by a \
                             script and must never be deployed as they are"
                        ),
                    ));
                }
                Some(source) => objects.extend(source.docs.iter().map(|raw| RenderedObject {
                    source: source.display.clone(),
                    raw: raw.clone(),
                })),
                None => findings.push(Finding::error(
                    &file.display,
                    "Kustomization",
                    Rule::Kustomize,
                    format!("resource {resource:?} is neither a YAML file nor a directory with a kustomization"),
                )),
            }
        }

        for (index, patch) in k.patches.iter().enumerate() {
            if let Err(message) = apply_patch(&mut objects, patch) {
                findings.push(Finding::error(
                    &file.display,
                    format!("Kustomization patches[{index}]"),
                    Rule::Kustomize,
                    message,
                ));
            }
        }
        for object in &mut objects {
            if let (Some(ns), Some(meta)) = (
                &k.namespace,
                object
                    .raw
                    .get_mut("metadata")
                    .and_then(Value::as_object_mut),
            ) {
                meta.insert("namespace".to_owned(), Value::String(ns.clone()));
            }
            for image in &k.images {
                override_images(&mut object.raw, image);
            }
            for replicas in &k.replicas {
                let is_target = object.raw.get("kind").and_then(Value::as_str)
                    == Some("Deployment")
                    && object.raw.pointer("/metadata/name").and_then(Value::as_str)
                        == Some(replicas.name.as_str());
                if let (true, Some(spec)) = (
                    is_target,
                    object.raw.get_mut("spec").and_then(Value::as_object_mut),
                ) {
                    spec.insert("replicas".to_owned(), Value::from(replicas.count));
                }
            }
        }
        objects
    }
}

/// The kustomization file of `path` when it is a directory that has one.
fn kustomization_in(path: &Path) -> Option<PathBuf> {
    if !path.is_dir() {
        return None;
    }
    ["kustomization.yaml", "kustomization.yml"]
        .iter()
        .map(|name| path.join(name))
        .find(|p| p.is_file())
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
}

fn apply_patch(objects: &mut [RenderedObject], patch: &Patch) -> Result<(), String> {
    let operations: Vec<Operation> = serde_yaml_ng::from_str(&patch.patch).map_err(|e| {
        format!("patch is not a list of JSON-6902 operations (the only patch form the audit renders): {e}")
    })?;
    let mut matched = false;
    for object in objects.iter_mut().filter(|o| {
        o.raw.get("kind").and_then(Value::as_str) == Some(patch.target.kind.as_str())
            && o.raw.pointer("/metadata/name").and_then(Value::as_str)
                == Some(patch.target.name.as_str())
    }) {
        matched = true;
        for operation in &operations {
            apply_operation(&mut object.raw, operation)
                .map_err(|e| format!("{} {}: {e}", operation.op, operation.path))?;
        }
    }
    if matched {
        Ok(())
    } else {
        Err(format!(
            "target {}/{} matches no resource",
            patch.target.kind, patch.target.name
        ))
    }
}

/// Applies one RFC 6902 operation (`add`, `replace`, `remove`, `test`).
fn apply_operation(doc: &mut Value, operation: &Operation) -> Result<(), String> {
    let tokens: Vec<String> = operation
        .path
        .strip_prefix('/')
        .ok_or("path must start with '/'")?
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let (last, parents) = tokens.split_last().ok_or("empty path")?;
    let mut parent = &mut *doc;
    for token in parents {
        parent = match parent {
            Value::Object(map) => map.get_mut(token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("path segment {token:?} does not exist"))?;
    }
    let value = || operation.value.clone().ok_or("operation needs a value");
    match (operation.op.as_str(), parent) {
        ("add", Value::Object(map)) => {
            map.insert(last.clone(), value()?);
        }
        ("add", Value::Array(items)) if last == "-" => items.push(value()?),
        ("add", Value::Array(items)) => {
            let index = array_index(last, items.len() + 1)?;
            items.insert(index, value()?);
        }
        ("replace", Value::Object(map)) => {
            let slot = map
                .get_mut(last)
                .ok_or_else(|| format!("{last:?} does not exist"))?;
            *slot = value()?;
        }
        ("replace", Value::Array(items)) => {
            let index = array_index(last, items.len())?;
            items[index] = value()?;
        }
        ("remove", Value::Object(map)) => {
            map.remove(last)
                .ok_or_else(|| format!("{last:?} does not exist"))?;
        }
        ("remove", Value::Array(items)) => {
            let index = array_index(last, items.len())?;
            items.remove(index);
        }
        ("test", parent) => {
            let current = match parent {
                Value::Object(map) => map.get(last),
                Value::Array(items) => last.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            if current != Some(&value()?) {
                return Err("test failed".to_owned());
            }
        }
        ("add" | "replace" | "remove", _) => {
            return Err("parent is neither an object nor an array".to_owned())
        }
        (other, _) => {
            return Err(format!(
            "operation {other:?} is not rendered by the audit (use add, replace, remove or test)"
        ))
        }
    }
    Ok(())
}

fn array_index(token: &str, bound: usize) -> Result<usize, String> {
    token
        .parse::<usize>()
        .ok()
        .filter(|i| *i < bound)
        .ok_or_else(|| format!("array index {token:?} is out of range"))
}

/// Applies an `images` entry to every container of a pod template, as kustomize does.
fn override_images(raw: &mut Value, image: &ImageOverride) {
    for list in ["containers", "initContainers"] {
        let pointer = format!("/spec/template/spec/{list}");
        let Some(containers) = raw.pointer_mut(&pointer).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers {
            let Some(slot) = container.get_mut("image") else {
                continue;
            };
            let Some(current) = slot.as_str().map(super::images::ImageRef::parse) else {
                continue;
            };
            if current.name != image.name {
                continue;
            }
            let name = image.new_name.clone().unwrap_or(current.name);
            let tag = image.new_tag.clone().or(current.tag);
            let digest = image.digest.clone().or(current.digest);
            let mut reference = name;
            if let Some(tag) = tag {
                reference = format!("{reference}:{tag}");
            }
            if let Some(digest) = digest {
                reference = format!("{reference}@{digest}");
            }
            *slot = Value::String(reference);
        }
    }
}
