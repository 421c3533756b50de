//! Writing OCI image layouts by hand (so tests control every digest, media type and platform).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{digest, gzip};

pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// An OCI layout directory being written.
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    /// Store a blob; returns its descriptor (without media type).
    pub fn blob(&self, bytes: &[u8]) -> Value {
        let d = digest(bytes);
        std::fs::write(self.dir.join("blobs/sha256").join(d.hex()), bytes).unwrap();
        json!({"digest": d.to_string(), "size": bytes.len()})
    }

    pub fn blob_path(&self, desc: &Value) -> PathBuf {
        let d = desc["digest"].as_str().unwrap();
        self.dir
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    }

    /// An image of these (uncompressed) layer tars, gzipped; returns the manifest descriptor
    /// and the layer descriptors. `diff_ids` overrides the config's diff ids.
    pub fn image(
        &self,
        arch: &str,
        layers: &[Vec<u8>],
        diff_ids: Option<Vec<String>>,
    ) -> (Value, Vec<Value>) {
        let mut descs = Vec::new();
        for l in layers {
            let mut d = self.blob(&gzip(l));
            d["mediaType"] = json!(LAYER_GZIP);
            descs.push(d);
        }
        let diff_ids =
            diff_ids.unwrap_or_else(|| layers.iter().map(|l| digest(l).to_string()).collect());
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let mut cfg = self.blob(config.to_string().as_bytes());
        cfg["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": cfg,
            "layers": descs,
        });
        let mut m = self.blob(manifest.to_string().as_bytes());
        m["mediaType"] = json!(MANIFEST);
        m["platform"] = json!({"architecture": arch, "os": "linux"});
        (m, descs)
    }

    /// A nested index blob of these manifests; returns its descriptor.
    pub fn nested_index(&self, manifests: &[Value]) -> Value {
        let idx = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests});
        let mut d = self.blob(idx.to_string().as_bytes());
        d["mediaType"] = json!(INDEX);
        d
    }

    /// Write `index.json` with these descriptors, each optionally named.
    pub fn index(&self, manifests: &[(Value, Option<&str>)]) {
        let list: Vec<Value> = manifests
            .iter()
            .map(|(d, name)| {
                let mut d = d.clone();
                if let Some(n) = name {
                    d["annotations"] = json!({"org.opencontainers.image.ref.name": n});
                }
                d
            })
            .collect();
        let idx = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": list});
        std::fs::write(self.dir.join("index.json"), idx.to_string()).unwrap();
    }

    /// The layout as an OCI archive (a tar of the directory).
    pub fn archive(&self, out: &Path) {
        let f = std::fs::File::create(out).unwrap();
        let mut b = tar::Builder::new(f);
        b.append_dir_all(".", &self.dir).unwrap();
        b.finish().unwrap();
    }
}
