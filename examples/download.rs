//! The download coordinator: four processes need the same toolchain;
//! exactly one downloads it, the others wait and then use it. If the one
//! downloading dies, the next takes over.
//!
//! ```text
//! cargo run --example download
//! ```
//!
//! It runs two rounds: all four processes healthy, then with the first
//! downloader dying halfway (`abort`, no cleanup) so that another takes over.
//!
//! The whole pattern is `once_keyed`: the key names the version, so a new
//! version is fetched again; the marker is written durably only after the
//! toolchain is complete; a crash leaves no marker and the lock is freed by
//! the kernel.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use lockyard::{once_keyed, OnceOutcome};

const VERSION: &str = "llvm-18.1.8";
const PROCESSES: usize = 4;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next(), args.next()) {
        (Some("worker"), Some(dir), crash) => worker(Path::new(&dir), crash.is_some()),
        _ => {
            // Round one: everyone alive. Round two: the first process to
            // start downloading dies halfway; another must take over.
            for crash in [false, true] {
                if let Err(why) = round(crash) {
                    eprintln!("{why}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
    }
}

/// Starts the workers on a fresh cache directory and checks they agreed.
fn round(crash: bool) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!(
        "lockyard-download-{}-{}",
        std::process::id(),
        u8::from(crash)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    println!(
        "{PROCESSES} processes need {VERSION}{}",
        if crash {
            "; the first downloader will die halfway"
        } else {
            ""
        }
    );
    // All at once: they race for the toolchain.
    let mut children = Vec::new();
    for _ in 0..PROCESSES {
        let mut cmd = Command::new(&exe);
        cmd.arg("worker").arg(&dir);
        if crash {
            cmd.arg("crash");
        }
        let child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start a worker: {e}"))?;
        children.push(child);
    }
    let mut outputs = Vec::new();
    for child in children {
        let out = child
            .wait_with_output()
            .map_err(|e| format!("cannot wait for a worker: {e}"))?;
        outputs.push(out);
    }
    let (mut downloads, mut died) = (0, 0);
    for out in &outputs {
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !(crash && stderr.contains("dying halfway")) {
                return Err(format!("a worker failed: {stderr}"));
            }
            eprint!("{stderr}");
            died += 1;
        }
        downloads += text.matches("downloaded").count();
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("{downloads} complete download(s), {died} died, {PROCESSES} processes\n");
    if downloads == 1 && died == usize::from(crash) {
        Ok(())
    } else {
        Err("the processes did not agree on one downloader".to_string())
    }
}

/// One process that needs the toolchain.
fn worker(cache: &Path, crash: bool) -> ExitCode {
    let pid = std::process::id();
    let toolchain: PathBuf = cache.join(VERSION);
    let marker = cache.join("toolchain.ready");
    match once_keyed(&marker, VERSION, || fetch(&toolchain, crash)) {
        Ok(OnceOutcome::Ran(bytes)) => println!("pid {pid}: downloaded {VERSION} ({bytes} bytes)"),
        Ok(OnceOutcome::AlreadyDone) => println!("pid {pid}: {VERSION} already there, using it"),
        Err(e) => {
            eprintln!("pid {pid}: {e}");
            return ExitCode::FAILURE;
        }
    }
    // Whoever downloaded it, it is complete now.
    match std::fs::read(toolchain.join("bin/clang")) {
        Ok(bytes) if bytes.len() == 4096 => ExitCode::SUCCESS,
        _ => {
            eprintln!("pid {pid}: toolchain incomplete");
            ExitCode::FAILURE
        }
    }
}

/// A simulated download: slow, and written in place (the marker, not the
/// files, says when it is complete). With `crash`, the first process to get
/// here dies halfway, leaving a partial download and no marker.
fn fetch(dest: &Path, crash: bool) -> std::io::Result<usize> {
    std::fs::create_dir_all(dest.join("bin"))?;
    std::fs::write(dest.join("bin/clang"), vec![0u8; 1024])?;
    std::thread::sleep(Duration::from_millis(300));
    let first = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest.join("started"))
        .is_ok();
    if crash && first {
        eprintln!(
            "pid {}: dying halfway through the download",
            std::process::id()
        );
        std::process::abort();
    }
    std::fs::write(dest.join("bin/clang"), vec![0u8; 4096])?;
    Ok(4096)
}
