//! Backend selection: annotation, routing rules, default, then priority among healthy backends.

use std::collections::HashMap;

use regex::Regex;

use crate::config::Config;
use crate::error::{Error, Result};

/// Annotation that names the backend of a container (or, copied from the pod, of every container
/// of a pod).
pub const BACKEND_ANNOTATION: &str = "nexcage.io/backend";
/// CRI annotation with the container name.
pub const CRI_CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
/// CRI annotation with the image name.
pub const CRI_IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
/// CRI annotation with the pod's name (on the sandbox and every container).
pub const CRI_SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
/// CRI annotation with the pod sandbox id (the shim grouping key).
pub const CRI_SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

/// A routing pattern: a glob (`*` any run, `?` one character) or an anchored regex (`^…$`).
#[derive(Debug, Clone)]
pub enum Pattern {
    /// Glob pattern.
    Glob(String),
    /// Regular expression, written `^…$`.
    Regex(Regex),
}

impl Pattern {
    /// Parse a pattern as written in the config.
    pub fn parse(s: &str) -> Result<Pattern> {
        if s.is_empty() {
            return Err(Error::invalid("empty pattern"));
        }
        if s.starts_with('^') && s.ends_with('$') {
            Regex::new(s)
                .map(Pattern::Regex)
                .map_err(|e| Error::invalid(format!("invalid regular expression: {e}")))
        } else {
            Ok(Pattern::Glob(s.to_string()))
        }
    }

    /// Whether `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Glob(g) => glob_match(g.as_bytes(), text.as_bytes()),
            Pattern::Regex(r) => r.is_match(text),
        }
    }
}

fn glob_match(p: &[u8], t: &[u8]) -> bool {
    // Iterative matcher with single-star backtracking: linear in practice, no recursion.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// A compiled routing rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// What to match.
    pub pattern: Pattern,
    /// Backend to use on a match.
    pub backend: String,
}

/// What selection looks at for one container.
#[derive(Debug, Clone, Default)]
pub struct Subject<'a> {
    /// Container id.
    pub id: &'a str,
    /// OCI annotations of the container.
    pub annotations: Option<&'a HashMap<String, String>>,
}

impl Subject<'_> {
    fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations?.get(key).map(String::as_str)
    }
}

/// The outcome of selection before health is considered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// A rule named the backend; `why` says which rule.
    Explicit {
        /// Backend name.
        backend: String,
        /// Human-readable reason, for logs and errors.
        why: String,
    },
    /// No rule applied: try these enabled backends in order, take the first healthy one.
    ByPriority(Vec<String>),
}

