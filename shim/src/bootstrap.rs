//! What containerd hands `start` on stdin, in both protocols:
//!
//! - containerd ≤ 2.2: the runtime options as a `google.protobuf.Any` (empty when none), with
//!   `TTRPC_ADDRESS` in the environment;
//! - containerd 2.3+: a `BootstrapParams` message (api/runtime/bootstrap/v1) whose extensions
//!   carry the runtime options, and which also names the ttrpc address.
//!
//! Protobuf is lenient, so legacy bytes can parse as `BootstrapParams`; as containerd's own
//! `pkg/shim/compat.go` does, the parse only counts when instance id and namespace match the
//! command line. Replies stay a plain address, which 2.3 still accepts (its legacy fallback).
//! Verified only by the unit tests below: no containerd 2.3 build is available here.

use std::sync::OnceLock;

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use nexcage_core::{Error, Result};

/// Protocol containerd used to start this shim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Runtime options `Any` on stdin (containerd ≤ 2.2).
    Legacy,
    /// `BootstrapParams` on stdin (containerd 2.3+).
    Bootstrap,
}

/// The parsed stdin of `start`.
#[derive(Debug, Clone, PartialEq)]
pub struct StartInput {
    /// Which protocol.
    pub protocol: Protocol,
    /// The runtime options, if any.
    pub options: Option<Any>,
    /// containerd's ttrpc address from the bootstrap parameters.
    pub ttrpc_address: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PbAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Extension {
    #[prost(message, optional, tag = "1")]
    value: Option<PbAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct BootstrapParams {
    #[prost(string, tag = "1")]
    instance_id: String,
    #[prost(string, tag = "2")]
    namespace: String,
    #[prost(string, tag = "5")]
    containerd_ttrpc_address: String,
    #[prost(message, repeated, tag = "8")]
    extensions: Vec<Extension>,
}

/// Parse the stdin of `start` for container `cli_id` in namespace `cli_namespace`.
pub fn parse(stdin: &[u8], cli_id: &str, cli_namespace: &str) -> Result<StartInput> {
    if let Ok(p) = <BootstrapParams as prost::Message>::decode(stdin) {
        if !stdin.is_empty() && p.instance_id == cli_id && p.namespace == cli_namespace {
            let options = p
                .extensions
                .into_iter()
                .filter_map(|e| e.value)
                .find(|a| {
                    a.type_url.ends_with("runtimeoptions.v1.Options")
                        || a.type_url.ends_with(".Options")
                })
                .map(|a| Any {
                    type_url: a.type_url,
                    value: a.value,
                    ..Default::default()
                });
            return Ok(StartInput {
                protocol: Protocol::Bootstrap,
                options,
                ttrpc_address: Some(p.containerd_ttrpc_address).filter(|a| !a.is_empty()),
            });
        }
    }
    Ok(StartInput {
        protocol: Protocol::Legacy,
        options: crate::options::parse_stdin(stdin)?,
        ttrpc_address: None,
    })
}

static START_INPUT: OnceLock<StartInput> = OnceLock::new();

/// In `start` mode, before the library runs: read stdin once, and under the 2.3 protocol export
/// `TTRPC_ADDRESS` (the library requires it in every mode; the serving child inherits it).
pub fn prepare_start(args: &[String]) -> Result<()> {
    if args.last().map(String::as_str) != Some("start") {
        return Ok(());
    }
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_default()
    };
    let mut stdin = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut stdin)
        .map_err(|e| Error::io("read runtime options from stdin", e))?;
    let input = parse(&stdin, &flag("-id"), &flag("-namespace"))?;
    if let (Some(addr), Err(_)) = (&input.ttrpc_address, std::env::var("TTRPC_ADDRESS")) {
        // Single-threaded here: nothing else reads the environment yet.
        std::env::set_var("TTRPC_ADDRESS", addr);
    }
    let _ = START_INPUT.set(input);
    Ok(())
}

/// The stdin read by [`prepare_start`].
pub fn start_input() -> Option<&'static StartInput> {
    START_INPUT.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime_options(path: &str) -> PbAny {
        #[derive(Clone, PartialEq, prost::Message)]
        struct RuntimeOptions {
            #[prost(string, tag = "1")]
            type_url: String,
            #[prost(string, tag = "2")]
            config_path: String,
        }
        let inner = RuntimeOptions {
            type_url: "nexcage.v1.Options".into(),
            config_path: path.into(),
        };
        PbAny {
            type_url: "runtimeoptions.v1.Options".into(),
            value: prost::Message::encode_to_vec(&inner),
        }
    }

    #[test]
    fn bootstrap_params_give_options_and_address() {
        let p = BootstrapParams {
            instance_id: "c1".into(),
            namespace: "k8s.io".into(),
            containerd_ttrpc_address: "/run/containerd/containerd.sock.ttrpc".into(),
            extensions: vec![Extension {
                value: Some(runtime_options("/etc/nexcage/config.toml")),
            }],
        };
        let bytes = prost::Message::encode_to_vec(&p);
        let input = parse(&bytes, "c1", "k8s.io").unwrap();
        assert_eq!(input.protocol, Protocol::Bootstrap);
        assert_eq!(
            input.ttrpc_address.as_deref(),
            Some("/run/containerd/containerd.sock.ttrpc")
        );
        let path = crate::options::config_path(input.options.as_ref()).unwrap();
        assert_eq!(path.unwrap().to_str(), Some("/etc/nexcage/config.toml"));
    }

    #[test]
    fn legacy_options_are_not_mistaken_for_bootstrap_params() {
        // A legacy Any parses as BootstrapParams too (fields 1 and 2 are strings in both), but
        // its "instance id" is a type URL: the identity check sends it down the legacy path.
        let bytes = prost::Message::encode_to_vec(&runtime_options("/x.toml"));
        let input = parse(&bytes, "c1", "default").unwrap();
        assert_eq!(input.protocol, Protocol::Legacy);
        let path = crate::options::config_path(input.options.as_ref()).unwrap();
        assert_eq!(path.unwrap().to_str(), Some("/x.toml"));
    }

    #[test]
    fn empty_stdin_is_legacy_without_options() {
        let input = parse(&[], "c1", "default").unwrap();
        assert_eq!(
            input,
            StartInput {
                protocol: Protocol::Legacy,
                options: None,
                ttrpc_address: None
            }
        );
    }

    #[test]
    fn mismatched_identity_falls_back_to_legacy() {
        let p = BootstrapParams {
            instance_id: "other".into(),
            namespace: "k8s.io".into(),
            ..Default::default()
        };
        let input = parse(&prost::Message::encode_to_vec(&p), "c1", "k8s.io").unwrap();
        assert_eq!(input.protocol, Protocol::Legacy);
    }
}
