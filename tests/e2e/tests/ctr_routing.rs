//! Backend choice: annotation `nexcage.io/backend` beats `[[routing]]` rules, which beat
//! `default_backend`. The backend holding a container is read back with
//! `<backend> --root <state_dir>/<backend>/<ns> list`. nexcage only.

use nexcage_e2e::ctr::{Ctr, RunOpts};
use nexcage_e2e::{backend_tests, Backend, Case};

backend_tests!(
    default_backend_is_used,
    annotation_chooses_backend,
    routing_rule_chooses_backend,
    annotation_beats_routing,
);

fn require_nexcage() {
    assert!(
        nexcage_e2e::is_nexcage(),
        "backend routing is a nexcage feature; this scenario cannot run with E2E_RUNTIME={}",
        nexcage_e2e::runtime()
    );
}

/// Start `id` detached with `opts`, then check which backend holds it.
fn start_on(ctr: &Ctr<'_>, opts: RunOpts, id: &str, expect: Backend) {
    let opts = RunOpts {
        rm: false,
        detach: true,
        ..opts
    };
    ctr.expect(&ctr.run(&opts, id, &["sleep", "1000"]), "ctr run -d");
    ctr.wait_status(id, "RUNNING");
    ctr.assert_backend(id, expect);
}

fn default_backend_is_used(case: Case) {
    require_nexcage();
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    start_on(&ctr, RunOpts::default(), &id, case.backend);
}

fn annotation_chooses_backend(case: Case) {
    require_nexcage();
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let other = case.backend.other();
    let config = ctr.write_config(&format!("default_backend = \"{}\"\n", other.0));
    let opts = RunOpts {
        config: Some(config),
        annotations: vec![format!("nexcage.io/backend={}", case.backend.0)],
        ..Default::default()
    };
    start_on(&ctr, opts, &id, case.backend);
}

fn routing_rule_chooses_backend(case: Case) {
    require_nexcage();
    let ctr = case.ctr();
    let routed = ctr.id("routed");
    let plain = ctr.id("plain");
    let _g = ctr.guard(&[&routed, &plain]);
    let other = case.backend.other();
    let config = ctr.write_config(&format!(
        "default_backend = \"{}\"\n[[routing]]\npattern = \"{}*\"\nbackend = \"{}\"\n",
        other.0,
        ctr.id("rout"),
        case.backend.0
    ));
    let opts = RunOpts {
        config: Some(config),
        ..Default::default()
    };
    start_on(&ctr, opts.clone(), &routed, case.backend);
    start_on(&ctr, opts, &plain, other);
}

fn annotation_beats_routing(case: Case) {
    require_nexcage();
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let other = case.backend.other();
    let config = ctr.write_config(&format!(
        "default_backend = \"{}\"\n[[routing]]\npattern = \"{}\"\nbackend = \"{}\"\n",
        other.0, id, other.0
    ));
    let opts = RunOpts {
        config: Some(config),
        annotations: vec![format!("nexcage.io/backend={}", case.backend.0)],
        ..Default::default()
    };
    start_on(&ctr, opts, &id, case.backend);
}
