//! Runtime options (`runtimeoptions.v1.Options`): the only field nexcage reads is `ConfigPath`.

use std::path::PathBuf;

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use nexcage_core::{Error, Result};

#[derive(Clone, PartialEq, prost::Message)]
struct RuntimeOptions {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(string, tag = "2")]
    config_path: String,
}

/// `ConfigPath` from options carried as an `Any` (stdin at `start`, `CreateTaskRequest.options`).
pub fn config_path(any: Option<&Any>) -> Result<Option<PathBuf>> {
    let Some(any) = any else { return Ok(None) };
    if !any.type_url.ends_with("runtimeoptions.v1.Options") {
        return Ok(None);
    }
    let o = <RuntimeOptions as prost::Message>::decode(any.value.as_slice())
        .map_err(|e| Error::invalid(format!("runtime options {}: {e}", any.type_url)))?;
    Ok((!o.config_path.is_empty()).then(|| PathBuf::from(o.config_path)))
}

/// Decode the bytes containerd writes on the shim's stdin at `start`.
pub fn parse_stdin(bytes: &[u8]) -> Result<Option<Any>> {
    if bytes.is_empty() {
        return Ok(None);
    }
    Any::parse_from_bytes(bytes)
        .map(Some)
        .map_err(|e| Error::invalid(format!("runtime options on stdin: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_config_path() {
        let inner = RuntimeOptions {
            type_url: "nexcage.v1.Options".into(),
            config_path: "/etc/nexcage/nexcage.toml".into(),
        };
        let any = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: prost::Message::encode_to_vec(&inner),
            ..Default::default()
        };
        let bytes = any.write_to_bytes().unwrap();
        let parsed = parse_stdin(&bytes).unwrap();
        assert_eq!(
            config_path(parsed.as_ref()).unwrap(),
            Some(PathBuf::from("/etc/nexcage/nexcage.toml"))
        );
        assert_eq!(parse_stdin(&[]).unwrap(), None);
        let other = Any {
            type_url: "containerd.runc.v1.Options".into(),
            ..Default::default()
        };
        assert_eq!(config_path(Some(&other)).unwrap(), None);
    }
}
