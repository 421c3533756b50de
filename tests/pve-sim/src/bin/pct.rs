//! `pct` as documented in proxmox.md, simulated (see the crate README).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(nexcage_pve_sim::main_of(nexcage_pve_sim::Tool::Pct, args));
}
