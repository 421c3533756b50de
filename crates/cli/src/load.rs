//! Reading the config the way the commands need it, and the errors that exit with status 2.

use std::fmt;
use std::path::{Path, PathBuf};

use nexcage_core::config::{Config, DEFAULT_CONFIG_PATH, KNOWN_BACKENDS};
use nexcage_core::{Error, ErrorKind, HasKind};

/// A mistake in what the user asked for (bad argument, unknown backend, malformed config): the
/// CLI exits with status 2 instead of 1.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A core error as an anyhow error: invalid arguments (a malformed config among them) become
/// [`UsageError`]s.
pub fn core_err(e: Error) -> anyhow::Error {
    if e.kind() == ErrorKind::InvalidArgument {
        UsageError(e.chain()).into()
    } else {
        anyhow::Error::msg(e.chain())
    }
}

/// Refuse a backend name this build does not know.
pub fn check_name(name: &str) -> Result<(), UsageError> {
    if KNOWN_BACKENDS.contains(&name) {
        Ok(())
    } else {
        Err(UsageError(format!(
            "unknown backend {name:?} (known: {})",
            KNOWN_BACKENDS.join(", ")
        )))
    }
}

/// The loaded config and where it came from.
#[derive(Debug)]
pub struct Loaded {
    /// The config.
    pub config: Config,
    /// The file it was read from, or "built-in defaults" when the default file does not exist.
    pub origin: String,
}

/// The file `--config` names, else the default path.
pub fn config_path(explicit: Option<&Path>) -> PathBuf {
    explicit.map_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH), Path::to_path_buf)
}

/// Load for reading: `--config PATH` must exist; without it, the default file is read when it
/// exists, else built-in defaults are used (as the shim does).
pub fn load(explicit: Option<&Path>) -> anyhow::Result<Loaded> {
    let path = config_path(explicit);
    if explicit.is_none() && !path.exists() {
        return Ok(Loaded {
            config: Config::default(),
            origin: "built-in defaults".to_string(),
        });
    }
    let config = Config::load(&path).map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            UsageError(e.chain()).into()
        } else {
            core_err(e)
        }
    })?;
    Ok(Loaded {
        config,
        origin: path.display().to_string(),
    })
}
