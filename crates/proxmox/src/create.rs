//! `pct create`'s argv: the settings nexcage always writes explicitly (proxmox.md §2.1, §5.4,
//! §13.2): `--ostype unmanaged`, `--arch amd64`, `--unprivileged`, memory and swap.

use crate::Vmid;

/// A `pct create` call.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateCt {
    vmid: Vmid,
    ostemplate: String,
    rootfs: String,
    memory_mib: u64,
    swap_mib: u64,
    ostype: String,
    arch: String,
    unprivileged: bool,
    cores: Option<u32>,
    cpulimit: Option<f64>,
    cpuunits: Option<u32>,
    hostname: Option<String>,
    tags: Vec<String>,
    description: Option<String>,
    nets: Vec<String>,
    features: Option<String>,
    entrypoint: Option<String>,
    storage: Option<String>,
}

impl CreateCt {
    /// CT `vmid` from `ostemplate` (a `STORAGE:vztmpl/FILE` volume or an absolute path) on
    /// `rootfs` (`STORAGE:SIZE_GiB`, `STORAGE:subvol-<vmid>-disk-0` or `/abs/dir`), with these
    /// limits. Unmanaged, amd64, unprivileged unless changed.
    pub fn new(
        vmid: Vmid,
        ostemplate: impl Into<String>,
        rootfs: impl Into<String>,
        memory_mib: u64,
        swap_mib: u64,
    ) -> CreateCt {
        CreateCt {
            vmid,
            ostemplate: ostemplate.into(),
            rootfs: rootfs.into(),
            memory_mib,
            swap_mib,
            ostype: "unmanaged".into(),
            arch: "amd64".into(),
            unprivileged: true,
            cores: None,
            cpulimit: None,
            cpuunits: None,
            hostname: None,
            tags: Vec::new(),
            description: None,
            nets: Vec::new(),
            features: None,
            entrypoint: None,
            storage: None,
        }
    }

    /// The VMID.
    pub fn vmid(&self) -> Vmid {
        self.vmid
    }
    /// `--ostype` (default `unmanaged`).
    pub fn ostype(mut self, v: impl Into<String>) -> Self {
        self.ostype = v.into();
        self
    }
    /// `--arch` (default `amd64`).
    pub fn arch(mut self, v: impl Into<String>) -> Self {
        self.arch = v.into();
        self
    }
    /// `--unprivileged` (default 1).
    pub fn unprivileged(mut self, v: bool) -> Self {
        self.unprivileged = v;
        self
    }
    /// `--cores`.
    pub fn cores(mut self, v: u32) -> Self {
        self.cores = Some(v);
        self
    }
    /// `--cpulimit` (CPUs; 0 = none).
    pub fn cpulimit(mut self, v: f64) -> Self {
        self.cpulimit = Some(v);
        self
    }
    /// `--cpuunits`.
    pub fn cpuunits(mut self, v: u32) -> Self {
        self.cpuunits = Some(v);
        self
    }
    /// `--hostname`.
    pub fn hostname(mut self, v: impl Into<String>) -> Self {
        self.hostname = Some(v.into());
        self
    }
    /// Add a tag (pass it through [`sanitize_tag`] first if it comes from outside).
    pub fn tag(mut self, v: impl Into<String>) -> Self {
        self.tags.push(v.into());
        self
    }
    /// `--description` (may span lines; Proxmox escapes it in the file).
    pub fn description(mut self, v: impl Into<String>) -> Self {
        self.description = Some(v.into());
        self
    }
    /// Add a `--netN` (N in order of calls), e.g. `name=eth0,bridge=vmbr0,ip=dhcp`.
    pub fn net(mut self, v: impl Into<String>) -> Self {
        self.nets.push(v.into());
        self
    }
    /// `--features` (e.g. `nesting=1`).
    pub fn features(mut self, v: impl Into<String>) -> Self {
        self.features = Some(v.into());
        self
    }
    /// `--entrypoint` (PVE 9.1+).
    pub fn entrypoint(mut self, v: impl Into<String>) -> Self {
        self.entrypoint = Some(v.into());
        self
    }
    /// `--storage` (the default storage for a bare-size rootfs).
    pub fn storage(mut self, v: impl Into<String>) -> Self {
        self.storage = Some(v.into());
        self
    }