/// Choose the backend for `subject` under `config`. First match wins: annotation, routing rules
/// (matched against id, CRI container name, image name and pod name), `default_backend`, then
/// priority.
pub fn choose(config: &Config, subject: &Subject<'_>) -> Result<Choice> {
    let explicit = |backend: &str, why: String| -> Result<Choice> {
        if !crate::config::KNOWN_BACKENDS.contains(&backend) {
            return Err(Error::invalid(format!(
                "{why}: unknown backend {backend:?} (known: {})",
                crate::config::KNOWN_BACKENDS.join(", ")
            )));
        }
        if !config.backend(backend).enabled {
            return Err(Error::precondition(format!(
                "{why}: backend {backend:?} is disabled"
            )));
        }
        Ok(Choice::Explicit {
            backend: backend.to_string(),
            why,
        })
    };
    if let Some(b) = subject.annotation(BACKEND_ANNOTATION) {
        return explicit(b, format!("annotation {BACKEND_ANNOTATION}={b}"));
    }
    let names = [
        Some(subject.id),
        subject.annotation(CRI_CONTAINER_NAME),
        subject.annotation(CRI_IMAGE_NAME),
        subject.annotation(CRI_SANDBOX_NAME),
    ];
    for (i, rule) in config.rules().iter().enumerate() {
        if let Some(name) = names.iter().flatten().find(|n| rule.pattern.matches(n)) {
            return explicit(&rule.backend, format!("routing[{i}] matched {name:?}"));
        }
    }
    if let Some(b) = &config.default_backend {
        return explicit(b, "default_backend".to_string());
    }
    let order: Vec<String> = config
        .backends_by_priority()
        .into_iter()
        .filter(|b| b.enabled)
        .map(|b| b.name)
        .collect();
    if order.is_empty() {
        return Err(Error::precondition(
            "every backend is disabled in the configuration",
        ));
    }
    Ok(Choice::ByPriority(order))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, HasKind};

    fn ann(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn glob_cases() {
        let m = |p: &str, t: &str| Pattern::parse(p).unwrap().matches(t);
        assert!(m("kube-ovn-*", "kube-ovn-cni"));
        assert!(!m("kube-ovn-*", "cilium"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*x*y", "aaxbby"));
        assert!(!m("*x*y", "aaxbb"));
        assert!(m("*", ""));
    }

    #[test]
    fn regex_is_anchored() {
        let p = Pattern::parse("^web-[0-9]+$").unwrap();
        assert!(p.matches("web-12"));
        assert!(!p.matches("xweb-12"));
    }

    #[test]
    fn annotation_beats_routing_beats_default() {
        let c = Config::parse(
            "default_backend = \"runc\"\n[[routing]]\npattern = \"fast-*\"\nbackend = \"crun\"\n",
            "t",
        )
        .unwrap();
        let a = ann(&[(BACKEND_ANNOTATION, "runc")]);
        let s = Subject {
            id: "fast-1",
            annotations: Some(&a),
        };
        assert!(
            matches!(choose(&c, &s).unwrap(), Choice::Explicit { backend, .. } if backend == "runc")
        );
        let s = Subject {
            id: "fast-1",
            annotations: None,
        };
        assert!(
            matches!(choose(&c, &s).unwrap(), Choice::Explicit { backend, .. } if backend == "crun")
        );
        let s = Subject {
            id: "slow",
            annotations: None,
        };
        assert!(
            matches!(choose(&c, &s).unwrap(), Choice::Explicit { backend, why } if backend == "runc" && why == "default_backend")
        );
    }

    #[test]
    fn routing_matches_cri_container_and_image_names() {
        let c = Config::parse(
            "[[routing]]\npattern = \"*nginx*\"\nbackend = \"runc\"\n",
            "t",
        )
        .unwrap();
        let a = ann(&[(CRI_IMAGE_NAME, "docker.io/library/nginx:1")]);
        let s = Subject {
            id: "0123abcd",
            annotations: Some(&a),
        };
        assert!(
            matches!(choose(&c, &s).unwrap(), Choice::Explicit { backend, .. } if backend == "runc")
        );
        let a = ann(&[(CRI_CONTAINER_NAME, "my-nginx")]);
        let s = Subject {
            id: "0123abcd",
            annotations: Some(&a),
        };
        assert!(
            matches!(choose(&c, &s).unwrap(), Choice::Explicit { backend, .. } if backend == "runc")
        );
    }

    #[test]
    fn priority_order_skips_disabled() {
        let c = Config::parse("[backends.crun]\nenabled = false\n", "t").unwrap();
        let s = Subject {
            id: "x",
            annotations: None,
        };
        assert_eq!(
            choose(&c, &s).unwrap(),
            Choice::ByPriority(vec!["runc".into(), "lxc".into()])
        );
        let c = Config::default();
        assert_eq!(
            choose(&c, &s).unwrap(),
            Choice::ByPriority(vec!["crun".into(), "runc".into(), "lxc".into()])
        );
    }

    #[test]
    fn unknown_annotation_backend_is_invalid() {
        let a = ann(&[(BACKEND_ANNOTATION, "docker")]);
        let s = Subject {
            id: "x",
            annotations: Some(&a),
        };
        let e = choose(&Config::default(), &s).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains("\"docker\""), "{}", e.message());
    }

    #[test]
    fn disabled_explicit_backend_is_precondition() {
        let c = Config::parse("[backends.runc]\nenabled = false\n", "t").unwrap();
        let a = ann(&[(BACKEND_ANNOTATION, "runc")]);
        let s = Subject {
            id: "x",
            annotations: Some(&a),
        };
        assert_eq!(
            choose(&c, &s).unwrap_err().kind(),
            ErrorKind::FailedPrecondition
        );
    }
}
