//! `nexcage image import|pull-from-containerd|ls|rm|prune`: the image store the config's `[image_store]` names.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nexcage_core::{ErrorKind, HasKind};
use nexcage_image::images::{self, ImageInfo, Imported, PruneReport};
use nexcage_image::oci::ImageLayer;
use nexcage_image::{
    resolve, AnyStore, ApplyOptions, BlobSource, Digest, LayerStatus, LayoutDir, OciArchive, Phase,
    Platform, Progress, Store,
};
use serde::Serialize;

use crate::args::{Cli, ImageCmd};
use crate::backend_cmd::print_json;
use crate::load::{self, UsageError};
use crate::table::Table;

/// An image store error as an anyhow error: invalid arguments (a bad name, an ambiguous
/// layout) exit 2; everything else (a corrupt image, I/O, zfs) exits 1.
pub(crate) fn image_err(e: nexcage_image::Error) -> anyhow::Error {
    match e {
        nexcage_image::Error::Core(c) if c.kind() == ErrorKind::InvalidArgument => {
            UsageError(c.chain()).into()
        }
        e => anyhow::Error::msg(e.chain()),
    }
}

/// Run one `image` subcommand.
pub async fn run(cli: &Cli, cmd: &ImageCmd) -> anyhow::Result<ExitCode> {
    let config = load::load(cli.config.as_deref())?.config;
    let open = || async {
        AnyStore::from_config(&config, ApplyOptions::default())
            .await
            .map_err(image_err)
    };
    match cmd {
        ImageCmd::Import { source, name } => {
            import(&open().await?, source, name.as_deref(), cli.json).await
        }
        ImageCmd::PullFromContainerd(args) => {
            crate::pull_cmd::pull(&open().await?, args, cli.json).await
        }
        ImageCmd::Ls => ls(&open().await?, cli.json).await,
        ImageCmd::Rm { name } => rm(&open().await?, name, cli.json).await,
        ImageCmd::Prune { dry_run } => prune(&open().await?, *dry_run, cli.json).await,
    }
}

/// `sha256:` and the first 12 hex digits.
fn short(d: &Digest) -> String {
    let hex = d.hex();
    format!("{}:{}", d.algorithm().as_str(), &hex[..hex.len().min(12)])
}

/// Bytes in binary units, one decimal (`2.0 MiB`).
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The progress bar of an import: one bar, reused for each layer that is unpacked, drawn on
/// stderr only when it is a terminal.
struct Bar {
    bar: ProgressBar,
    state: Mutex<(String, Option<Phase>)>,
}

impl Bar {
    fn new() -> Bar {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        let style = ProgressStyle::with_template(
            "{msg:32} [{bar:30}] {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        Bar {
            bar,
            state: Mutex::new((String::new(), None)),
        }
    }
}

impl Progress for Bar {
    fn layer(&self, index: usize, count: usize, layer: &ImageLayer, present: bool) {
        if present {
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0 = format!("layer {}/{count} {}", index + 1, short(&layer.digest));
        st.1 = None;
        self.bar.set_length(layer.size);
        self.bar.set_position(0);
        self.bar.reset_eta();
        self.bar.set_message(st.0.clone());
    }

    fn read(&self, phase: Phase, bytes: u64) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.1 != Some(phase) {
            st.1 = Some(phase);
            let what = match phase {
                Phase::Verify => "verify",
                Phase::Apply => "unpack",
            };
            self.bar.set_position(0);
            self.bar.reset_eta();
            self.bar.set_message(format!("{} {what}", st.0));
        }
        drop(st);
        self.bar.inc(bytes);
    }

    fn layer_done(&self, _: &LayerStatus) {}
}

#[derive(Debug, Serialize)]
struct LayerRow {
    chain_id: Digest,
    diff_id: Digest,
    digest: Digest,
    size: u64,
    unpacked_size: Option<u64>,
    /// "unpacked" (now) or "present" (the store had it).
    status: &'static str,
}

#[derive(Debug, Serialize)]
struct ImportRow {
    name: String,
    manifest: Digest,
    config: Digest,
    platform: String,
    source: String,
    store: String,
    /// The manifest the name pointed at before, when it was another image.
    replaced: Option<Digest>,
    layers: Vec<LayerRow>,
}

