//! Subcommands that change datasets: create, destroy, snapshot, clone, promote, rollback, rename,
//! mount, unmount.

use crate::error::Result;
use crate::name::{check_any, check_dataset, check_property, check_snapshot, check_value};
use crate::opts::{self, CloneOpts, CreateOpts, DestroyOpts, Properties, RollbackOpts};
use crate::Zfs;

/// `-o k=v` pairs, checked.
pub(crate) fn property_args(props: &Properties) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(props.len() * 2);
    for (k, v) in props {
        check_property(k)?;
        check_value(k, v)?;
        out.push(opts::OPT.to_string());
        out.push(format!("{k}={v}"));
    }
    Ok(out)
}

impl Zfs {
    /// `zfs create [-p] [-o k=v]… <name>`.
    pub async fn create(&self, name: &str, o: &CreateOpts) -> Result<()> {
        check_dataset(name)?;
        let props = property_args(&o.properties)?;
        let mut args = vec!["create"];
        if o.parents {
            args.push(opts::PARENTS);
        }
        args.extend(props.iter().map(String::as_str));
        args.push(name);
        self.zfs("zfs create", name, &args).await.map(drop)
    }

    /// `zfs destroy [-r] [-R] [-f] <name>`, retried while `dataset is busy`.
    pub async fn destroy(&self, name: &str, o: &DestroyOpts) -> Result<()> {
        check_any(name)?;
        let mut args = vec!["destroy"];
        if o.recursive {
            args.push(opts::RECURSIVE);
        }
        if o.dependents {
            args.push(opts::DEPENDENTS);
        }
        if o.force {
            args.push(opts::FORCE);
        }
        args.push(name);
        self.retry_busy("zfs destroy", name, &args).await.map(drop)
    }

    /// [`destroy`](Self::destroy), treating "does not exist" as done (as PVE's free does).
    pub async fn destroy_if_exists(&self, name: &str, o: &DestroyOpts) -> Result<bool> {
        match self.destroy(name, o).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `zfs snapshot [-o k=v]… <dataset@snap>`.
    pub async fn snapshot(&self, snapshot: &str, properties: &Properties) -> Result<()> {
        check_snapshot(snapshot)?;
        let props = property_args(properties)?;
        let mut args = vec!["snapshot"];
        args.extend(props.iter().map(String::as_str));
        args.push(snapshot);
        self.zfs("zfs snapshot", snapshot, &args).await.map(drop)
    }

    /// `zfs clone [-p] [-o k=v]… <dataset@snap> <target>`.
    pub async fn clone_snapshot(&self, snapshot: &str, target: &str, o: &CloneOpts) -> Result<()> {
        check_snapshot(snapshot)?;
        check_dataset(target)?;
        let props = property_args(&o.properties)?;
        let mut args = vec!["clone"];
        if o.parents {
            args.push(opts::PARENTS);
        }
        args.extend(props.iter().map(String::as_str));
        args.push(snapshot);
        args.push(target);
        self.zfs("zfs clone", target, &args).await.map(drop)
    }

    /// `zfs promote <clone>`.
    pub async fn promote(&self, clone: &str) -> Result<()> {
        check_dataset(clone)?;
        self.zfs("zfs promote", clone, &["promote", clone])
            .await
            .map(drop)
    }

    /// `zfs rollback [-r] <dataset@snap>`.
    pub async fn rollback(&self, snapshot: &str, o: &RollbackOpts) -> Result<()> {
        check_snapshot(snapshot)?;
        let mut args = vec!["rollback"];
        if o.destroy_later {
            args.push(opts::RECURSIVE);
        }
        args.push(snapshot);
        self.zfs("zfs rollback", snapshot, &args).await.map(drop)
    }

    /// `zfs rename <from> <to>` (both datasets, or both snapshots of one dataset), retried while
    /// busy. zfs-fuse refuses to rename a mounted file system (`dataset is busy`), and reports
    /// busy for a moment after an unmount too: unmount it first.
    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        check_any(from)?;
        check_any(to)?;
        self.retry_busy("zfs rename", from, &["rename", from, to])
            .await
            .map(drop)
    }

    /// `zfs mount <dataset>`; already mounted is fine.
    pub async fn mount(&self, dataset: &str) -> Result<()> {
        check_dataset(dataset)?;
        match self.zfs("zfs mount", dataset, &["mount", dataset]).await {
            Err(e) if e.is_already_exists() => Ok(()),
            r => r.map(drop),
        }
    }

    /// `zfs unmount <dataset>`, retried while busy; not mounted is fine.
    pub async fn unmount(&self, dataset: &str) -> Result<()> {
        check_dataset(dataset)?;
        match self
            .retry_busy("zfs unmount", dataset, &["unmount", dataset])
            .await
        {
            Err(e) if e.is_not_found() => {
                // "not currently mounted" (fine) or "dataset does not exist" (not fine).
                if self.exists(dataset).await? {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            r => r.map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_args_are_checked() {
        let ok = property_args(&vec![("refquota".into(), "8G".into())]).unwrap();
        assert_eq!(ok, ["-o", "refquota=8G"]);
        assert!(property_args(&vec![("-x".into(), "1".into())]).is_err());
        assert!(property_args(&vec![("a".into(), "x\ny".into())]).is_err());
    }
}
