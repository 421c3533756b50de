//! `containerd-shim-nexcage-v1`: containerd runs this binary for runtime type
//! `io.containerd.nexcage.v1`.

mod bootstrap;
mod convert;
mod logging;
mod options;
mod service;
mod shim;
mod status;
mod trim;

use containerd_shim::Config;

fn main() {
    // One malloc arena for every thread: glibc gives each thread that allocates its own arena
    // (pages that stay resident per thread), and the shim's threads allocate little.
    // SAFETY: mallopt only changes the allocator's tuning; called before any thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    // `start` reads stdin here, before the library checks TTRPC_ADDRESS (containerd 2.3 passes
    // it inside the bootstrap parameters instead of the environment).
    let args: Vec<String> = std::env::args().collect();
    if let Err(e) = bootstrap::prepare_start(&args) {
        eprintln!("io.containerd.nexcage.v1: {}", e.chain());
        std::process::exit(1);
    }
    let config = Config {
        // tracing writes into the log FIFO (logging.rs), and nexcage-core owns the reaper
        // (gotcha G1): the library must do neither.
        no_setup_logger: true,
        no_reaper: true,
        ..Default::default()
    };
    // One thread: the shim is I/O-bound and small; blocking work goes to the blocking pool and
    // the reaper has its own thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build tokio runtime");
    rt.block_on(containerd_shim::asynchronous::run::<shim::NexcageShim>(
        "io.containerd.nexcage.v1",
        Some(config),
    ));
    // Serving is over (or start/delete is done): never wait on a blocking-pool thread that is
    // stuck in a system call, or the shim would outlive its last container.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
}