fn import_row(i: &Imported, store: &AnyStore) -> ImportRow {
    ImportRow {
        name: i.name.clone(),
        manifest: i.record.manifest.clone(),
        config: i.record.config.clone(),
        platform: i.record.platform.clone(),
        source: i.record.source.clone(),
        store: store.describe(),
        replaced: i
            .replaced
            .as_ref()
            .map(|r| r.manifest.clone())
            .filter(|m| *m != i.record.manifest),
        layers: i
            .layers
            .iter()
            .zip(&i.record.layers)
            .map(|(s, r)| LayerRow {
                chain_id: s.layer.chain_id.clone(),
                diff_id: s.layer.diff_id.clone(),
                digest: s.layer.digest.clone(),
                size: s.layer.size,
                unpacked_size: r.unpacked_size,
                status: if s.unpacked { "unpacked" } else { "present" },
            })
            .collect(),
    }
}

async fn import(
    store: &AnyStore,
    source: &Path,
    name: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let shown = source.display().to_string();
    let meta = std::fs::metadata(source).map_err(|e| UsageError(format!("{shown}: {e}")))?;
    let src: Arc<dyn BlobSource> = if meta.is_dir() {
        Arc::new(LayoutDir::open(source).map_err(image_err)?)
    } else {
        Arc::new(OciArchive::open(source).map_err(image_err)?)
    };
    let origin = std::fs::canonicalize(source)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| shown.clone());
    import_from(store, src, name, &shown, &origin, json).await
}

