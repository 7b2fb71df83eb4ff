//! Which Prometheus a policy reads, and with what credentials.
//!
//! A policy may name its own Prometheus (`spec.metrics.prometheus`) with a
//! Secret and a CA ConfigMap in its namespace; otherwise it uses the
//! operator's default (`--prometheus-url`, `--prometheus-auth-secret`,
//! `--prometheus-ca-file`). The operator's own credentials are only ever
//! sent to the operator's own address, never to an address a policy chose.
//! Secrets and ConfigMaps are read through a short-lived cache, so a tick
//! does not cost an API call and a rotated Secret is picked up within a
//! minute.
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};

use super::error::SourceError;
use crate::api::v1alpha1::PrometheusSource;
use crate::metrics::{PromAuth, PromClient, PromClientCache, PromConfig};

/// How long a Secret or ConfigMap read is reused.
const REFERENCE_TTL: Duration = Duration::from_secs(60);

/// The operator's default Prometheus, from its flags.
#[derive(Clone, Debug, Default)]
pub struct DefaultSource {
    pub address: Option<String>,
    /// `(namespace, name)` of a Secret with `token` or `username`+`password`.
    pub auth_secret: Option<(String, String)>,
    /// The CA bundle, read once at start.
    pub ca_pem: Option<Vec<u8>>,
}

impl DefaultSource {
    /// Read the CA file given by `--prometheus-ca-file`.
    pub fn read_ca_file(path: &Path) -> Result<Vec<u8>, SourceError> {
        std::fs::read(path).map_err(|source| SourceError::CaFile {
            path: path.display().to_string(),
            source,
        })
    }
}