    /// The arguments after `pct`.
    pub fn argv(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "create".into(),
            self.vmid.to_string(),
            self.ostemplate.clone(),
        ];
        let mut opt = |k: &str, v: String| {
            a.push(format!("--{k}"));
            a.push(v);
        };
        opt("ostype", self.ostype.clone());
        opt("arch", self.arch.clone());
        opt(
            "unprivileged",
            if self.unprivileged { "1" } else { "0" }.into(),
        );
        opt("rootfs", self.rootfs.clone());
        opt("memory", self.memory_mib.to_string());
        opt("swap", self.swap_mib.to_string());
        if let Some(v) = self.cores {
            opt("cores", v.to_string());
        }
        if let Some(v) = self.cpulimit {
            opt("cpulimit", v.to_string());
        }
        if let Some(v) = self.cpuunits {
            opt("cpuunits", v.to_string());
        }
        if let Some(v) = &self.hostname {
            opt("hostname", v.clone());
        }
        if !self.tags.is_empty() {
            opt("tags", self.tags.join(";"));
        }
        if let Some(v) = &self.description {
            opt("description", v.clone());
        }
        for (i, n) in self.nets.iter().enumerate() {
            opt(&format!("net{i}"), n.clone());
        }
        if let Some(v) = &self.features {
            opt("features", v.clone());
        }
        if let Some(v) = &self.entrypoint {
            opt("entrypoint", v.clone());
        }
        if let Some(v) = &self.storage {
            opt("storage", v.clone());
        }
        a
    }
}

/// A Proxmox tag from any text: lower case, characters outside `[a-z0-9_+.-]` replaced by
/// `-`, a leading character that is not `[a-z0-9_]` prefixed with `_` (PVE's tag pattern).
pub fn sanitize_tag(s: &str) -> String {
    let mut t: String = s
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        t.insert(0, '_');
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_argv_has_explicit_defaults() {
        let a = CreateCt::new(
            200,
            "local:vztmpl/empty.tar",
            "local-zfs:subvol-200-disk-0",
            256,
            0,
        )
        .argv();
        assert_eq!(
            a,
            [
                "create",
                "200",
                "local:vztmpl/empty.tar",
                "--ostype",
                "unmanaged",
                "--arch",
                "amd64",
                "--unprivileged",
                "1",
                "--rootfs",
                "local-zfs:subvol-200-disk-0",
                "--memory",
                "256",
                "--swap",
                "0"
            ]
        );
    }

    #[test]
    fn full_argv() {
        let a = CreateCt::new(201, "/tmp/t.tar", "local-zfs:8", 1024, 512)
            .unprivileged(false)
            .cores(2)
            .cpulimit(1.5)
            .cpuunits(200)
            .hostname("web-0")
            .tag("nexcage")
            .tag(sanitize_tag("Pod/Default:Web"))
            .description("pod default/web\ncontainer app")
            .net("name=eth0,bridge=vmbr0,ip=dhcp")
            .net("name=eth1,bridge=vmbr1,ip=manual")
            .features("nesting=1")
            .entrypoint("/bin/sleep 10")
            .storage("local-zfs")
            .argv();
        let tail: Vec<&str> = a[3..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "--ostype",
                "unmanaged",
                "--arch",
                "amd64",
                "--unprivileged",
                "0",
                "--rootfs",
                "local-zfs:8",
                "--memory",
                "1024",
                "--swap",
                "512",
                "--cores",
                "2",
                "--cpulimit",
                "1.5",
                "--cpuunits",
                "200",
                "--hostname",
                "web-0",
                "--tags",
                "nexcage;pod-default-web",
                "--description",
                "pod default/web\ncontainer app",
                "--net0",
                "name=eth0,bridge=vmbr0,ip=dhcp",
                "--net1",
                "name=eth1,bridge=vmbr1,ip=manual",
                "--features",
                "nesting=1",
                "--entrypoint",
                "/bin/sleep 10",
                "--storage",
                "local-zfs"
            ]
        );
    }

    #[test]
    fn tags() {
        assert_eq!(sanitize_tag("ns:default"), "ns-default");
        assert_eq!(sanitize_tag("-x"), "_-x");
        assert_eq!(sanitize_tag("A.b+c_d"), "a.b+c_d");
    }
}
