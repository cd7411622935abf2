//! READINESS #6: no secret value, real or placeholder, in anything deployable.
//!
//! The legacy manifests shipped `JWT_SECRET: "your-secret-key-here"`. Here the deployable
//! manifests hold only references (`secretKeyRef`); values come from `create-secrets.sh`. The
//! scan covers every string (keys and values) of every deployable object, every rendered
//! overlay, and the templates (which may hold only `${VAR}` references).

use serde_json::Value;

use chat_config::is_placeholder;
use k8s_openapi::api::core::v1::{Container, Secret};

use super::objects::{all_containers, pod_spec, Obj};
use super::report::{Finding, Rule};
use super::schema::Typed;

/// Name parts that mark an environment variable or data key as secret.
const SECRET_WORDS: &[&str] = &[
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "TOKEN",
    "KEY",
    "APIKEY",
    "CREDENTIAL",
    "CREDENTIALS",
    "PRIVATE",
];

/// Final name parts that make a secret-sounding name harmless (`ENCRYPTION_KEY_ID`).
const HARMLESS_SUFFIXES: &[&str] = &["ID", "NAME", "FILE", "PATH", "REF"];

/// Keys of the TOML configuration that hold secrets and must come from the environment.
const SECRET_CONFIG_KEYS: &[&str] = &["jwt_secret", "api_key", "key", "uri", "password"];

/// Whether `name` (an env var or data key) looks like it holds a secret.
pub(crate) fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let parts: Vec<&str> = upper
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .collect();
    let harmless = parts.last().is_some_and(|p| HARMLESS_SUFFIXES.contains(p));
    !harmless && parts.iter().any(|p| SECRET_WORDS.contains(p))
}

/// Whether `value` is a URI carrying a password (`scheme://user:password@host`).
pub(crate) fn has_uri_credentials(value: &str) -> bool {
    value.split("://").skip(1).any(|rest| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        authority
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'))
    })
}

/// Checks one deployable object.
pub(crate) fn check_deployable(obj: &Obj, out: &mut Vec<Finding>) {
    scan_strings(&obj.raw, "", &mut |path, text| {
        if is_placeholder(text) {
            out.push(obj.error(
                Rule::PlaceholderSecrets,
                format!("`{path}` contains a placeholder marker ({text:?}); deployable manifests hold no placeholder, secrets come from create-secrets.sh"),
            ));
        } else if has_uri_credentials(text) {
            out.push(obj.error(
                Rule::PlaceholderSecrets,
                format!("`{path}` is a URI with a password; put it in the Secret and reference it"),
            ));
        }
    });
    match &obj.typed {
        Typed::Secret(secret) => {
            let keys = secret_keys(secret);
            if !keys.is_empty() {
                out.push(obj.error(
                    Rule::PlaceholderSecrets,
                    format!(
                        "a Secret with values ({}) is in a deployable manifest; create it with \
                         create-secrets.sh and keep only the template in git",
                        keys.join(", ")
                    ),
                ));
            }
        }
        Typed::ConfigMap(map) => {
            for (key, value) in map.data.iter().flatten() {
                if is_secret_name(key) {
                    out.push(obj.error(
                        Rule::PlaceholderSecrets,
                        format!("ConfigMap key {key:?} looks like a secret; ConfigMaps are not secret, use the Secret"),
                    ));
                }
                if key.ends_with(".toml") {
                    check_toml(obj, key, value, out);
                }
            }
        }
        Typed::Deployment(deployment) => {
            for (_, container) in pod_spec(deployment).into_iter().flat_map(all_containers) {
                check_env(obj, container, out);
            }
        }
        _ => {}
    }
}

fn check_env(obj: &Obj, container: &Container, out: &mut Vec<Finding>) {
    for var in container.env.iter().flatten() {
        if var.value.is_some() && is_secret_name(&var.name) {
            out.push(obj.error(
                Rule::PlaceholderSecrets,
                format!(
                    "container {:?}: env {} has a literal value; secrets must come from \
                     valueFrom.secretKeyRef",
                    container.name, var.name
                ),
            ));
        }
    }
}

fn check_toml(obj: &Obj, key: &str, text: &str, out: &mut Vec<Finding>) {
    let Ok(table) = text.parse::<toml::Table>() else {
        // The config check reports invalid TOML with the server's own message.
        return;
    };
    let mut found = Vec::new();
    toml_secret_keys(&toml::Value::Table(table), "", &mut found);
    for path in found {
        out.push(obj.error(
            Rule::PlaceholderSecrets,
            format!(
                "{key}: `{path}` is a secret in a ConfigMap; leave it out and set it from the \
                 Secret through its environment variable"
            ),
        ));
    }
}

fn toml_secret_keys(value: &toml::Value, path: &str, out: &mut Vec<String>) {
    match value {
        toml::Value::Table(table) => {
            for (key, child) in table {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if SECRET_CONFIG_KEYS.contains(&key.as_str()) && !child.is_table() {
                    out.push(child_path);
                } else {
                    toml_secret_keys(child, &child_path, out);
                }
            }
        }
        toml::Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                toml_secret_keys(item, &format!("{path}[{index}]"), out);
            }
        }
        _ => {}
    }
}

/// Checks a template: its Secrets may hold only `${VAR}` references, nothing literal.
pub(crate) fn check_template(obj: &Obj, out: &mut Vec<Finding>) {
    let Typed::Secret(secret) = &obj.typed else {
        return;
    };
    if secret.data.as_ref().is_some_and(|d| !d.is_empty()) {
        out.push(obj.error(
            Rule::PlaceholderSecrets,
            "a Secret template uses `data` (base64 values); use `stringData` with ${VAR} references",
        ));
    }
    for (key, value) in secret.string_data.iter().flatten() {
        if !is_variable_reference(value) {
            out.push(obj.error(
                Rule::PlaceholderSecrets,
                format!(
                    "template value of {key} is literal; a template holds only ${{VAR}} \
                     references that a script fills in"
                ),
            ));
        }
    }
}

/// `${NAME}` and nothing else.
fn is_variable_reference(value: &str) -> bool {
    value
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .is_some_and(|name| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

fn secret_keys(secret: &Secret) -> Vec<String> {
    let data = secret.data.iter().flat_map(|d| d.keys());
    let string_data = secret.string_data.iter().flat_map(|d| d.keys());
    data.chain(string_data).cloned().collect()
}

/// Calls `visit` with the path and text of every string (map keys included) in `value`.
fn scan_strings(value: &Value, path: &str, visit: &mut dyn FnMut(&str, &str)) {
    match value {
        Value::String(text) => visit(path, text),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                scan_strings(item, &format!("{path}[{index}]"), visit);
            }
        }
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                visit(&child_path, key);
                scan_strings(child, &child_path, visit);
            }
        }
        _ => {}
    }
}
