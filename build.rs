//! Builds lockbench's clock skew preload library (src/net/skew.c) with the
//! system C compiler. Without one the build still succeeds: the embedded
//! library is empty and clock faults say why they cannot run.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "src/net/skew.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let lib = out.join("liblockbench_skew.so");
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let built = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg(src)
        .status();
    match built {
        Ok(s) if s.success() => {}
        other => {
            println!(
                "cargo:warning=cannot build the clock skew library ({}): clock faults will be unavailable",
                match other {
                    Ok(s) => format!("{cc:?} failed: {s}"),
                    Err(e) => format!("{cc:?}: {e}"),
                }
            );
            // An empty file: the crate still embeds something.
            let _ = std::fs::write(&lib, b"");
        }
    }
}
