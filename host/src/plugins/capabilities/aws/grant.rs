//! The manifest's `[capabilities.aws]`: the signing region, the services
//! the plugin may have its `http` requests signed for, their endpoint (one
//! for all, e.g. moto's, or AWS's default per service and region), and the
//! environment variables the credentials come from.

use super::sign::Keys;
use crate::plugins::capabilities::{KeyError, Secret};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The default variables of the credentials (the AWS SDKs' own).
const ACCESS_KEY_ENV: &str = "AWS_ACCESS_KEY_ID";
const SECRET_KEY_ENV: &str = "AWS_SECRET_ACCESS_KEY";
const SESSION_TOKEN_ENV: &str = "AWS_SESSION_TOKEN";

/// `[capabilities.aws]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// The signing region, e.g. `eu-west-1`.
    region: String,
    /// The services requests may be signed for: SigV4 signing names such as
    /// `monitoring` (CloudWatch metrics) and `logs` (CloudWatch Logs).
    services: Vec<String>,
    /// Where every service is reached, `http(s)://host[:port]` (a local
    /// emulator, a VPC endpoint); default `https://SERVICE.REGION.amazonaws.com`.
    endpoint: Option<String>,
    /// The variable holding the access key id (default `AWS_ACCESS_KEY_ID`).
    access_key_env: Option<String>,
    /// The variable holding the secret (default `AWS_SECRET_ACCESS_KEY`).
    secret_key_env: Option<String>,
    /// The variable holding a session token, used when set (default
    /// `AWS_SESSION_TOKEN`).
    session_token_env: Option<String>,
}

/// What the `aws` capability signs.
#[derive(Debug, Clone, Serialize)]
pub struct AwsGrant {
    /// The signing region.
    pub region: String,
    /// Each granted service and the origin (`scheme://host[:port]`) its
    /// signed requests must go to.
    pub services: BTreeMap<String, String>,
    /// Where the access key came from (the variable's name, not its value).
    pub access_key_env: String,
    /// Where the secret came from.
    pub secret_key_env: String,
    /// Where the session token came from, when one was set.
    pub session_token_env: Option<String>,
    /// The credentials, read when the manifest loaded.
    #[serde(skip)]
    pub keys: Keys,
}

impl Section {
    /// The grant; an error names the key. Reads the environment now, so a
    /// missing variable fails the load, not the first request.
    pub fn resolve(self) -> Result<AwsGrant, KeyError> {
        self.resolve_with(|var| std::env::var(var).ok())
    }

    fn resolve_with(self, env: impl Fn(&str) -> Option<String>) -> Result<AwsGrant, KeyError> {
        let read = |key: &str, var: &str| {
            env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                KeyError::new(key, format!("the environment variable {var} is not set"))
            })
        };
        if !is_name(&self.region) {
            return Err(KeyError::new(
                "region",
                format!("{:?} is not a region name", self.region),
            ));
        }
        if self.services.is_empty() {
            return Err(KeyError::new("services", "name at least one service"));
        }
        let endpoint = match &self.endpoint {
            Some(e) => Some(origin(e).map_err(|why| KeyError::new("endpoint", why))?),
            None => None,
        };
        let mut services = BTreeMap::new();
        for (i, service) in self.services.iter().enumerate() {
            if !is_name(service) {
                return Err(KeyError::new(
                    format!("services[{i}]"),
                    format!("{service:?} is not a service's signing name (e.g. \"logs\")"),
                ));
            }
            let at = endpoint
                .clone()
                .unwrap_or_else(|| format!("https://{service}.{}.amazonaws.com", self.region));
            services.insert(service.clone(), at);
        }
        let access_key_env = self.access_key_env.unwrap_or_else(|| ACCESS_KEY_ENV.into());
        let secret_key_env = self.secret_key_env.unwrap_or_else(|| SECRET_KEY_ENV.into());
        let token_var = self
            .session_token_env
            .unwrap_or_else(|| SESSION_TOKEN_ENV.into());
        let access_key = read("access_key_env", &access_key_env)?;
        let secret_key = read("secret_key_env", &secret_key_env)?;
        let session_token = env(&token_var).filter(|v| !v.is_empty());
        Ok(AwsGrant {
            region: self.region,
            services,
            access_key_env,
            secret_key_env,
            session_token_env: session_token.as_ref().map(|_| token_var),
            keys: Keys {
                access_key: Secret(access_key),
                secret_key: Secret(secret_key),
                session_token: session_token.map(Secret),
            },
        })
    }
}

/// A region or service name: lower-case letters, digits and `-`.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `scheme://host[:port]` of an `http(s)://` URL without a path, query or
/// credentials (a trailing `/` is fine).
pub fn origin(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?} must start with http:// or https://"));
    }
    if parsed.username() != "" || parsed.password().is_some() {
        return Err(format!("{url:?} must not hold credentials"));
    }
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "{url:?} must be scheme://host[:port], without a path"
        ));
    }
    Ok(parsed.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(toml_text: &str) -> Section {
        toml::from_str(toml_text).unwrap()
    }

    fn env(var: &str) -> Option<String> {
        match var {
            "AWS_ACCESS_KEY_ID" => Some("AKID".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("sekrit".into()),
            "MY_KEY" => Some("mine".into()),
            _ => None,
        }
    }

    #[test]
    fn defaults_and_endpoints() {
        let g = section("region = \"eu-west-1\"\nservices = [\"logs\", \"monitoring\"]")
            .resolve_with(env)
            .unwrap();
        assert_eq!(g.services["logs"], "https://logs.eu-west-1.amazonaws.com");
        assert_eq!(
            g.services["monitoring"],
            "https://monitoring.eu-west-1.amazonaws.com"
        );
        assert_eq!(g.keys.access_key.0, "AKID");
        assert!(g.keys.session_token.is_none() && g.session_token_env.is_none());
        let shown = serde_json::to_string(&g).unwrap();
        assert!(
            !shown.contains("sekrit") && !shown.contains("AKID\""),
            "{shown}"
        );
        let g = section(
            "region = \"us-east-1\"\nservices = [\"logs\"]\nendpoint = \"http://127.0.0.1:5000/\"\naccess_key_env = \"MY_KEY\"",
        )
        .resolve_with(env)
        .unwrap();
        assert_eq!(g.services["logs"], "http://127.0.0.1:5000");
        assert_eq!(g.keys.access_key.0, "mine");
    }

    #[test]
    fn errors_name_the_key() {
        let e = |t: &str| section(t).resolve_with(env).unwrap_err().key;
        assert_eq!(e("region = \"EU\"\nservices = [\"logs\"]"), "region");
        assert_eq!(e("region = \"eu-west-1\"\nservices = []"), "services");
        assert_eq!(
            e("region = \"eu-west-1\"\nservices = [\"Logs!\"]"),
            "services[0]"
        );
        assert_eq!(
            e("region = \"eu-west-1\"\nservices = [\"logs\"]\nendpoint = \"http://h/x\""),
            "endpoint"
        );
        assert_eq!(
            e("region = \"eu-west-1\"\nservices = [\"logs\"]\nsecret_key_env = \"NOPE\""),
            "secret_key_env"
        );
        let missing =
            section("region = \"eu-west-1\"\nservices = [\"logs\"]\nsecret_key_env = \"NOPE\"")
                .resolve_with(env)
                .unwrap_err();
        assert!(missing.message.contains("NOPE"), "{}", missing.message);
    }
}
