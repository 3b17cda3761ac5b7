//! The HTML reports in a real browser: a run's `index.html` and the
//! comparison page are rendered by headless Chromium from disk. The test
//! checks that the charts (inline SVG) are in the rendered DOM, that the
//! page made no network request (Chromium's net log holds no http, https or
//! ws URL, and the rendered DOM points at none), and keeps a screenshot of
//! each page under `target/browser-screenshots/`.
//!
//! Skipped when `chromium` is not installed (a failure under
//! `LOCKBENCH_REQUIRE_BACKENDS=1`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest one Chromium run may take before it is killed.
const CHROMIUM_LIMIT: Duration = Duration::from_secs(60);

/// Runs Chromium with `args` (after the common headless flags) on `url`;
/// returns its stdout. Kills its process group after `CHROMIUM_LIMIT`.
fn chromium(profile: &Path, args: &[String], url: &str) -> String {
    use std::os::unix::process::CommandExt;
    let out_file = profile.join(format!("stdout-{}.txt", args.len()));
    let stdout = std::fs::File::create(&out_file).unwrap();
    let mut child = Command::new(lockbench::cluster::find_binary("chromium").unwrap())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--window-size=1280,2000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.join("profile").display()
        ))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null())
        // Its own process group, so a hung run is killed with its helpers.
        .process_group(0)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CHROMIUM_LIMIT {
            // SAFETY: signals the process group this test started.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
            panic!("chromium did not finish within {CHROMIUM_LIMIT:?} on {url}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "chromium {args:?} {url}: {status}");
    std::fs::read_to_string(&out_file).unwrap()
}

/// Whether `url` would leave the machine (anything but the local schemes).
fn is_network(url: &str) -> bool {
    ![
        "file:",
        "data:",
        "blob:",
        "about:",
        "chrome:",
        "chrome-error:",
    ]
    .iter()
    .any(|s| url.starts_with(s))
}

/// The network requests a page opened from disk made, from Chromium's net
/// log. Chromium itself talks to the network in the background (component
/// updates, time, accounts) whatever the flags; those requests carry no
/// page origin. A page's own requests carry the page's network isolation
/// key (`file://`, as it was opened from disk) and its opaque origin as
/// initiator (`null`).
fn page_requests(net_log: &str) -> Vec<String> {
    let log: serde_json::Value = serde_json::from_str(net_log).unwrap();
    let events = log["events"].as_array().expect("net log has events");
    let mut found = Vec::new();
    for e in events {
        let p = &e["params"];
        let Some(url) = p["url"].as_str() else {
            continue;
        };
        let from_page = p["network_isolation_key"]
            .as_str()
            .is_some_and(|k| k.contains("file://"))
            || p["initiator"].as_str() == Some("null");
        if from_page && is_network(url) && !found.iter().any(|f| f == url) {
            found.push(url.to_string());
        }
    }
    found
}

/// Network URLs the rendered DOM points at (src, href, CSS url()).
fn linked_urls(dom: &str) -> Vec<String> {
    let mut found = Vec::new();
    for scheme in ["http://", "https://", "ws://", "wss://", "//"] {
        for prefix in ["src=\"", "href=\"", "url(", "url(\"", "@import \""] {
            let needle = format!("{prefix}{scheme}");
            let mut rest = dom;
            while let Some(at) = rest.find(&needle) {
                let url: String = rest[at + prefix.len()..]
                    .chars()
                    .take_while(|c| !matches!(c, '"' | '\'' | ')' | ' ' | '>'))
                    .collect();
                found.push(url);
                rest = &rest[at + needle.len()..];
            }
        }
    }
    found
}

/// Loads `url` with the net log on and a screenshot to `shot`; returns the
/// page's own network requests.
fn load(work: &Path, url: &str, shot: &Path) -> Vec<String> {
    let net_log = work.join("net-log.json");
    let _ = std::fs::remove_file(&net_log);
    chromium(
        work,
        &[
            format!("--screenshot={}", shot.display()),
            format!("--log-net-log={}", net_log.display()),
            "--net-log-capture-mode=Everything".to_string(),
        ],
        url,
    );
    page_requests(&std::fs::read_to_string(&net_log).unwrap())
}

/// Renders `page` (a file), checks it, keeps its screenshot as `name.png`.
fn render(page: &Path, name: &str, min_charts: usize) -> PathBuf {
    let page = page.canonicalize().unwrap();
    let url = format!("file://{}", page.display());
    let work = tempfile::tempdir().unwrap();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("browser-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&shot);

    // 1. Screenshot, with every network event logged.
    let requests = load(work.path(), &url, &shot);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.len() > 10_000 && png.starts_with(b"\x89PNG"),
        "{}: not a real screenshot ({} bytes)",
        shot.display(),
        png.len()
    );
    assert!(
        requests.is_empty(),
        "{url} made network requests: {requests:?}"
    );

    // 2. The DOM after scripts and layout: the charts are there.
    let dom = chromium(work.path(), &["--dump-dom".to_string()], &url);
    assert!(dom.contains("<html"), "no DOM dumped for {url}: {dom:.200}");
    let charts = dom.matches("<svg").count();
    let in_file = std::fs::read_to_string(&page)
        .unwrap()
        .matches("<svg")
        .count();
    assert!(
        charts >= min_charts && charts >= in_file,
        "{url}: {charts} <svg> charts in the rendered DOM, expected at least {min_charts} and the file's {in_file}"
    );
    let linked = linked_urls(&dom);
    assert!(linked.is_empty(), "{url} points at the network: {linked:?}");
    println!("screenshot: {} ({charts} charts)", shot.display());
    shot
}

#[test]
fn reports_render_from_disk_with_their_charts() {
    if !common::server_available("chromium") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let with_redis = common::server_available("redis-server");
    let run = |name: &str, backends: &str| {
        let path = common::scenario(
            dir.path(),
            name,
            &format!(
                "name = \"{name}\"\nbackends = [{backends}]\nexpect = \"valid\"\nduration = \"2s\"\n\
                 clients = 8\nhosts = 2\nkeys = 2\nlease = \"5s\"\nacquire_timeout = \"2s\"\n\
                 hold = {{ min = \"1ms\", max = \"3ms\" }}\nthink = {{ min = \"0ms\", max = \"2ms\" }}\n"
            ),
        );
        let o = common::lockbench()
            .args(["run", "--no-progress", "--seed", "7", "--out"])
            .arg(&out)
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let (run_page, comparison) = if with_redis {
        // One scenario, two backends: `run` writes the comparison itself.
        run("browser", "\"inproc\", \"redis\"");
        (
            common::run_dir(&out, "browser", "inproc").join("index.html"),
            out.join("browser").join("comparison.html"),
        )
    } else {
        // Without Redis: two inproc runs, compared by `lockbench report`.
        run("browser", "\"inproc\"");
        run("browser-again", "\"inproc\"");
        let cmp = dir.path().join("cmp");
        let o = common::lockbench()
            .arg("report")
            .arg(common::run_dir(&out, "browser", "inproc"))
            .arg(common::run_dir(&out, "browser-again", "inproc"))
            .arg("--out")
            .arg(&cmp)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (
            common::run_dir(&out, "browser", "inproc").join("index.html"),
            cmp.join("comparison.html"),
        )
    };
    assert!(run_page.is_file(), "{}", run_page.display());
    assert!(comparison.is_file(), "{}", comparison.display());
    // A run page charts at least the latency and the throughput; the
    // comparison at least latency percentiles and throughput per backend.
    // The detector is not blind: a page that fetches an image (from a
    // closed loopback port) is caught.
    let control = dir.path().join("control.html");
    std::fs::write(
        &control,
        "<html><body><img src=\"http://127.0.0.1:9/x.png\"><svg></svg></body></html>",
    )
    .unwrap();
    let control_shot = dir.path().join("control.png");
    let caught = load(
        dir.path(),
        &format!("file://{}", control.display()),
        &control_shot,
    );
    assert_eq!(
        caught,
        ["http://127.0.0.1:9/x.png"],
        "the control page's request"
    );
    assert_eq!(
        linked_urls("<img src=\"http://127.0.0.1:9/x.png\">"),
        ["http://127.0.0.1:9/x.png"]
    );
    render(&run_page, "run-index", 2);
    render(&comparison, "comparison", 2);
}