/// Select, resolve (off the runtime: a source may block on it), unpack, name and print.
/// `shown` names the source in errors, `origin` is recorded as the image's source.
pub(crate) async fn import_from(
    store: &AnyStore,
    src: Arc<dyn BlobSource>,
    name: Option<&str>,
    shown: &str,
    origin: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (s, n, sh) = (src.clone(), name.map(str::to_string), shown.to_string());
    let (sel, image) = tokio::task::spawn_blocking(move || {
        let sel = images::select(s.as_ref(), n.as_deref(), &sh)?;
        let image = resolve(s.as_ref(), sel.reference.as_deref(), &Platform::host())?;
        Ok::<_, nexcage_image::Error>((sel, image))
    })
    .await?
    .map_err(image_err)?;
    let bar = Arc::new(Bar::new());
    let progress: Arc<dyn Progress> = bar.clone();
    let imported = images::import(store, &src, &image, &sel.name, origin, progress).await;
    bar.bar.finish_and_clear();
    let imported = imported.map_err(image_err)?;
    let row = import_row(&imported, store);
    if json {
        print_json(&row)?;
        return Ok(ExitCode::SUCCESS);
    }
    let count = row.layers.len();
    for (i, l) in row.layers.iter().enumerate() {
        let size = l.unpacked_size.map(human).unwrap_or_else(|| "-".into());
        println!(
            "layer {}/{count} {}  {:<8}  {size}",
            i + 1,
            short(&l.chain_id),
            l.status
        );
    }
    let fresh = row.layers.iter().filter(|l| l.status == "unpacked").count();
    println!(
        "imported {} ({}, {}) into the {}: {count} layer{}, {fresh} unpacked, {} already present",
        row.name,
        short(&row.manifest),
        row.platform,
        row.store,
        if count == 1 { "" } else { "s" },
        count - fresh,
    );
    if let Some(old) = &row.replaced {
        println!(
            "the name {} pointed at {} before; its layers go at the next `nexcage image prune` \
             unless another image or a rootfs uses them",
            row.name,
            short(old)
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
struct ImageRow {
    name: String,
    manifest: Digest,
    platform: String,
    layers: usize,
    chain_ids: Vec<Digest>,
    /// Uncompressed size of the layers.
    size: u64,
    /// Size of the layer blobs (compressed).
    blob_size: u64,
    /// How many root file systems were made from it.
    in_use: usize,
    rootfs: Vec<String>,
    source: String,
    imported: u64,
}

fn image_row(i: &ImageInfo) -> ImageRow {
    ImageRow {
        name: i.name.clone(),
        manifest: i.record.manifest.clone(),
        platform: i.record.platform.clone(),
        layers: i.record.layers.len(),
        chain_ids: i.record.layers.iter().map(|l| l.chain_id.clone()).collect(),
        size: i.record.unpacked_size(),
        blob_size: i.record.blob_size(),
        in_use: i.users.len(),
        rootfs: i.users.clone(),
        source: i.record.source.clone(),
        imported: i.record.imported,
    }
}

async fn ls(store: &AnyStore, json: bool) -> anyhow::Result<ExitCode> {
    let rows: Vec<ImageRow> = images::list(store)
        .await
        .map_err(image_err)?
        .iter()
        .map(image_row)
        .collect();
    if json {
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(["NAME", "DIGEST", "PLATFORM", "LAYERS", "SIZE", "IN USE"]);
    for r in &rows {
        t.row([
            r.name.clone(),
            short(&r.manifest),
            r.platform.clone(),
            r.layers.to_string(),
            human(r.size),
            r.in_use.to_string(),
        ]);
    }
    print!("{t}");
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
struct RmRow {
    name: String,
    manifest: Digest,
    /// Root file systems made from it, which keep its layers until they are removed.
    rootfs: Vec<String>,
}

async fn rm(store: &AnyStore, name: &str, json: bool) -> anyhow::Result<ExitCode> {
    let removed = images::remove(store, name).await.map_err(image_err)?;
    let row = RmRow {
        name: removed.name,
        manifest: removed.record.manifest,
        rootfs: removed.users,
    };
    if json {
        print_json(&row)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("removed image {} ({})", row.name, short(&row.manifest));
    if row.rootfs.is_empty() {
        println!("its layers go at the next `nexcage image prune` unless another image uses them");
    } else {
        println!(
            "its layers stay while {} use{} them (then `nexcage image prune` removes them)",
            row.rootfs.join(", "),
            if row.rootfs.len() == 1 { "s" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
struct PrunedRow {
    chain_id: Digest,
    unpacked_size: Option<u64>,
}

#[derive(Debug, Serialize)]
struct InUseRow {
    chain_id: Digest,
    rootfs: Vec<String>,
}

#[derive(Debug, Serialize)]
struct FailedRow {
    chain_id: Digest,
    error: String,
}

#[derive(Debug, Serialize)]
struct PruneRow {
    dry_run: bool,
    store: String,
    removed: Vec<PrunedRow>,
    /// Sum of the removed layers' uncompressed sizes (where known).
    freed: u64,
    /// Layers no image names, kept because root file systems use them.
    in_use: Vec<InUseRow>,
    kept_for_images: usize,
    stale_rootfs: Vec<String>,
    /// Leftovers of interrupted unpacks removed first.
    leftovers: usize,
    failed: Vec<FailedRow>,
}

fn prune_row(r: PruneReport, store: &AnyStore, leftovers: usize) -> PruneRow {
    PruneRow {
        dry_run: r.dry_run,
        store: store.describe(),
        freed: r.removed.iter().filter_map(|l| l.unpacked_size).sum(),
        removed: r
            .removed
            .into_iter()
            .map(|l| PrunedRow {
                chain_id: l.chain_id,
                unpacked_size: l.unpacked_size,
            })
            .collect(),
        in_use: r
            .in_use
            .into_iter()
            .map(|l| InUseRow {
                chain_id: l.chain_id,
                rootfs: l.rootfs,
            })
            .collect(),
        kept_for_images: r.kept_for_images,
        stale_rootfs: r.stale_rootfs,
        leftovers,
        failed: r
            .failed
            .into_iter()
            .map(|(chain_id, error)| FailedRow { chain_id, error })
            .collect(),
    }
}

async fn prune(store: &AnyStore, dry_run: bool, json: bool) -> anyhow::Result<ExitCode> {
    let leftovers = if dry_run {
        0
    } else {
        store.sweep().await.map_err(image_err)?
    };
    let report = images::prune(store, dry_run).await.map_err(image_err)?;
    let row = prune_row(report, store, leftovers);
    let code = if row.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if json {
        print_json(&row)?;
        return Ok(code);
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    for l in &row.removed {
        let size = l.unpacked_size.map(human).unwrap_or_else(|| "-".into());
        println!("{verb} layer {}  {size}", short(&l.chain_id));
    }
    for l in &row.in_use {
        println!(
            "kept layer {}: in use by rootfs {}",
            short(&l.chain_id),
            l.rootfs.join(", ")
        );
    }
    for f in &row.failed {
        eprintln!("failed to remove layer {}: {}", short(&f.chain_id), f.error);
    }
    if !row.stale_rootfs.is_empty() {
        println!(
            "{} records of root file systems that no longer exist: {}",
            if dry_run { "would forget" } else { "forgot" },
            row.stale_rootfs.join(", ")
        );
    }
    if row.leftovers > 0 {
        println!("removed {} leftovers of interrupted unpacks", row.leftovers);
    }
    println!(
        "{verb} {} layer{} ({}); kept {} for images, {} in use by root file systems",
        row.removed.len(),
        if row.removed.len() == 1 { "" } else { "s" },
        human(row.freed),
        row.kept_for_images,
        row.in_use.len()
    );
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(200 << 20), "200.0 MiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }

    #[test]
    fn short_digests() {
        let d = Digest::sha256(b"");
        assert_eq!(short(&d), "sha256:e3b0c44298fc");
    }
}
