//! Writes the hand-made seeds to `corpus/TARGET/seed-*` (run from `fuzz/`:
//! `cargo run --no-default-features --example make_seeds`). Other corpus files,
//! found by fuzzing, are left alone.

use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for target in wsconn_fuzz::seeds::TARGETS {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        for (name, bytes) in wsconn_fuzz::seeds::seeds(target) {
            std::fs::write(dir.join(&name), bytes).expect("write a seed");
        }
        println!("{}: {} seeds", dir.display(), wsconn_fuzz::seeds::seeds(target).len());
    }
}