/// (kind, namespace, name, key) of a Secret or ConfigMap read.
type ReferenceKey = (&'static str, String, String, String);

#[derive(Clone)]
enum Cached {
    Auth(PromAuth),
    Pem(Vec<u8>),
}

/// Resolves a policy's Prometheus source into a client.
pub struct Sources {
    client: Client,
    default: DefaultSource,
    clients: PromClientCache,
    references: Mutex<HashMap<ReferenceKey, (Instant, Cached)>>,
}

impl Sources {
    pub fn new(client: Client, default: DefaultSource) -> Self {
        Sources {
            client,
            default,
            clients: PromClientCache::new(),
            references: Mutex::new(HashMap::new()),
        }
    }

    /// The client to query for a policy in `namespace` with the given
    /// `spec.metrics.prometheus`.
    pub async fn client_for(
        &self,
        namespace: &str,
        source: Option<&PrometheusSource>,
    ) -> Result<PromClient, SourceError> {
        let config = self.config_for(namespace, source).await?;
        Ok(self.clients.get(&config)?)
    }

    async fn config_for(
        &self,
        namespace: &str,
        source: Option<&PrometheusSource>,
    ) -> Result<PromConfig, SourceError> {
        let own_address = source.and_then(|s| s.address.as_deref());
        let address = own_address
            .or(self.default.address.as_deref())
            .ok_or(SourceError::NoAddress)?
            .to_string();
        let uses_default = own_address.is_none();
        let auth = match source.and_then(|s| s.secret_ref.as_ref()) {
            Some(secret) => self.auth_from_secret(namespace, &secret.name).await?,
            None => match (&self.default.auth_secret, uses_default) {
                (Some((ns, name)), true) => self.auth_from_secret(ns, name).await?,
                _ => PromAuth::None,
            },
        };
        let ca_pem = match source.and_then(|s| s.ca_config_map_ref.as_ref()) {
            Some(cm) => Some(
                self.ca_from_config_map(namespace, &cm.name, &cm.key)
                    .await?,
            ),
            None if uses_default => self.default.ca_pem.clone(),
            None => None,
        };
        Ok(PromConfig {
            address,
            auth,
            ca_pem,
        })
    }

    fn cached(&self, key: &ReferenceKey) -> Option<Cached> {
        let references = self.references.lock().unwrap_or_else(|p| p.into_inner());
        references
            .get(key)
            .filter(|(at, _)| at.elapsed() < REFERENCE_TTL)
            .map(|(_, value)| value.clone())
    }

    fn remember(&self, key: ReferenceKey, value: Cached) {
        let mut references = self.references.lock().unwrap_or_else(|p| p.into_inner());
        references.retain(|_, (at, _)| at.elapsed() < REFERENCE_TTL);
        references.insert(key, (Instant::now(), value));
    }

    async fn auth_from_secret(&self, namespace: &str, name: &str) -> Result<PromAuth, SourceError> {
        let key = (
            "Secret",
            namespace.to_string(),
            name.to_string(),
            String::new(),
        );
        if let Some(Cached::Auth(auth)) = self.cached(&key) {
            return Ok(auth);
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = secrets
            .get_opt(name)
            .await
            .map_err(|source| SourceError::Api {
                kind: "Secret",
                namespace: namespace.into(),
                name: name.into(),
                source: Box::new(source),
            })?
            .ok_or_else(|| SourceError::NotFound {
                kind: "Secret",
                namespace: namespace.into(),
                name: name.into(),
            })?;
        let data: HashMap<String, Vec<u8>> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        let auth = auth_from_data(&data).map_err(|problem| SourceError::BadContent {
            kind: "Secret",
            namespace: namespace.into(),
            name: name.into(),
            problem,
        })?;
        self.remember(key, Cached::Auth(auth.clone()));
        Ok(auth)
    }

    async fn ca_from_config_map(
        &self,
        namespace: &str,
        name: &str,
        data_key: &str,
    ) -> Result<Vec<u8>, SourceError> {
        let key = (
            "ConfigMap",
            namespace.to_string(),
            name.to_string(),
            data_key.to_string(),
        );
        if let Some(Cached::Pem(pem)) = self.cached(&key) {
            return Ok(pem);
        }
        let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let map = maps
            .get_opt(name)
            .await
            .map_err(|source| SourceError::Api {
                kind: "ConfigMap",
                namespace: namespace.into(),
                name: name.into(),
                source: Box::new(source),
            })?
            .ok_or_else(|| SourceError::NotFound {
                kind: "ConfigMap",
                namespace: namespace.into(),
                name: name.into(),
            })?;
        let pem = map
            .data
            .as_ref()
            .and_then(|d| d.get(data_key))
            .map(|s| s.as_bytes().to_vec())
            .or_else(|| {
                map.binary_data
                    .as_ref()
                    .and_then(|d| d.get(data_key))
                    .map(|b| b.0.clone())
            })
            .ok_or_else(|| SourceError::BadContent {
                kind: "ConfigMap",
                namespace: namespace.into(),
                name: name.into(),
                problem: format!("has no key {data_key:?}"),
            })?;
        self.remember(key, Cached::Pem(pem.clone()));
        Ok(pem)
    }
}

/// Credentials from a Secret's data: `token` (bearer), or `username` and
/// `password` (basic).
pub fn auth_from_data(data: &HashMap<String, Vec<u8>>) -> Result<PromAuth, String> {
    let text = |key: &str| -> Result<Option<String>, String> {
        data.get(key)
            .map(|bytes| {
                String::from_utf8(bytes.clone()).map_err(|_| format!("key {key:?} is not UTF-8"))
            })
            .transpose()
    };
    if let Some(token) = text("token")? {
        return Ok(PromAuth::Bearer(token.trim().to_string()));
    }
    match (text("username")?, text("password")?) {
        (Some(user), Some(pass)) => Ok(PromAuth::Basic { user, pass }),
        (Some(_), None) => Err("has username but no password".into()),
        _ => Err("needs key \"token\", or keys \"username\" and \"password\"".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> HashMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn token_wins_and_is_trimmed() {
        assert_eq!(
            auth_from_data(&data(&[("token", "abc\n"), ("username", "u")])),
            Ok(PromAuth::Bearer("abc".into()))
        );
    }

    #[test]
    fn username_and_password_give_basic_auth() {
        assert_eq!(
            auth_from_data(&data(&[("username", "u"), ("password", "p")])),
            Ok(PromAuth::Basic {
                user: "u".into(),
                pass: "p".into()
            })
        );
    }

    #[test]
    fn incomplete_secrets_say_what_is_missing() {
        assert!(
            auth_from_data(&data(&[("username", "u")]))
                .unwrap_err()
                .contains("no password")
        );
        assert!(auth_from_data(&data(&[])).unwrap_err().contains("token"));
    }
}
