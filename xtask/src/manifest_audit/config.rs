//! The mounted configuration must start: the ConfigMap's TOML, with the Deployment's plain
//! environment overrides and stand-ins for the values its Secret provides, is loaded through
//! `chat_config::Config::from_toml_str` (the server's own loader and validation) and must be
//! a production-mode configuration. This catches a TOML typo, an insecure origin or a
//! missing provider before a rollout does.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use chat_config::{Config, Mode};
use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::objects::{env_value, pod_spec, Obj};
use super::report::{Finding, Rule};
use super::schema::Typed;

/// A stand-in JWT secret: strong by the server's rules, used only to validate the rest.
const STAND_IN_JWT_SECRET: &str = "Zq8vN3xR7tLm2Kp9Wd4Hs6Jf1Gb5Yc0Eu";
/// A stand-in AES-256 key (`base64:` of 32 bytes).
const STAND_IN_ENCRYPTION_KEY: &str = "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// A stand-in MongoDB URI without credentials.
const STAND_IN_MONGO_URI: &str = "mongodb://mongodb:27017";
/// A stand-in for any other secret (provider API keys).
const STAND_IN_OTHER: &str = "stand-in-value-for-audit";

/// Validates the config of every container of a Deployment; returns the drain deadline
/// (`server.shutdown_timeout`) of the first configuration that loaded.
pub(crate) fn check(obj: &Obj, set: &[Obj], out: &mut Vec<Finding>) -> Option<Duration> {
    let pod = obj.deployment().and_then(pod_spec)?;
    let mut drain = None;
    for container in &pod.containers {
        let mut fail = |message: String| {
            out.push(obj.error(
                Rule::Config,
                format!("container {:?}: {message}", container.name),
            ));
        };
        let Some(config_path) = env_value(container, "CHATBOX_CONFIG") else {
            fail(
                "CHATBOX_CONFIG is not set, so the server would not read the mounted configuration"
                    .to_owned(),
            );
            continue;
        };
        let text = match mounted_file(pod, container, config_path, set) {
            Ok(Mounted::ConfigMap(text)) => text,
            Ok(Mounted::Secret(name)) => {
                out.push(obj.warning(
                    Rule::Config,
                    format!(
                        "container {:?}: configuration {config_path} comes from Secret {name:?}, \
                         which is not in the repository and cannot be validated here; check it \
                         with `chat-server check-config {config_path}` in a pod",
                        container.name
                    ),
                ));
                continue;
            }
            Err(problem) => {
                fail(format!("configuration {config_path}: {problem}"));
                continue;
            }
        };
        match Config::from_toml_str(text, &environment(container)) {
            Ok(config) if config.mode != Mode::Production => {
                fail("the configuration runs in development mode; deployments run in production mode".to_owned());
            }
            Ok(config) => {
                drain.get_or_insert(config.server.shutdown_timeout);
            }
            Err(errors) => fail(format!(
                "the server would refuse to start: {}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }
    drain
}

/// The environment the container gets: plain values as written, Secret references replaced
/// by stand-ins of the right shape.
fn environment(container: &Container) -> HashMap<String, String> {
    let mut env = HashMap::new();
    for var in container.env.iter().flatten() {
        if let Some(value) = &var.value {
            env.insert(var.name.clone(), value.clone());
        } else if var
            .value_from
            .as_ref()
            .is_some_and(|from| from.secret_key_ref.is_some())
        {
            let stand_in = match var.name.as_str() {
                "JWT_SECRET" => STAND_IN_JWT_SECRET,
                "ENCRYPTION_KEY" => STAND_IN_ENCRYPTION_KEY,
                "MONGO_URI" => STAND_IN_MONGO_URI,
                _ => STAND_IN_OTHER,
            };
            env.insert(var.name.clone(), stand_in.to_owned());
        }
    }
    env
}

/// Where the configuration file of a container comes from.
enum Mounted<'a> {
    /// A ConfigMap among the manifests: its text.
    ConfigMap(&'a str),
    /// A Secret (created out of band, e.g. during a key rotation): its name.
    Secret(String),
}

/// The ConfigMap entry (or the Secret) mounted at `file` in `container`.
fn mounted_file<'a>(
    pod: &PodSpec,
    container: &Container,
    file: &str,
    set: &'a [Obj],
) -> Result<Mounted<'a>, String> {
    let file = Path::new(file);
    let (mount, relative) = container
        .volume_mounts
        .iter()
        .flatten()
        .find_map(|m| {
            let mount_path = Path::new(&m.mount_path);
            match m.sub_path.as_deref() {
                Some(sub) if mount_path == file => Some((m, sub.to_owned())),
                Some(_) => None,
                None => file
                    .strip_prefix(mount_path)
                    .ok()
                    .map(|rel| (m, rel.to_string_lossy().into_owned())),
            }
        })
        .ok_or("no volume is mounted there")?;
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .ok_or_else(|| format!("volumeMount {:?} names no volume", mount.name))?;
    if let Some(secret) = &volume.secret {
        return Ok(Mounted::Secret(
            secret.secret_name.clone().unwrap_or_default(),
        ));
    }
    let source = volume.config_map.as_ref().ok_or_else(|| {
        format!(
            "volume {:?} is neither a ConfigMap nor a Secret",
            volume.name
        )
    })?;
    let key = match &source.items {
        Some(items) => items
            .iter()
            .find(|i| i.path == relative)
            .map(|i| i.key.clone())
            .ok_or_else(|| format!("ConfigMap items map no key to {relative:?}"))?,
        None => relative,
    };
    let map = set
        .iter()
        .find_map(|o| match &o.typed {
            Typed::ConfigMap(map) if o.name() == source.name => Some(map),
            _ => None,
        })
        .ok_or_else(|| format!("ConfigMap {:?} is not among the manifests", source.name))?;
    map.data
        .as_ref()
        .and_then(|d| d.get(&key))
        .map(|text| Mounted::ConfigMap(text))
        .ok_or_else(|| format!("ConfigMap {:?} has no key {key:?}", source.name))
}
