//! `lockbench`: the command-line front end. It parses the command line
//! (`cli`), starts the runtime, handles Ctrl-C, and hands each command to
//! `commands`, the CLI contract over the library, which returns
//! docs/design.md's exit codes: 0 as expected / valid, 1 not as expected /
//! invalid, 2 bad input, 3 unknown.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
mod cli;
mod commands;

use cli::{Cli, Command, ExportFormat, KubernetesCommand};
use commands::BAD_INPUT;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    init_logging();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { BAD_INPUT } else { 0 });
        }
    };
    prepare_process(&cli.command);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.threads {
        builder.worker_threads(usize::from(n));
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lockbench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command, cli.threads)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("lockbench: {e}");
            ExitCode::from(if e.is_bad_input() { BAD_INPUT } else { 1 })
        }
    }
}

/// lockbench's own warnings by default; client libraries only on error
/// (they warn on every reconnect, which faults cause on purpose).
fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOCKBENCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,lockbench=warn")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// What the process needs before any thread starts: `check`, `export` and
/// `report` only print and write files, so they end quietly when their
/// output pipe closes (`lockbench check h | head`), as Unix tools do;
/// `run` keeps SIGPIPE ignored (it writes to sockets) and raises its limit
/// on open files.
fn prepare_process(command: &Command) {
    match command {
        Command::Check { .. }
        | Command::Export { .. }
        | Command::Report { .. }
        | Command::Merge { .. }
        | Command::Kubernetes { .. } => {
            // SAFETY: setting a signal's disposition to its default, before
            // any thread is started.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            }
        }
        Command::Run { .. } => raise_open_files_limit(),
    }
}

/// Hands the command to the library; docs/design.md's exit code.
async fn dispatch(command: Command, threads: Option<u16>) -> lockbench::Result<u8> {
    match command {
        Command::Run {
            scenarios,
            out,
            seed,
            backends,
            duration,
            repeat,
            no_progress,
            junit,
            summary_md,
            json,
            history_format,
            dry_run,
            gate,
            agents,
        } => {
            let agent = match agents.role() {
                Ok(a) => a,
                Err(why) => {
                    eprintln!("error: {why}");
                    return Ok(BAD_INPUT);
                }
            };
            let local_agents = match agents.local() {
                Ok(l) => l.map(|mut l| {
                    l.passed_flags
                        .extend(threads.map(|n| format!("--threads={n}")));
                    l
                }),
                Err(why) => {
                    eprintln!("error: {why}");
                    return Ok(BAD_INPUT);
                }
            };
            let cancel = CancellationToken::new();
            install_signal_handlers(cancel.clone());
            commands::run_scenarios(commands::RunArgs {
                scenarios,
                out,
                seed,
                only: backends,
                duration,
                repeat,
                progress: !no_progress
                    && std::io::stderr().is_terminal()
                    && std::env::var_os("CI").is_none(),
                require_backends: std::env::var("LOCKBENCH_REQUIRE_BACKENDS")
                    .is_ok_and(|v| v == "1" || v == "true"),
                cancel,
                gate,
                ci: commands::CiOutputs {
                    junit,
                    summary_md: summary_md
                        .or_else(|| std::env::var_os("GITHUB_STEP_SUMMARY").map(Into::into)),
                    json,
                },
                history_format: history_format.into(),
                dry_run,
                agent,
                local_agents,
                endpoints: agents.endpoint,
            })
            .await
        }
        Command::Check {
            history,
            format,
            linearizable,
        } => commands::check_history(&history, format, linearizable),
        Command::Export {
            format: ExportFormat::Porcupine,
            history,
            input,
            output,
        } => commands::export_porcupine(&history, input, output.as_deref()),
        Command::Report { runs, out, gate } => commands::report_runs(&runs, &out, &gate),
        Command::Merge { dirs, out } => commands::merge_agents(&dirs, &out),
        Command::Kubernetes {
            what:
                KubernetesCommand::Job {
                    scenario,
                    agents,
                    backend,
                    image,
                    claim,
                    clock_bound,
                    start_at,
                    seed,
                },
        } => commands::kubernetes_job(
            &scenario,
            &lockbench::run::agents::JobOptions {
                agents,
                backend,
                image,
                claim,
                clock_bound,
                start_at_ns: start_at,
                seed,
            },
        ),
    }
}

/// A run holds a socket per client connection, two per proxied one, and
/// the files of its servers and history: thousands with many clients. The
/// soft limit on open files is often 1024 while the hard limit is far
/// higher, so `run` raises the soft limit to the hard one (capped at the
/// kernel's usual ceiling, `fs.nr_open`'s default), as Go's runtime and
/// the JVM do at start. The servers and drivers it starts inherit it.
fn raise_open_files_limit() {
    const CEILING: libc::rlim_t = 1 << 20;
    let Some(mut limit) = lockbench::error::open_files_limit() else {
        return;
    };
    let target = limit.rlim_max.min(CEILING);
    if limit.rlim_cur >= target {
        return;
    }
    limit.rlim_cur = target;
    // SAFETY: setrlimit reads the struct it is given. A refusal leaves the
    // limit as it was, which is no worse than not asking.
    unsafe {
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

/// Ctrl-C (or SIGTERM) once: stop the run, keep what was recorded. Twice:
/// kill the servers and leave at once.
fn install_signal_handlers(cancel: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let mut interrupts = 0;
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_err() { return },
                Some(_) = async { match term.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => {}
            }
            interrupts += 1;
            if interrupts == 1 {
                eprintln!(
                    "\nlockbench: stopping; the run writes what it recorded (press Ctrl-C again to quit at once)"
                );
                cancel.cancel();
            } else {
                lockbench::cluster::kill_all();
                std::process::exit(130);
            }
        }
    });
}
